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
from typing import Callable, Iterator, Mapping, Optional, Sequence

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
    match = _REPO_ID.fullmatch(repo_id) if isinstance(repo_id, str) else None
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
        or not _REVISION.fullmatch(revision)
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
    if not isinstance(name, str) or not _FILE_NAME.fullmatch(name) or ".." in name:
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


# -- timeouts and retries ----------------------------------------------------------------------

#: Environment variables that bound every Hub call the zoo makes (see docs/hub.md).
TIMEOUT_ENV, RETRIES_ENV = "ZOO_HUB_TIMEOUT", "ZOO_HUB_RETRIES"
DEFAULT_TIMEOUT, DEFAULT_RETRIES = 10.0, 2


def hub_timeout() -> float:
    """Seconds a Hub request may wait to connect, or between two chunks of an answer (``ZOO_HUB_TIMEOUT``)."""
    text = os.environ.get(TIMEOUT_ENV, "").strip()
    if not text:
        return DEFAULT_TIMEOUT
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not (0 < value < 86400):
        raise HubError(f"{TIMEOUT_ENV}={text!r} is not a timeout: give seconds, a number above 0 (default {DEFAULT_TIMEOUT:g})")
    return value


def hub_retries() -> int:
    """How many times a failed read (download, listing) is tried again (``ZOO_HUB_RETRIES``)."""
    text = os.environ.get(RETRIES_ENV, "").strip()
    if not text:
        return DEFAULT_RETRIES
    if not text.isdigit() or int(text) > 20:
        raise HubError(f"{RETRIES_ENV}={text!r} is not a retry count: give a whole number from 0 to 20 (default {DEFAULT_RETRIES})")
    return int(text)


_client_timeout: Optional[float] = None


def _zoo_client_factory():
    from huggingface_hub.utils import _http

    client = _http.default_client_factory()
    hooks = client.event_hooks
    hooks["request"] = [*hooks.get("request", []), _bound_request]
    client.event_hooks = hooks
    return client


def _bound_request(request) -> None:
    """huggingface_hub's default client has no timeout, and its API calls pass ``timeout=None``
    (wait forever): give every unbounded phase of the request (connect, read, write, pool) ours."""
    limits = dict(request.extensions.get("timeout") or {})
    for phase in ("connect", "read", "write", "pool"):
        if limits.get(phase) is None:
            limits[phase] = _client_timeout
    request.extensions = {**request.extensions, "timeout": limits}


@contextlib.contextmanager
def _bounded() -> Iterator[float]:
    """Give every request huggingface_hub makes inside the block a timeout of ``hub_timeout()`` seconds.

    API calls (repo info, listings, commits) use the shared client, which gets a default timeout
    through huggingface_hub's own ``set_client_factory`` (only while it is the stock factory: a
    factory a user installed is theirs); downloads read ``HF_HUB_DOWNLOAD_TIMEOUT`` at call time.
    """
    global _client_timeout
    from huggingface_hub import constants, set_client_factory
    from huggingface_hub.utils import _http

    timeout = hub_timeout()
    factory = _http._GLOBAL_CLIENT_FACTORY
    if factory is _http.default_client_factory or (factory is _zoo_client_factory and _client_timeout != timeout):
        _client_timeout = timeout
        set_client_factory(_zoo_client_factory)
    saved = constants.HF_HUB_DOWNLOAD_TIMEOUT
    constants.HF_HUB_DOWNLOAD_TIMEOUT = timeout
    try:
        yield timeout
    finally:
        constants.HF_HUB_DOWNLOAD_TIMEOUT = saved


def _retrying(attempt):
    """Run ``attempt()``; on a transient Hub failure (timeout, reset, short answer, HTTP 5xx or 429),
    try again up to ``hub_retries()`` times, waiting 0.5 s, 1 s, 2 s, ... in between. Only reads
    are retried this way; the last failure is raised as it is (its message says what happened)."""
    import time

    retries = hub_retries()
    for number in range(retries + 1):
        try:
            return attempt()
        except HubError as error:
            if not getattr(error, "transient", False) or number == retries:
                if getattr(error, "transient", False) and retries:
                    error.args = (f"{error.args[0]} (tried {retries + 1} times; {RETRIES_ENV} sets how often)",)
                raise
            time.sleep(min(0.5 * 2**number, 4.0))
    raise AssertionError("unreachable")


# -- error translation -------------------------------------------------------------------------


class HubServerError(HubError):
    """The Hub answered with an error status (5xx, 429, ...) or cut the connection: not a local problem."""


def _transient(error: HubError) -> HubError:
    error.transient = True  # type: ignore[attr-defined]
    return error


def _transport_error(error: BaseException, where: str) -> Optional[HubError]:
    """A HubError for a timeout, reset, short answer or HTTP status, or None for anything else."""
    import httpx2
    from huggingface_hub import errors as hf

    if isinstance(error, hf.HfHubHTTPError) and getattr(error, "response", None) is not None:
        response = error.response
        status = response.status_code
        url = str(response.url)
        if status in (401, 403):
            return None
        text = f"the Hub answered HTTP {status} for {response.request.method} {url} ({where})"
        if status >= 500 or status in (408, 429):
            return _transient(HubServerError(
                f"{text}: the server has a problem, not your setup; try again later "
                f"(status pages, or the admin of {endpoint()}, may say more)"
            ))
        return HubServerError(f"{text}: {_short(error)}")
    if isinstance(error, httpx2.TimeoutException):
        url = _request_url(error)
        return _transient(HubServerError(
            f"the Hub at {endpoint()} did not answer {url or where} within {hub_timeout():g} s "
            f"({type(error).__name__}); the server or the network is stalled. Try again, or raise {TIMEOUT_ENV}."
        ))
    if isinstance(error, (httpx2.RemoteProtocolError, httpx2.ReadError, httpx2.WriteError, ConnectionResetError)):
        url = _request_url(error)
        return _transient(HubServerError(
            f"the connection to {url or endpoint()} was cut before the whole answer arrived ({where}: "
            f"{_short(error)}); nothing incomplete was kept. Try again; if it persists, a proxy or the server is failing."
        ))
    if isinstance(error, hf.FileMetadataError):
        return HubServerError(f"{endpoint()} did not answer like a Hub ({where}): {_short(error)}")
    return None


def _request_url(error: BaseException) -> str:
    try:
        request = error.request  # type: ignore[attr-defined]
        return f"{request.method} {request.url}"
    except (AttributeError, RuntimeError):
        return ""


def _chain(error: BaseException) -> list[BaseException]:
    """``error`` and its causes, outermost first."""
    found: list[BaseException] = []
    current: Optional[BaseException] = error
    while current is not None and all(current is not seen for seen in found):
        found.append(current)
        current = current.__cause__ or current.__context__
    return found


def _translated_cause(error: BaseException, where: str) -> Optional[HubError]:
    for link in _chain(error)[1:]:
        translated = _transport_error(link, where)
        if translated is not None:
            return translated
    return None


@contextlib.contextmanager
def _hub_errors(repo_id: str, revision: str, *, token: Optional[str], offline_now: bool) -> Iterator[None]:
    """Turn huggingface_hub and connection errors into HubErrors that say what happened and what to do."""
    import httpx2
    from huggingface_hub import errors as hf

    where = f"{repo_id}@{revision}"
    try:
        with _bounded():
            yield
    except HubError:
        raise
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
        translated = _translated_cause(error, where)
        if translated is not None:
            translated.args = (f"{translated.args[0]} {where} is not in the local cache. {_describe_cached(repo_id)}",)
            raise translated from None
        raise HubConnectionError(
            f"could not reach the Hub at {endpoint()} to get {where} ({_short(cause or error)}), and it is not "
            f"in the local cache. Are you offline? {_describe_cached(repo_id)} "
            "Check HF_ENDPOINT and your network, or work offline with HF_HUB_OFFLINE=1."
        ) from None
    except (httpx2.ConnectError, ConnectionRefusedError) as error:
        raise HubConnectionError(
            f"could not reach the Hub at {endpoint()} ({_short(error)}). Are you offline? "
            f"{_describe_cached(repo_id)} Check HF_ENDPOINT and your network, or set HF_HUB_OFFLINE=1."
        ) from None
    except (hf.HfHubHTTPError, httpx2.TransportError, ConnectionError, hf.FileMetadataError) as error:
        translated = _transport_error(error, where)
        if translated is not None:
            raise translated from None
        status = getattr(getattr(error, "response", None), "status_code", None)
        if status in (401, 403):
            raise HubError(
                f"the Hub at {endpoint()} refused access to {repo_id} (HTTP {status}): log in with "
                "`hf auth login` or set HF_TOKEN to a token with the needed (write, for a push) permission."
            ) from None
        raise HubError(f"the Hub at {endpoint()} failed for {where}: {_short(error)}") from None
    except RuntimeError as error:  # huggingface_hub wraps a failed LFS upload in a RuntimeError
        translated = _translated_cause(error, where)
        if translated is None:
            raise
        raise translated from None
    except OSError as error:
        # huggingface_hub wraps a short download ("Consistency check failed") in an OSError
        if "Consistency check failed" in str(error):
            raise _transient(HubServerError(
                f"the download of {where} from {endpoint()} ended early ({str(error).splitlines()[0]}); the partial "
                "file was not kept. Try again; if it persists, a proxy or the server is cutting files short."
            )) from None
        raise


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
        with _bounded():
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
    extra_files: Sequence[str] = (),
    accept: Optional[Callable[[Path], bool]] = None,
    force_download: bool = False,
) -> Path:
    """Download (or find in the cache) a zoo model repo at ``revision``; returns its folder.

    Only ``config.json``, ``model.safetensors`` and ``README.md`` are fetched, plus ``extra_files``
    (glob patterns, e.g. a converter's files; pickles never). A folder without the zoo's files is
    refused unless ``accept(folder)`` says it is usable (a converter recognizes it). No file is
    returned before it is verified: a fresh download against the hashes the Hub lists for that
    commit (LFS sha256 / git sha1); if that listing cannot be had, the fresh files are removed from
    the cache and the call fails. A verified file gets a marker (its size and mtime) so that later
    calls, online or offline, trust it without hashing; a cached file without a valid marker is
    verified again (offline, against its blob name: the hash the Hub sent as its ETag).
    """
    validate_repo_id(repo_id)
    revision = validate_revision(revision or "main")
    offline_now = bool(local_files_only) or offline()
    patterns = list(MODEL_FILES) + [p for p in extra_files if not p.lower().endswith(UNSAFE_WEIGHT_SUFFIXES)]
    return _retrying(lambda: _snapshot_once(repo_id, revision, token=token, offline_now=offline_now,
                                            patterns=patterns, accept=accept, force_download=force_download))


def _snapshot_once(repo_id: str, revision: str, *, token: Optional[str], offline_now: bool,
                   patterns: Sequence[str], accept: Optional[Callable[[Path], bool]],
                   force_download: bool = False) -> Path:
    from huggingface_hub import snapshot_download

    with _hub_errors(repo_id, revision, token=token, offline_now=offline_now):
        folder = Path(
            snapshot_download(
                repo_id,
                revision=revision,
                cache_dir=cache_dir(),
                local_files_only=offline_now,
                token=token,
                allow_patterns=patterns,
                force_download=force_download and not offline_now,
                endpoint=endpoint(),
                library_name="zoo",
                etag_timeout=hub_timeout(),
            )
        )
        complete = (folder / "model.safetensors").is_file() and (folder / "config.json").is_file()
        if not complete and not (accept is not None and accept(folder)):
            _refuse_incomplete(repo_id, revision, folder, token=token, offline_now=offline_now)
    _verify_snapshot(repo_id, folder, token=token, offline_now=offline_now, patterns=patterns)
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


# -- verification ------------------------------------------------------------------------------

_MARKER_SUFFIX = ".zoo-verified"


def _marker(blob: Path) -> Path:
    """The verified-marker of a blob: beside it, named by the blob's hash (its file name)."""
    return blob.with_name(blob.name + _MARKER_SUFFIX)


def _stamp(blob: Path) -> dict:
    info = blob.stat()
    return {"size": info.st_size, "mtime_ns": info.st_mtime_ns, "inode": info.st_ino}


def _trusted(pointer: Path) -> bool:
    """True when the file's blob carries a marker written after it was verified, and is unchanged since."""
    import json

    blob = pointer.resolve()
    try:
        return json.loads(_marker(blob).read_text()) == {**_stamp(blob), "blob": blob.name}
    except (OSError, ValueError):
        return False


def _mark_verified(pointer: Path) -> None:
    import json

    blob = pointer.resolve()
    marker = _marker(blob)
    temporary = marker.with_name(f"{marker.name}.{os.getpid()}.tmp")
    try:
        temporary.write_text(json.dumps({**_stamp(blob), "blob": blob.name}))
        os.replace(temporary, marker)  # atomic: a concurrent reader sees no marker or a whole one
    except OSError:  # a read-only cache: the file is verified again next time, nothing worse
        temporary.unlink(missing_ok=True)


def _digests(path: Path) -> dict[str, str]:
    """sha256 of the bytes and the git blob sha1, in one read."""
    import hashlib

    sha256, sha1 = hashlib.sha256(), hashlib.sha1(b"blob %d\0" % path.stat().st_size)
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            sha256.update(chunk)
            sha1.update(chunk)
    return {"sha256": sha256.hexdigest(), "git-sha1": sha1.hexdigest()}


def _listed_hashes(repo_id: str, commit: str, paths: list[str], *, token) -> dict[str, tuple[str, str]]:
    """``{path: (algorithm, digest)}`` for ``paths`` at ``commit``, as the Hub lists them (retried when transient)."""

    def attempt():
        with _hub_errors(repo_id, commit, token=token, offline_now=False):
            entries = _api(token).get_paths_info(repo_id, paths, revision=commit)
        hashes = {}
        for entry in entries:
            lfs = getattr(entry, "lfs", None)
            if lfs is not None:
                hashes[entry.path] = ("sha256", lfs.sha256)
            elif getattr(entry, "blob_id", None):
                hashes[entry.path] = ("git-sha1", entry.blob_id)
        return hashes

    return _retrying(attempt)


def _verify_snapshot(repo_id: str, folder: Path, *, token, offline_now: bool,
                     patterns: Sequence[str] = MODEL_FILES) -> None:
    """Check every fetched file of ``folder`` that is not marked verified; evict and refuse mismatches."""
    import fnmatch

    files = sorted(path for path in folder.rglob("*") if (path.is_file() or path.is_symlink())
                   and any(fnmatch.fnmatch(path.relative_to(folder).as_posix(), p) for p in patterns))
    unverified = [path for path in files if not _trusted(path)]
    if not unverified:
        return
    where = f"{repo_id}@{folder.name}"
    if offline_now:
        # No listing offline: the blob's name is the hash the Hub sent (its ETag) for these bytes.
        expected = {path.relative_to(folder).as_posix(): _etag_hash(path) for path in unverified}
    else:
        try:
            expected = _listed_hashes(repo_id, folder.name, [p.relative_to(folder).as_posix() for p in unverified],
                                      token=token)
        except HubError as error:
            for path in unverified:
                _evict(path)
            raise HubError(
                f"downloaded {where} but could not get the Hub's hashes to check it: {error} The unchecked files "
                "were removed from the cache and nothing was loaded; try again."
            ) from None
    bad = []
    for path in unverified:
        algorithm, digest = expected.get(path.relative_to(folder).as_posix()) or (None, None)
        try:
            actual = _digests(path)
        except FileNotFoundError:  # another process evicted it meanwhile (it was bad)
            bad.append(f"{path.name}: removed from the cache by another process while being checked")
            continue
        if algorithm is None:
            _evict(path)
            bad.append(f"{path.name}: the Hub lists no hash for it")
        elif actual[algorithm] != digest:
            _evict(path)
            bad.append(f"{path.name}: expected {algorithm} {digest}, got {actual[algorithm]}")
        else:
            _mark_verified(path)
    if bad:
        raise IntegrityError(
            f"the download of {where} does not match the Hub's hashes ({'; '.join(bad)}); the bad files were "
            "removed from the cache and nothing was loaded. Try again; if it persists, the server or a proxy is "
            "corrupting files."
        )


def _etag_hash(pointer: Path) -> tuple[Optional[str], Optional[str]]:
    name = pointer.resolve().name
    if re.fullmatch(r"[0-9a-f]{64}", name):
        return "sha256", name
    if re.fullmatch(r"[0-9a-f]{40}", name):
        return "git-sha1", name
    return None, None


def _evict(pointer: Path) -> None:
    """Remove a cached file: its snapshot link, the blob it points to, and the blob's marker."""
    blob = pointer.resolve() if pointer.is_symlink() else None
    pointer.unlink(missing_ok=True)
    if blob is not None and blob.name != pointer.name:
        _marker(blob).unlink(missing_ok=True)
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
    refused with both hashes. Cached files are hashed again at every call (the catalog pin is the
    reference, so no marker is needed). Returns the folder.
    """
    validate_repo_id(repo)
    if not isinstance(revision, str) or not _COMMIT.fullmatch(revision):
        raise InvalidRepoIdError(f"a pinned download needs a full 40-hex commit sha, got {revision!r}")
    names = [validate_file_name(name) for name in sha256]
    offline_now = bool(local_files_only) or offline()
    folder: Optional[Path] = None
    for name in names:
        path = _retrying(lambda name=name: _download_file(repo, revision, name, token=token, offline_now=offline_now,
                                                          force_download=force_download))
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


def _download_file(repo: str, revision: str, name: str, *, token, offline_now: bool,
                   force_download: bool = False) -> Path:
    from huggingface_hub import hf_hub_download

    with _hub_errors(repo, revision, token=token, offline_now=offline_now):
        return Path(
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
                etag_timeout=hub_timeout(),
            )
        )


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
    from .loading import hub_folder

    return hub_folder(repo_id, revision or at_revision, token=token)  # converts a foreign format once


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
    from .integrity import verify_checksums

    verify_checksums(folder)  # never share a folder whose weights changed after they were saved
    api = _api(token)
    message = commit_message or f"Upload {_family_of(folder)} model with zoo"
    where = f"{repo_id}@{branch or 'main'}"

    def prepare():
        with _hub_errors(repo_id, branch or "main", token=token, offline_now=False):
            if tag is not None:
                _refuse_existing_tag(api, repo_id, tag)
            api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
            if branch is not None:
                api.create_branch(repo_id, branch=branch, exist_ok=True)
            operations = _additions(folder, repo_id)
            # uploading the file contents is safe to repeat (they are addressed by their hash)
            api.preupload_lfs_files(repo_id, additions=operations, revision=branch)
            return operations

    operations = _retrying(prepare)
    try:
        with _hub_errors(repo_id, branch or "main", token=token, offline_now=False):
            commit = api.create_commit(repo_id, operations=operations, commit_message=message, revision=branch,
                                       create_pr=create_pr)
    except HubError as error:
        if getattr(error, "transient", False):  # a commit is not repeated blindly: it may have been made
            error.args = (f"{error.args[0]} The commit to {where} may or may not have been made: check the repo's "
                          "history, then push again if it is missing.",)
        raise
    if tag is not None:
        with _hub_errors(repo_id, branch or "main", token=token, offline_now=False):
            api.create_tag(repo_id, tag=tag, revision=commit.oid)
    return str(commit.pr_url if create_pr and commit.pr_url else commit.commit_url)


def _refuse_existing_tag(api, repo_id: str, tag: str) -> None:
    """Fail before anything is committed when ``tag`` already names a commit of ``repo_id``."""
    from huggingface_hub import errors as hf

    try:
        refs = api.list_repo_refs(repo_id)
    except hf.RepositoryNotFoundError:
        return  # a new repo has no tags
    for ref in refs.tags:
        if ref.name == tag:
            raise HubError(
                f"{repo_id} already has a tag {tag!r} (on commit {ref.target_commit[:7]}); nothing was pushed. "
                "Tags name one version for good: pick a new tag (e.g. the next version number), or delete the old "
                f"one first (`hf repos tag delete {repo_id} {tag}`)."
            )


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
