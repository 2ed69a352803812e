"""A snapshot of the catalog listing, so that ``zoo list`` starts in a few tens of milliseconds.

Reading the catalog means loading every plugin (pluggy, their modules) and validating the entries
(pydantic): most of ``zoo list``'s time. After a full read, the listing (each entry as JSON, whether
its plugin is installed, the catalog errors) is written to ``~/.cache/zoo/listing.json`` with a
fingerprint of everything it came from: the installed ``zoo`` entry points (distribution, version,
module file size and mtime), the catalog files (size, mtime), this package's version, and the
plugin environment variables. ``zoo list`` uses the snapshot only when the fingerprint still
matches; anything else (a plugin installed, upgraded or edited, a catalog file changed, a source
that is not a file) reads the catalog in full. ``ZOO_NO_CATALOG_CACHE=1`` turns it off.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Optional

_VERSION = 1
_ENVIRONMENT = ("ZOO_PLUGINS", "ZOO_DISABLE_PLUGIN_AUTOLOAD")


def _disabled() -> bool:
    # with ZOO_TRACE_HOOKS the user wants to see the hooks run, which a snapshot would skip
    return any(os.environ.get(name, "").strip() not in ("", "0") for name in ("ZOO_NO_CATALOG_CACHE", "ZOO_TRACE_HOOKS"))


def _path() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "zoo" / "listing.json"


def _stat(path: str) -> Optional[list]:
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return [stat.st_size, stat.st_mtime_ns]


def _plugins_fingerprint() -> list:
    """The installed entry points of the ``zoo`` group, with their modules' size and mtime."""
    import importlib.util
    from importlib import metadata

    from . import __version__

    found = []
    for entry_point in metadata.entry_points(group="zoo"):
        dist = entry_point.dist
        module = entry_point.value.partition(":")[0].strip()
        try:
            spec = importlib.util.find_spec(module)
        except (ImportError, ValueError):
            spec = None
        origin = spec.origin if spec is not None and spec.origin else None
        found.append([dist.name if dist else "?", dist.version if dist else "?", entry_point.name, entry_point.value,
                      origin, _stat(origin) if origin else None])
    own = [__version__, _stat(__file__), _stat(str(Path(__file__).with_name("catalog.py"))),
           [os.environ.get(name) for name in _ENVIRONMENT]]
    return [own, sorted(found, key=lambda row: json.dumps(row))]


def load() -> Optional[dict[str, Any]]:
    """The snapshot when it still describes the installed plugins and catalog files, else None."""
    if _disabled():
        return None
    try:
        snapshot = json.loads(_path().read_text("utf-8"))
        if snapshot.get("version") != _VERSION:
            return None
        if any(_stat(path) != stat for path, stat in snapshot["sources"]):
            return None
        if snapshot["plugins"] != json.loads(json.dumps(_plugins_fingerprint())):
            return None
        return snapshot
    except (OSError, ValueError, KeyError, TypeError):
        return None


def save(catalog, errors: list[str]) -> None:
    """Write the snapshot of ``catalog`` (the full read that just happened) and the ``errors``
    that ``zoo list`` prints about it; best effort."""
    if _disabled():
        return
    from .plugins import family_distribution, state

    sources = []
    for source, _ in state().catalog_sources:
        if isinstance(source, dict):
            return  # a mapping has no file to watch: always read in full
        path = str(Path(str(source)).resolve())
        stat = _stat(path)
        if stat is None:
            return
        sources.append([path, stat])
    entries = {}
    for name, entry in catalog.entries.items():
        entries[name] = {
            "data": entry.model_dump(mode="json"),
            "installed": family_distribution(entry.family) is not None,
            "source": entry.source,
        }
    snapshot = {"version": _VERSION, "plugins": _plugins_fingerprint(), "sources": sources, "entries": entries,
                "conflicts": sorted(catalog.conflicts), "errors": list(errors)}
    path = _path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(snapshot), "utf-8")
        os.replace(tmp, path)
    except OSError:
        pass
