"""Local model folders that cannot silently rot: a ``SHA256SUMS`` file, and saves that land whole or not at all.

``save_pretrained`` writes ``SHA256SUMS`` (the format of ``sha256sum``, so ``sha256sum -c SHA256SUMS``
checks a folder by hand) listing ``model.safetensors``; ``zoo.load`` of a local folder and ``zoo push``
check it when it is there. ``config.json`` and the card are not listed: people edit them, and a
config that does not fit the weights is refused by the shape check anyway.
"""

from __future__ import annotations

import errno
import functools
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Callable

from .errors import DiskFullError, WeightsError

CHECKSUMS_NAME = "SHA256SUMS"
CHECKED_FILES = ("model.safetensors",)
_DISK_FULL = {errno.ENOSPC, errno.EFBIG, errno.EDQUOT}


def write_checksums(folder: Path) -> Path:
    from .loading import sha256_file

    folder = Path(folder)
    lines = [f"{sha256_file(folder / name)}  {name}\n" for name in CHECKED_FILES if (folder / name).is_file()]
    path = folder / CHECKSUMS_NAME
    path.write_text("".join(lines))
    return path


def read_checksums(folder: Path) -> dict[str, str]:
    """``{file name: sha256}`` from ``folder/SHA256SUMS``; empty when the folder has none."""
    path = Path(folder) / CHECKSUMS_NAME
    if not path.is_file():
        return {}
    listed = {}
    for number, line in enumerate(path.read_text("utf-8", errors="replace").splitlines(), 1):
        digest, _, name = line.strip().partition("  ")
        name = name.lstrip("*")
        if not line.strip():
            continue
        if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest) or name not in CHECKED_FILES:
            raise WeightsError(
                f"{path} line {number} is not 'SHA256  FILE' for one of {', '.join(CHECKED_FILES)}: {line.strip()!r}; "
                f"the folder cannot be checked. Save the model again, or delete {CHECKSUMS_NAME} if you edited it."
            )
        listed[name] = digest
    return listed


def verify_checksums(folder: Path) -> None:
    """Refuse a folder whose files do not match its ``SHA256SUMS`` (a bit flip, a partial copy, an edit)."""
    from .loading import sha256_file

    folder = Path(folder)
    for name, expected in read_checksums(folder).items():
        path = folder / name
        if not path.is_file():
            raise WeightsError(f"{path} is missing, but {folder / CHECKSUMS_NAME} lists it; copy the whole folder again")
        actual = sha256_file(path)
        if actual != expected:
            raise WeightsError(
                f"{path} has sha256 {actual}, but {folder / CHECKSUMS_NAME} (written when it was saved) says "
                f"{expected}: the file changed since it was saved (disk or copy error, or an edit). Refusing to load "
                "it; copy or save it again."
            )


def atomic_save(save: Callable) -> Callable:
    """Make a ``save_pretrained(self, save_directory, ...)`` write into a staging folder inside
    ``save_directory``, add ``SHA256SUMS``, then move each file into place (``SHA256SUMS`` last).

    A save that fails (disk full, a crash) leaves the files there before untouched; a full disk
    is a ``DiskFullError`` naming the folder. Returns ``save_directory``.
    """

    @functools.wraps(save)
    def wrapper(self, save_directory, *args, **kwargs):
        directory = Path(save_directory)
        try:
            directory.mkdir(parents=True, exist_ok=True)
            staging = Path(tempfile.mkdtemp(prefix=".saving-", dir=directory))
        except OSError as error:
            _raise_if_disk_full(error, directory)
            raise
        try:
            save(self, staging, *args, **kwargs)
            write_checksums(staging)
            names = sorted(p.name for p in staging.iterdir() if p.name != CHECKSUMS_NAME) + [CHECKSUMS_NAME]
            for name in names:
                os.replace(staging / name, directory / name)
        except Exception as error:  # safetensors reports I/O errors as its own type, with "os error N"
            _raise_if_disk_full(error, directory)
            raise
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return directory

    return wrapper


def _raise_if_disk_full(error: Exception, directory: Path) -> None:
    number = getattr(error, "errno", None)
    if number is None:
        match = re.search(r"os error (\d+)", str(error))
        number = int(match.group(1)) if match else None
    if number in _DISK_FULL:
        raise DiskFullError(
            f"disk full while saving to {directory} ({os.strerror(number)}): nothing there was changed. Free "
            "some space (or raise the file size limit), or save to another folder."
        ) from None
