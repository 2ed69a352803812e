"""The Hugging Face Hub: push a saved model, load ``org/repo[@revision]``, pinned catalog downloads.

Everything goes through ``huggingface_hub`` (``HfApi``, ``snapshot_download``, ``hf_hub_download``)
and its cache, so ``HF_HOME``, ``HF_HUB_CACHE``, ``HF_TOKEN``, ``HF_ENDPOINT`` and
``HF_HUB_OFFLINE`` work as they do for every Hub library. This module adds what the zoo needs on
top: validated repo ids, revisions and file names; only ``config.json``, ``model.safetensors``
and ``README.md`` are ever downloaded (no pickles, no code); pinned catalog downloads whose
sha256 is checked (a mismatch is deleted from the cache and refused); and Hub errors turned into
messages that say what to do.

``huggingface_hub`` reads its environment variables once, when it is imported. The cache folder
and the offline switch are read here again at each call, so changing ``HF_HOME``,
``HF_HUB_CACHE`` or ``HF_HUB_OFFLINE`` in a running process takes effect; ``HF_ENDPOINT`` must be
set before the first import of ``huggingface_hub`` (i.e. before ``import zoo`` loads a model).
"""

from __future__ import annotations

import contextlib
import os
import re
from pathlib import Path
from typing import Iterator, Mapping, Optional

from .errors import HubError, WeightsError

#: The files a zoo model repo holds; nothing else is downloaded.
MODEL_FILES = ("config.json", "model.safetensors", "README.md")
#: Uploaded with the model files when present (the card shows it); never needed to load a model.
CARD_FILES = ("samples.png",)
#: Pickle-based weight formats: never downloaded, never loaded.
UNSAFE_WEIGHT_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle")

_NAME = r"[A-Za-z0-9](?:[A-Za-z0-9._-]{0,94}[A-Za-z0-9_-])?"
_REPO_ID = re.compile(rf"^({_NAME})/({_NAME})$")
_REVISION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,254}$")
_COMMIT = re.compile(r"^[0-9a-f]{40}$")
_FILE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,254}$")


# -- errors ------------------------------------------------------------------------------------


class InvalidRepoIdError(HubError, ValueError):
    """A repo id, revision or file name that is not allowed (bad characters, path traversal)."""


class RepoNotFoundError(HubError):
    """The repo does not exist, or it is private or gated and the token cannot read it."""


class RevisionNotFoundError(HubError):
    """The repo exists but has no such branch, tag or commit."""


class EntryNotFoundError(HubError):
    """The repo and revision exist but a file is missing."""


class NotCachedError(HubError):
    """Offline (``HF_HUB_OFFLINE=1`` or ``local_files_only=True``) and the files are not in the cache."""


class HubConnectionError(HubError):
    """The Hub could not be reached and the files are not in the cache."""


class IntegrityError(HubError, WeightsError):
    """Downloaded bytes whose hash is not the one expected; they were removed from the cache."""


class UnsafeWeightsError(HubError, WeightsError):
    """The repo holds only pickled weights (.bin, .pt, ...), which the zoo never loads."""


# -- validation --------------------------------------------------------------------------------


def validate_repo_id(repo_id: str) -> str:
    """``org/name``: letters, digits, ``-``, ``_``, ``.``; no ``..`` or ``--``; at most 96 characters each."""
    match = _REPO_ID.match(repo_id or "")
    if not match or any(".." in part or "--" in part for part in match.groups()) or repo_id.endswith(".git"):
        raise InvalidRepoIdError(
            f"{repo_id!r} is not a valid Hub repo id: use 'org/name' with letters, digits, '-', '_' and '.' "
            "(no '..' or '--', at most 96 characters per part)"
        )
    return repo_id


def validate_revision(revision: str) -> str:
    """A branch, tag or commit sha: git ref characters only, no ``..``, ``//``, or leading ``/``/``-``."""
    if (
        not isinstance(revision, str)
        or not _REVISION.match(revision)
        or ".." in revision
        or "//" in revision
        or revision.endswith(("/", ".lock", "."))
        or "@{" in revision
    ):
        raise InvalidRepoIdError(
            f"{revision!r} is not a valid revision: give a branch, a tag or a commit sha "
            "(letters, digits, '.', '_', '-', '/'; no '..')"
        )
    return revision


def validate_file_name(name: str) -> str:
    """A plain file name at the top of a repo (no folders, no ``..``, no hidden files)."""
    if not isinstance(name, str) or not _FILE_NAME.match(name) or ".." in name:
        raise InvalidRepoIdError(f"{name!r} is not an allowed file name: plain names only, such as {MODEL_FILES}")
    if name.lower().endswith(UNSAFE_WEIGHT_SUFFIXES):
        raise UnsafeWeightsError(f"{name!r} is a pickled weights file; the zoo loads safetensors only")
    return name


def parse_repo_id(text: str) -> Optional[tuple[str, Optional[str]]]:
    """``"org/name"`` -> ``("org/name", None)``; ``"org/name@v1"`` -> ``("org/name", "v1")``.

    Returns None for text that does not look like a repo id (no ``/``, or more than one); raises
    InvalidRepoIdError for text that does but is malformed.
    """
    repo_id, _, revision = text.partition("@")
    if repo_id.count("/") != 1:
        return None
    validate_repo_id(repo_id)
    if "@" in text:
        validate_revision(revision)
        return repo_id, revision
    return repo_id, None


# -- environment (read at call time) -----------------------------------------------------------


def _truthy(value: Optional[str]) -> bool:
    return (value or "").strip().upper() in {"1", "ON", "YES", "TRUE"}


def cache_dir() -> Path:
    """The Hub cache: ``HF_HUB_CACHE``, else ``HF_HOME/hub``, else huggingface_hub's default."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.path.expandvars(os.environ["HF_HUB_CACHE"])).expanduser()
    if os.environ.get("HUGGINGFACE_HUB_CACHE"):
        return Path(os.path.expandvars(os.environ["HUGGINGFACE_HUB_CACHE"])).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.path.expandvars(os.environ["HF_HOME"])).expanduser() / "hub"
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE)


def endpoint() -> str:
    """The Hub's URL: ``HF_ENDPOINT`` (a self-hosted Hub-compatible server), else the public Hub."""
    from huggingface_hub import constants

    return (os.environ.get("HF_ENDPOINT") or constants.ENDPOINT).rstrip("/")


def offline() -> bool:
    """True when ``HF_HUB_OFFLINE`` is set (now, or when huggingface_hub was imported)."""
    from huggingface_hub import constants

    return _truthy(os.environ.get("HF_HUB_OFFLINE")) or bool(constants.HF_HUB_OFFLINE)


def _api(token: Optional[str]):
    from huggingface_hub import HfApi

    from . import __version__

    return HfApi(endpoint=endpoint(), token=token, library_name="zoo", library_version=__version__)


def _storage(repo_id: str) -> Path:
    return cache_dir() / ("models--" + repo_id.replace("/", "--"))


def cached_revisions(repo_id: str) -> dict[str, str]:
    """What the cache holds for ``repo_id``: ``{branch or tag: commit}`` plus ``{commit: commit}``."""
    storage = _storage(repo_id)
    found: dict[str, str] = {}
    refs = storage / "refs"
    if refs.is_dir():
        for ref in sorted(p for p in refs.rglob("*") if p.is_file()):
            found[ref.relative_to(refs).as_posix()] = ref.read_text().strip()
    snapshots = storage / "snapshots"
    if snapshots.is_dir():
        for snapshot_folder in sorted(snapshots.iterdir()):
            if (snapshot_folder / "model.safetensors").exists() and snapshot_folder.name not in found.values():
                found[snapshot_folder.name] = snapshot_folder.name
    return found


def _describe_cached(repo_id: str) -> str:
    revisions = cached_revisions(repo_id)
    if not revisions:
        return f"Nothing of {repo_id} is in the cache ({cache_dir()})."
    listed = ", ".join(name if name == sha else f"{name} -> {sha[:7]}" for name, sha in revisions.items())
    return (
        f"Cached revisions of {repo_id}: {listed}; load one offline with "
        f"zoo.load('{repo_id}@<revision>', local_files_only=True)."
    )


# -- error translation -------------------------------------------------------------------------


@contextlib.contextmanager
def _hub_errors(repo_id: str, revision: str, *, token: Optional[str], offline_now: bool) -> Iterator[None]:
    """Turn huggingface_hub and connection errors into HubErrors that say what to do."""
    import httpx2
    from huggingface_hub import errors as hf

    where = f"{repo_id}@{revision}"
    try:
        yield
    except hf.GatedRepoError:
        raise RepoNotFoundError(
            f"{repo_id} is a gated repo on {endpoint()}: accept its conditions on its page, then log in "
            "with a token that has access (`hf auth login`, or set HF_TOKEN)."
        ) from None
    except hf.RepositoryNotFoundError:
        have_token = bool(token) or _has_token()
        hint = (
            "your token cannot read it: check the name and that the token has access to it"
            if have_token
            else "you are not logged in: log in with `hf auth login` or set HF_TOKEN to a token that can read it"
        )
        raise RepoNotFoundError(
            f"repository {repo_id} was not found on {endpoint()}: it does not exist, or it is private or "
            f"gated and {hint}."
        ) from None
    except hf.RevisionNotFoundError:
        raise RevisionNotFoundError(
            f"{repo_id} has no revision {revision!r}. {_describe_refs(repo_id, token)} A revision is a branch, "
            "a tag or a full commit sha, written 'org/name@revision' or passed as revision=."
        ) from None
    except hf.RemoteEntryNotFoundError as error:
        raise EntryNotFoundError(
            f"{where} does not have the file requested ({_url_of(error)}); is it a zoo model "
            f"(pushed with `zoo push` or model.push_to_hub)? A zoo model repo holds {', '.join(MODEL_FILES)}."
        ) from None
    except (hf.LocalEntryNotFoundError, hf.OfflineModeIsEnabled) as error:
        cause = error.__cause__ or error.__context__
        if offline_now or isinstance(error, hf.OfflineModeIsEnabled) or isinstance(cause, hf.OfflineModeIsEnabled):
            raise NotCachedError(
                f"{where} is not in the local cache ({cache_dir()}), and downloads are off "
                f"(HF_HUB_OFFLINE=1 or local_files_only=True). Download it once while online: "
                f"`zoo pull {where}` or zoo.load('{where}'), then it loads offline. {_describe_cached(repo_id)}"
            ) from None
        raise HubConnectionError(
            f"could not reach the Hub at {endpoint()} to get {where} ({_short(cause or error)}), and it is not "
            f"in the local cache. Are you offline? {_describe_cached(repo_id)} "
            "Check HF_ENDPOINT and your network, or work offline with HF_HUB_OFFLINE=1."
        ) from None
    except (httpx2.ConnectError, httpx2.TimeoutException, ConnectionError) as error:
        raise HubConnectionError(
            f"could not reach the Hub at {endpoint()} ({_short(error)}). Are you offline? "
            f"{_describe_cached(repo_id)} Check HF_ENDPOINT and your network, or set HF_HUB_OFFLINE=1."
        ) from None
    except hf.HfHubHTTPError as error:
        status = getattr(getattr(error, "response", None), "status_code", None)
        if status in (401, 403):
            raise HubError(
                f"the Hub at {endpoint()} refused access to {repo_id} (HTTP {status}): log in with "
                "`hf auth login` or set HF_TOKEN to a token with the needed (write, for a push) permission."
            ) from None
        raise HubError(f"the Hub at {endpoint()} answered HTTP {status} for {where}: {_short(error)}") from None


def _short(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}".strip()


def _url_of(error: BaseException) -> str:
    response = getattr(error, "response", None)
    return str(getattr(response, "url", "")) or _short(error)


def _has_token() -> bool:
    from huggingface_hub import get_token

    return bool(get_token())


def _describe_refs(repo_id: str, token: Optional[str]) -> str:
    try:
        refs = _api(token).list_repo_refs(repo_id)
    except Exception:  # the hint is best-effort: the error being reported matters more
        return ""
    branches = ", ".join(ref.name for ref in refs.branches) or "none"
    tags = ", ".join(ref.name for ref in refs.tags) or "none"
    return f"Its branches: {branches}; its tags: {tags}."


# -- loading -----------------------------------------------------------------------------------


def snapshot(
    repo_id: str,
    revision: Optional[str] = None,
    *,
    local_files_only: Optional[bool] = None,
    token: Optional[str] = None,
    force_download: bool = False,
) -> Path:
    """Download (or find in the cache) a zoo model repo at ``revision``; returns its folder.

    Only ``config.json``, ``model.safetensors`` and ``README.md`` are fetched. Online, the files
    are checked against the hashes the Hub lists for that commit (LFS sha256 / git sha1).
    """
    from huggingface_hub import snapshot_download

    validate_repo_id(repo_id)
    revision = validate_revision(revision or "main")
    offline_now = bool(local_files_only) or offline()
    blobs = _storage(repo_id) / "blobs"
    cached_before = {p.name for p in blobs.iterdir()} if blobs.is_dir() else set()
    with _hub_errors(repo_id, revision, token=token, offline_now=offline_now):
        folder = Path(
            snapshot_download(
                repo_id,
                revision=revision,
                cache_dir=cache_dir(),
                local_files_only=offline_now,
                token=token,
                force_download=force_download and not offline_now,
                allow_patterns=list(MODEL_FILES),
                endpoint=endpoint(),
                library_name="zoo",
            )
        )
        if not (folder / "model.safetensors").is_file() or not (folder / "config.json").is_file():
            _refuse_incomplete(repo_id, revision, folder, token=token, offline_now=offline_now)
        fresh = [name for name in MODEL_FILES if (folder / name).exists()
                 and (folder / name).resolve().name not in cached_before]
        if fresh and not offline_now:  # files already cached were checked when they were downloaded
            _verify_against_hub(repo_id, folder, token=token)
    return folder


def _refuse_incomplete(repo_id: str, revision: str, folder: Path, *, token, offline_now: bool) -> None:
    where = f"{repo_id}@{revision}"
    if offline_now:
        raise NotCachedError(
            f"the cached copy of {where} ({folder}) lacks config.json or model.safetensors, and downloads are off "
            f"(HF_HUB_OFFLINE=1 or local_files_only=True). Run `zoo pull {where}` while online."
        )
    files = _api(token).list_repo_files(repo_id, revision=folder.name)
    unsafe = [f for f in files if f.lower().endswith(UNSAFE_WEIGHT_SUFFIXES)]
    if "model.safetensors" not in files and unsafe:
        raise UnsafeWeightsError(
            f"{where} holds only pickled weights ({', '.join(unsafe)}); the zoo loads safetensors only, because "
            "unpickling runs arbitrary code. Ask the author for a model.safetensors (safetensors.torch.save_file)."
        )
    missing = [name for name in ("config.json", "model.safetensors") if name not in files]
    raise EntryNotFoundError(
        f"{where} is not a zoo model: it lacks {', '.join(missing) or 'files'} (it holds: {', '.join(files) or 'nothing'}). "
        "A zoo model repo is written by `zoo push` or model.push_to_hub."
    )


def _verify_against_hub(repo_id: str, folder: Path, *, token) -> None:
    """Compare the downloaded files with the hashes the Hub lists; remove and refuse mismatches."""
    import httpx2
    from huggingface_hub import errors as hf

    try:
        verification = _api(token).verify_repo_checksums(repo_id, revision=folder.name, cache_dir=cache_dir())
    except (httpx2.TransportError, hf.HfHubHTTPError, hf.OfflineModeIsEnabled):
        # snapshot_download fell back to the cache (Hub unreachable, or no access any more): those
        # files were checked when they were downloaded.
        return
    bad = [m for m in verification.mismatches if m["path"] in MODEL_FILES]
    if bad:
        for mismatch in bad:
            _evict(folder / mismatch["path"])
        details = "; ".join(
            f"{m['path']}: expected {m['algorithm']} {m['expected']}, got {m['actual']}" for m in bad
        )
        raise IntegrityError(
            f"the download of {repo_id}@{folder.name} does not match the Hub's hashes ({details}); the bad files "
            "were removed from the cache. Try again; if it persists, the server or a proxy is corrupting files."
        )


def _evict(pointer: Path) -> None:
    """Remove a cached file: its snapshot link and the blob it points to."""
    blob = pointer.resolve() if pointer.is_symlink() else None
    pointer.unlink(missing_ok=True)
    if blob is not None and blob.name != pointer.name:
        blob.unlink(missing_ok=True)


def download_pinned(
    repo: str,
    revision: str,
    sha256: Mapping[str, str],
    *,
    local_files_only: Optional[bool] = None,
    token: Optional[str] = None,
    force_download: bool = False,
) -> Path:
    """Download each file of ``sha256`` at the commit ``revision`` and check its sha256.

    A file whose bytes do not match is removed from the cache (blob and snapshot link) and
    refused with both hashes. Cached files are checked again at every call. Returns the folder.
    """
    from huggingface_hub import hf_hub_download

    validate_repo_id(repo)
    if not _COMMIT.match(revision or ""):
        raise InvalidRepoIdError(f"a pinned download needs a full 40-hex commit sha, got {revision!r}")
    names = [validate_file_name(name) for name in sha256]
    offline_now = bool(local_files_only) or offline()
    folder: Optional[Path] = None
    for name in names:
        with _hub_errors(repo, revision, token=token, offline_now=offline_now):
            path = Path(
                hf_hub_download(
                    repo,
                    name,
                    revision=revision,
                    cache_dir=cache_dir(),
                    local_files_only=offline_now,
                    token=token,
                    force_download=force_download and not offline_now,
                    endpoint=endpoint(),
                    library_name="zoo",
                )
            )
        from .loading import sha256_file

        actual = sha256_file(path)
        if actual != sha256[name]:
            _evict(path)
            raise IntegrityError(
                f"{repo}@{revision}: {name} has sha256 {actual}, but the catalog pins {sha256[name]}. The file was "
                "removed from the cache and not loaded; try again, and if it persists report it (the repo's "
                "history was rewritten, or something between you and the Hub changes files)."
            )
        folder = path.parent
    assert folder is not None
    return folder


def pull(name_or_repo: str, revision: Optional[str] = None, *, token: Optional[str] = None) -> Path:
    """Download a catalog entry or a Hub repo into the cache (for offline use); returns its folder.

    A catalog entry with weights in its plugin's package is only verified (sha256) and its folder
    returned; a Hub entry is downloaded at its pinned commit and verified.
    """
    from .catalog import catalog
    from .loading import _catalog_folder

    if name_or_repo in catalog().entries or name_or_repo in catalog().conflicts:
        if revision is not None:
            raise ValueError(f"{name_or_repo!r} is a catalog name pinned to one version; revision= is for Hub repo ids")
        entry = catalog().get(name_or_repo)
        return _catalog_folder(name_or_repo, entry, local_files_only=None, token=token)
    parsed = parse_repo_id(name_or_repo)
    if parsed is None:
        catalog().get(name_or_repo)  # UnknownModelError with the closest names
        raise AssertionError("unreachable")
    repo_id, at_revision = parsed
    if at_revision and revision and at_revision != revision:
        raise ValueError(f"two revisions given for {repo_id}: @{at_revision} and revision={revision!r}")
    return snapshot(repo_id, revision or at_revision, token=token)


# -- pushing -----------------------------------------------------------------------------------


def push_folder(
    folder: str | os.PathLike,
    repo_id: str,
    *,
    private: Optional[bool] = None,
    revision: Optional[str] = None,
    commit_message: Optional[str] = None,
    token: Optional[str] = None,
    tag: Optional[str] = None,
    create_pr: bool = False,
) -> str:
    """Upload a ``save_pretrained`` folder to ``repo_id`` (created if missing; ``private=None``:
    the owner's default visibility); returns the commit URL, or the pull request's.

    ``revision`` is a branch (created from main if missing). ``create_pr=True`` opens a pull
    request against it instead of committing to it. ``tag`` tags the new commit. The card's
    ``samples.png`` is uploaded with the model files.
    Only ``config.json``, ``model.safetensors`` and ``README.md`` are uploaded, in one commit; a
    card written for a local folder is rewritten so that its usage snippet loads ``repo_id``.
    """
    folder = Path(folder)
    validate_repo_id(repo_id)
    branch = validate_revision(revision) if revision else None
    if tag is not None:
        validate_revision(tag)
    missing = [name for name in ("config.json", "model.safetensors") if not (folder / name).is_file()]
    if missing:
        unsafe = sorted(p.name for p in folder.glob("*") if p.name.lower().endswith(UNSAFE_WEIGHT_SUFFIXES))
        hint = f" (it holds pickled weights {', '.join(unsafe)}, which the zoo does not share)" if unsafe else ""
        raise FileNotFoundError(
            f"{folder} lacks {', '.join(missing)}{hint}; push a folder written by model.save_pretrained or `zoo train`"
        )
    if offline():
        raise HubError("cannot push with HF_HUB_OFFLINE=1 set; unset it to upload")
    api = _api(token)
    message = commit_message or f"Upload {_family_of(folder)} model with zoo"
    with _hub_errors(repo_id, branch or "main", token=token, offline_now=False):
        api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
        if branch is not None:
            api.create_branch(repo_id, branch=branch, exist_ok=True)
        commit = api.create_commit(
            repo_id,
            operations=_additions(folder, repo_id),
            commit_message=message,
            revision=branch,
            create_pr=create_pr,
        )
        if tag is not None:
            api.create_tag(repo_id, tag=tag, revision=commit.oid)
    return str(commit.pr_url if create_pr and commit.pr_url else commit.commit_url)


def _additions(folder: Path, repo_id: str) -> list:
    """One CommitOperationAdd per model file; the card's usage snippet is made to name ``repo_id``."""
    from huggingface_hub import CommitOperationAdd

    from .card import retarget

    operations = []
    for name in MODEL_FILES + CARD_FILES:
        path = folder / name
        if not path.is_file():
            continue
        if name == "README.md":
            content = retarget(path.read_text("utf-8"), repo_id).encode("utf-8")
            operations.append(CommitOperationAdd(path_in_repo=name, path_or_fileobj=content))
        else:
            operations.append(CommitOperationAdd(path_in_repo=name, path_or_fileobj=path))
    return operations


def _family_of(folder: Path) -> str:
    import json

    try:
        return str(json.loads((folder / "config.json").read_text("utf-8")).get("family") or "a")
    except (OSError, ValueError, AttributeError):
        return "a"
