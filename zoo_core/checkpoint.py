"""Training checkpoints and the run folder's lock.

A checkpoint is a folder ``OUT/checkpoints/step_N`` of safetensors files and JSON, nothing else:
resuming never unpickles anything, so a crafted file cannot run code. It is written into a hidden
temporary folder, every file is fsynced, the manifest (``state.json``, with the size and sha256 of
every other file) is written last, and the folder is renamed into place: a crash or a full disk
leaves either a complete checkpoint or a temporary folder that ``--resume`` skips. ``--resume``
verifies the manifest before using a checkpoint and falls back to the newest one that verifies.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from .errors import DiskFullError, ZooError  # noqa: F401 (DiskFullError re-exported)

CHECKPOINTS = "checkpoints"
MANIFEST = "state.json"
FORMAT = 1
_STEP_DIR = re.compile(r"^step_(\d+)$")
_TMP_PREFIX = ".tmp-"


class CheckpointError(ZooError, ValueError):
    """A checkpoint that cannot be used: incomplete, corrupt, foreign, or from other settings."""


class RunLockedError(ZooError):
    """Another live process is training into the same output folder."""


# -- state trees: nested dicts/lists of tensors and plain values, as safetensors + JSON ----------


def encode_tree(tree: Any, tensors: dict[str, Any], prefix: str = "t") -> Any:
    """A JSON-able skeleton of ``tree``; its tensors go into ``tensors`` under generated keys.

    Dicts with non-string keys (an optimizer's ``state``) and tuples keep their types.
    """
    import numpy as np
    import torch

    if isinstance(tree, torch.Tensor):
        key = f"{prefix}{len(tensors)}"
        tensors[key] = tree.detach().to("cpu").contiguous().clone()
        return {"__tensor__": key}
    if isinstance(tree, np.ndarray):
        return {"__ndarray__": tree.tolist(), "dtype": str(tree.dtype)}
    if isinstance(tree, dict):
        if all(isinstance(k, str) and not k.startswith("__") for k in tree):
            return {k: encode_tree(v, tensors, prefix) for k, v in tree.items()}
        return {"__items__": [[encode_tree(k, tensors, prefix), encode_tree(v, tensors, prefix)] for k, v in tree.items()]}
    if isinstance(tree, tuple):
        return {"__tuple__": [encode_tree(v, tensors, prefix) for v in tree]}
    if isinstance(tree, list):
        return [encode_tree(v, tensors, prefix) for v in tree]
    if tree is None or isinstance(tree, (bool, int, float, str)):
        return tree
    if isinstance(tree, (np.integer, np.floating)):
        return tree.item()
    raise TypeError(f"cannot store a {type(tree).__name__} in a checkpoint (only tensors, numbers, strings, lists, dicts)")


def decode_tree(skeleton: Any, tensors: dict[str, Any]) -> Any:
    """The inverse of ``encode_tree``."""
    if isinstance(skeleton, list):
        return [decode_tree(v, tensors) for v in skeleton]
    if not isinstance(skeleton, dict):
        return skeleton
    if "__tensor__" in skeleton:
        return tensors[skeleton["__tensor__"]]
    if "__ndarray__" in skeleton:
        import numpy as np

        return np.asarray(skeleton["__ndarray__"], dtype=skeleton["dtype"])
    if "__tuple__" in skeleton:
        return tuple(decode_tree(v, tensors) for v in skeleton["__tuple__"])
    if "__items__" in skeleton:
        return {decode_tree(k, tensors): decode_tree(v, tensors) for k, v in skeleton["__items__"]}
    return {k: decode_tree(v, tensors) for k, v in skeleton.items()}


# -- writing -----------------------------------------------------------------------------------


def is_disk_full(error: BaseException) -> bool:
    """ENOSPC, EDQUOT or EFBIG, raised as ``OSError`` or inside a library's error (safetensors
    reports "I/O error: No space left on device (os error 28)")."""
    codes = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
    if isinstance(error, DiskFullError):  # already reported (save_pretrained's staged save)
        return True
    if isinstance(error, OSError):
        return error.errno in codes
    match = re.search(r"os error (\d+)", str(error))
    return bool(match) and int(match.group(1)) in codes


def disk_full(error: OSError, what: str, folder: Path) -> DiskFullError:
    return DiskFullError(
        f"disk full while writing {what} into {folder} ({error.strerror or error}); free some space "
        "(or lower keep_checkpoints) and run again with --resume"
    )


def fsync_path(path: Path) -> None:
    """Flush a file's (or a folder's entries') data to the disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


#: path -> (size, sha256) of the files written by this process, so that the manifest does not
#: read them back to hash them
_written: dict[str, tuple[int, str]] = {}


def write_bytes(path: Path, data: bytes) -> None:
    """Write and fsync; a full disk raises ``OSError`` (ENOSPC), which callers turn into ``DiskFullError``."""
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    _written[str(path)] = (len(data), hashlib.sha256(data).hexdigest())


def write_json(path: Path, data: Any) -> None:
    write_bytes(path, (json.dumps(data, indent=1, sort_keys=True) + "\n").encode())


def save_tensors(path: Path, tensors: dict[str, Any], metadata: Optional[dict[str, str]] = None) -> None:
    # serialized in memory and written by Python, so that a full disk is an OSError with its errno
    from safetensors.torch import save

    write_bytes(path, save({k: v.detach().to("cpu").contiguous().clone() for k, v in tensors.items()}, metadata=metadata))


def save_tree(path: Path, tree: Any) -> None:
    """One safetensors file holding ``tree``: its tensors, and its skeleton as JSON in the header."""
    tensors: dict[str, Any] = {}
    skeleton = encode_tree(tree, tensors)
    save_tensors(path, tensors, metadata={"zoo_tree": json.dumps(skeleton)})


def load_tree(path: Path) -> Any:
    """The inverse of ``save_tree``; reads safetensors and JSON only."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            skeleton = json.loads((f.metadata() or {})["zoo_tree"])
            tensors = {key: f.get_tensor(key) for key in f.keys()}
    except Exception as error:  # a corrupt header, a missing skeleton: never guess
        raise CheckpointError(f"{path} is not a zoo state file ({type(error).__name__}: {error})") from None
    return decode_tree(skeleton, tensors)


def sha256_file(path: Path) -> str:
    from .loading import sha256_file as sha256

    return sha256(path)


def step_folder(root: Path, step: int) -> Path:
    return Path(root) / CHECKPOINTS / f"step_{step:08d}"


def temporary_folder(root: Path, step: int) -> Path:
    return Path(root) / CHECKPOINTS / f"{_TMP_PREFIX}step_{step:08d}"


def begin(root: Path, step: int) -> Path:
    """Create (empty) the temporary folder that checkpoint ``step`` is written into."""
    tmp = temporary_folder(root, step)
    try:
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir(parents=True)
    except OSError as error:
        if is_disk_full(error):
            raise disk_full(error, f"checkpoint step {step}", tmp.parent) from None
        raise
    return tmp


def commit(root: Path, step: int, manifest: dict[str, Any]) -> Path:
    """Write the manifest (with every file's size and sha256) into the temporary folder, then rename
    it to ``step_N``: after this returns the checkpoint is complete on disk."""
    tmp, final = temporary_folder(root, step), step_folder(root, step)
    try:
        files = {}
        for p in sorted(tmp.iterdir()):
            if p.name != MANIFEST:
                size, digest = _written.pop(str(p), (None, None))
                if size != p.stat().st_size:  # written by another process (a rank's RNG state): hash it
                    size, digest = p.stat().st_size, sha256_file(p)
                files[p.name] = {"bytes": size, "sha256": digest}
        write_json(tmp / MANIFEST, {"format": FORMAT, "step": step, "files": files, **manifest})
        fsync_path(tmp)
        if final.exists():  # the same step written again (a resumed run that had already finished)
            shutil.rmtree(final)
        os.rename(tmp, final)
        fsync_path(final.parent)
    except OSError as error:
        shutil.rmtree(tmp, ignore_errors=True)
        if is_disk_full(error):
            raise disk_full(error, f"checkpoint step {step}", final.parent) from None
        raise
    return final


def abort(root: Path, step: int) -> None:
    shutil.rmtree(temporary_folder(root, step), ignore_errors=True)


# -- reading -----------------------------------------------------------------------------------


@dataclass
class Found:
    path: Path
    step: int
    manifest: Optional[dict[str, Any]] = None
    problem: Optional[str] = None


def scan(root: Path) -> list[Found]:
    """Every checkpoint folder under ``root/checkpoints`` (temporary ones too), newest first, each
    verified: ``problem`` says why it cannot be used, ``None`` when it is complete."""
    folder = Path(root) / CHECKPOINTS
    found: list[Found] = []
    if not folder.is_dir():
        return found
    for path in folder.iterdir():
        if path.name.startswith(_TMP_PREFIX):
            step = _STEP_DIR.match(path.name[len(_TMP_PREFIX):])
            found.append(Found(path, int(step.group(1)) if step else -1, problem="incomplete: its write was interrupted"))
            continue
        match = _STEP_DIR.match(path.name)
        if match and path.is_dir():
            found.append(verify(path, int(match.group(1))))
    return sorted(found, key=lambda f: (f.step, f.problem is None), reverse=True)


def verify(path: Path, step: Optional[int] = None) -> Found:
    """Check that ``path`` is a complete zoo checkpoint: a manifest that parses, and every file it
    lists present with its recorded size and sha256. Reads the files, never unpickles them."""
    found = Found(Path(path), step if step is not None else -1)
    manifest_path = found.path / MANIFEST
    if not manifest_path.is_file():
        pickled = sorted(p.name for p in found.path.glob("*") if p.suffix in (".bin", ".pkl", ".pt", ".pth"))
        found.problem = (
            f"not a zoo checkpoint (no {MANIFEST}"
            + (f"; it holds pickled files {', '.join(pickled)}, which the zoo never loads because unpickling can run code"
               if pickled else "") + ")"
        )
        return found
    try:
        manifest = json.loads(manifest_path.read_text())
        if manifest.get("format") != FORMAT or not isinstance(manifest.get("files"), dict):
            raise ValueError(f"unknown format {manifest.get('format')!r}")
    except (ValueError, OSError) as error:
        found.problem = f"{MANIFEST} is unreadable ({error})"
        return found
    for name, expected in manifest["files"].items():
        file = found.path / name
        if not file.is_file():
            found.problem = f"{name} is missing"
            return found
        if file.stat().st_size != expected["bytes"] or sha256_file(file) != expected["sha256"]:
            found.problem = f"{name} does not match its recorded size and sha256 (corrupt or changed)"
            return found
    found.manifest = manifest
    found.step = int(manifest.get("step", found.step))
    return found


def load_tensors(path: Path) -> dict[str, Any]:
    from safetensors.torch import load_file

    try:
        return load_file(str(path))
    except Exception as error:  # safetensors raises its own types for a corrupt header
        raise CheckpointError(f"{path} is not a valid safetensors file ({error})") from None


def prune(root: Path, keep: int) -> list[Path]:
    """Delete all but the ``keep`` newest complete checkpoints (and leftover temporary folders)."""
    removed = []
    complete = 0
    for found in scan(root):
        if found.problem is None:
            complete += 1
            if complete <= keep:
                continue
        shutil.rmtree(found.path, ignore_errors=True)
        removed.append(found.path)
    return removed


# -- the run folder's lock ----------------------------------------------------------------------

LOCK = ".zoo-train.lock"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class RunLock:
    """``OUT/.zoo-train.lock``: an exclusive ``flock`` on a file that records the owner's pid.

    The kernel drops the flock when its process dies however it dies (SIGKILL included), so a
    lock left behind by a dead run is taken over; a live owner makes ``acquire`` fail with a
    message naming its pid.
    """

    def __init__(self, folder: Path):
        self.path = Path(folder) / LOCK
        self._fd: Optional[int] = None
        self.taken_over_from: Optional[int] = None

    def acquire(self) -> "RunLock":
        import fcntl

        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            owner = _read_pid(fd)
            os.close(fd)
            raise RunLockedError(
                f"another zoo train (pid {owner if owner else 'unknown'}) is writing to {self.path.parent}; "
                "wait for it to finish, stop it, or train into another --out"
            ) from None
        previous = _read_pid(fd)
        if previous and previous != os.getpid() and not _pid_alive(previous):
            self.taken_over_from = previous
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        os.fsync(fd)
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is None:
            return
        # Emptied, not deleted: deleting would let a process that opened the old file hold a lock
        # on a name that no longer exists while another locks the new file.
        try:
            os.ftruncate(self._fd, 0)
        finally:
            os.close(self._fd)  # closing drops the flock
            self._fd = None

    def __enter__(self) -> "RunLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def _read_pid(fd: int) -> Optional[int]:
    try:
        text = os.pread(fd, 64, 0).decode(errors="replace").strip()
        return int(text) if text else None
    except (OSError, ValueError):
        return None
