"""The catalog: named, pretrained models, read from ``registry.yaml`` and plugins' fragments.

Every entry is validated by pydantic; a typo or an unknown key is an error naming the file and
the entry. Nothing here imports torch.
"""

from __future__ import annotations

import difflib
import fnmatch
import hashlib
import json
import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal, Mapping, Optional, Union

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, ValidationError, field_validator, model_validator

from .errors import CatalogError, PluginConflictError, UnknownModelError

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_COMMIT = re.compile(r"^[0-9a-f]{40}$")


class _Strict(BaseModel):
    # defer_build: the validators are built on first validation, not at import (a cached catalog never needs them)
    model_config = ConfigDict(frozen=True, extra="forbid", protected_namespaces=(), defer_build=True)


def _check_hashes(value: dict[str, str]) -> dict[str, str]:
    for file, digest in value.items():
        if not _SHA256.match(digest):
            raise ValueError(f"sha256 of {file!r} must be 64 lowercase hex digits, got {digest!r}")
        if "/" in file or "\\" in file or file.startswith("."):
            raise ValueError(f"file name {file!r} must be a plain file name")
    if "model.safetensors" not in value or "config.json" not in value:
        raise ValueError("sha256 must list at least config.json and model.safetensors")
    return value


class PackageWeights(_Strict):
    """Weights shipped inside an installed Python package (work offline right after install)."""

    package: str = Field(description="Importable package that holds the folder, e.g. zoo_ae.")
    path: str = Field(description="Folder inside the package with config.json and model.safetensors.")
    sha256: dict[str, str] = Field(description="File name -> sha256 of its bytes, checked at load.")

    _hashes = field_validator("sha256")(_check_hashes)


class HubWeights(_Strict):
    """Weights in a Hub repository, pinned to one commit (or, with ``unpinned: true``, a branch)."""

    repo: str = Field(description="Hub repo id, org/name.")
    revision: str = Field(description="The full 40-hex commit sha the entry was measured on.")
    sha256: dict[str, str] = Field(
        default_factory=dict,
        description="File name -> sha256 of its bytes, checked after download (may be empty for a foreign "
                    "format: its files are then checked against the hashes the Hub lists).",
    )
    format: Optional[str] = Field(
        None, description="A registered converter (e.g. 'diffusers'): the repo is in that format and is "
                          "converted into the zoo's cache on first load.")
    unpinned: bool = Field(
        False, description="True: revision may be a branch (e.g. main) because no commit could be resolved "
                           "when the entry was written; zoo info and the card say so.")

    @field_validator("sha256")
    @classmethod
    def _hashes(cls, value: dict[str, str]) -> dict[str, str]:
        for file, digest in value.items():
            if not _SHA256.match(digest):
                raise ValueError(f"sha256 of {file!r} must be 64 lowercase hex digits, got {digest!r}")
            if "\\" in file or file.startswith(".") or ".." in file:
                raise ValueError(f"file name {file!r} must be a plain relative path")
        return value

    @model_validator(mode="after")
    def _pinned(self):
        if not self.unpinned and not _COMMIT.match(self.revision):
            raise ValueError(f"revision must be a full 40-hex commit sha (pin it), got {self.revision!r}; "
                             "an entry that cannot be pinned yet says unpinned: true")
        if self.format is None:
            _check_hashes(self.sha256)
        return self


def _weights_kind(value: Any) -> str:
    if isinstance(value, dict):
        return "hub" if "repo" in value else "package"
    return "hub" if isinstance(value, HubWeights) else "package"


Weights = Annotated[
    Union[Annotated[PackageWeights, Tag("package")], Annotated[HubWeights, Tag("hub")]],
    Discriminator(_weights_kind),
]


class MetricEntry(_Strict):
    name: str
    value: float
    dataset: Optional[str] = None
    split: Optional[str] = None
    dataset_config: Optional[str] = Field(None, description="The dataset's configuration (e.g. a NeRF scene: lego).")
    command: Optional[str] = Field(None, description="The command that measured it, so anyone can re-run it.")
    reported_by: Optional[str] = Field(
        None, description="Instead of a command: the publication that reports this number (the zoo did not measure it).")
    stderr: Optional[float] = Field(None, description="Standard error of a Monte Carlo estimate, when it is one.")
    args: dict[str, Any] = Field(default_factory=dict, description="Settings of the measure (e.g. a Parzen bandwidth).")
    notes: Optional[str] = None

    @model_validator(mode="after")
    def _measured_or_cited(self):
        if (self.command is None) == (self.reported_by is None):
            raise ValueError("a metric needs exactly one of command (measured by the zoo) or reported_by (cited)")
        return self


class CatalogEntry(_Strict):
    family: str = Field(description="The model family (a FamilySpec name).")
    plugin: str = Field(description="The distribution that provides the family, e.g. zoo-ae.")
    description: str = ""
    config: dict[str, Any] = Field(default_factory=dict, description="Overrides on the family's default config.")
    weights: Weights = Field(description="Where the files are: {package, path, sha256} or {repo, revision, sha256}.")
    dataset: Optional[str] = None
    license: Optional[str] = Field(None, description="A Hub license id (cc-by-sa-3.0, apache-2.0), or other.")
    license_name: Optional[str] = Field(None, description="With license: other, a short slug naming the license.")
    license_link: Optional[str] = Field(None, description="With license: other, a URL of the license's text.")
    train: dict[str, Any] = Field(default_factory=dict, description="TrainConfig overrides that trained it.")
    metrics: list[MetricEntry] = Field(default_factory=list)
    tags: list[str] = Field(default_factory=list)

    @property
    def source(self) -> str:
        if isinstance(self.weights, HubWeights):
            if self.weights.unpinned:
                return f"hub:{self.weights.repo}@{self.weights.revision} (unpinned)"
            return f"hub:{self.weights.repo}@{self.weights.revision[:7]}"
        return f"package:{self.weights.package}/{self.weights.path}"


class CatalogFile(_Strict):
    version: Literal[1] = 1
    models: dict[str, CatalogEntry]


class Catalog:
    def __init__(self) -> None:
        self.entries: dict[str, CatalogEntry] = {}
        self.origins: dict[str, str] = {}  # name -> "file (distribution)"
        self.conflicts: dict[str, list[str]] = {}
        self.errors: list[str] = []

    def add_source(self, source: Any, distribution_name: str) -> None:
        label, models = _validated_source(source)
        origin = f"{label} ({distribution_name})"
        for name, entry in models.items():
            if name in self.entries:
                self.conflicts.setdefault(name, [self.origins[name]]).append(origin)
                continue
            self.entries[name] = entry
            self.origins[name] = origin

    def get(self, name: str) -> CatalogEntry:
        if name in self.conflicts:
            raise PluginConflictError(
                f"model {name!r} is defined twice: in {' and in '.join(self.conflicts[name])}; uninstall one"
            )
        if name not in self.entries:
            close = difflib.get_close_matches(name, list(self.entries), n=3, cutoff=0.5)
            hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
            raise UnknownModelError(
                f"Unknown model {name!r}.{hint} 'zoo list' shows the catalog; a Hub repo is 'org/name', "
                f"a local model is the path of a folder with config.json."
            )
        return self.entries[name]


def _validated_source(source: Any) -> tuple[str, dict[str, CatalogEntry]]:
    """The entries of one catalog source, validated. A YAML file validated once is cached as JSON,
    keyed by its path, size and mtime (and this module's): later runs (``zoo list``) build the
    entries from the cache without parsing YAML or building pydantic validators."""
    cache = _cache_file(source)
    if cache is not None:
        try:
            cached = json.loads(cache.read_text("utf-8"))
            return cached["label"], {name: _construct_entry(data) for name, data in cached["models"].items()}
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            pass  # no cache yet, or an unreadable one: validate
    label, data = _read_source(source)
    try:
        parsed = CatalogFile.model_validate(data)
    except ValidationError as error:
        raise CatalogError(_explain(error, label)) from None
    if cache is not None:
        try:
            cache.parent.mkdir(parents=True, exist_ok=True)
            tmp = cache.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(json.dumps({"label": label, "models": parsed.model_dump(mode="json")["models"]}), "utf-8")
            os.replace(tmp, cache)
        except OSError:
            pass  # a read-only home: every run validates
    return label, dict(parsed.models)


def _cache_file(source: Any) -> Optional[Path]:
    """Where the validated copy of a catalog file is cached (None for mappings, missing files, or
    when ``ZOO_NO_CATALOG_CACHE=1``)."""
    if isinstance(source, dict) or os.environ.get("ZOO_NO_CATALOG_CACHE", "").strip() not in ("", "0"):
        return None
    try:
        path = Path(str(source)).resolve()
        stat, own = path.stat(), Path(__file__).stat()
    except OSError:
        return None
    from . import __version__

    key = f"{path}|{stat.st_size}|{stat.st_mtime_ns}|{own.st_size}|{own.st_mtime_ns}|{__version__}"
    root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "zoo" / "catalog"
    return root / (hashlib.sha256(key.encode()).hexdigest()[:32] + ".json")


def _construct_entry(data: dict[str, Any]) -> CatalogEntry:
    """A CatalogEntry from data that was validated when it was cached (no validation again)."""
    weights = data["weights"]
    weights = (HubWeights if "repo" in weights else PackageWeights).model_construct(**weights)
    metrics = [MetricEntry.model_construct(**m) for m in data.get("metrics", [])]
    return CatalogEntry.model_construct(**{**data, "weights": weights, "metrics": metrics})


def _read_source(source: Any) -> tuple[str, Any]:
    if isinstance(source, Mapping):
        return "<mapping>", dict(source)
    if not isinstance(source, (str, os.PathLike)) and not callable(getattr(source, "read_text", None)):
        raise CatalogError(f"a catalog source must be a path of a YAML file or a mapping, got {source!r}")
    label = str(source)
    try:
        text = source.read_text(encoding="utf-8") if hasattr(source, "read_text") else Path(source).read_text("utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise CatalogError(f"cannot read catalog file {label}: {error}") from None
    import yaml

    # libyaml's safe loader when PyYAML was built with it (about 20x faster on registry.yaml), else
    # the pure-Python one; both build the same plain objects.
    try:
        return label, yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except (yaml.YAMLError, RecursionError) as error:
        raise CatalogError(f"{label} is not valid YAML: {error}") from None


def _explain(error: ValidationError, label: str) -> str:
    lines = [f"{label}: invalid catalog"]
    for item in error.errors():
        location = list(item["loc"])
        where = ""
        if len(location) >= 2 and location[0] == "models":
            where = f"entry {location[1]!r}, "
            location = location[2:]
        field = ".".join(str(p) for p in location if str(p) not in ("package", "hub")) or "(top level)"
        lines.append(f"  {where}field {field}: {item['msg']}")
    return "\n".join(lines)


_catalog: Optional[Catalog] = None


def catalog() -> Catalog:
    """The catalog of every installed plugin (read on first use)."""
    global _catalog
    if _catalog is None:
        from .plugins import state

        new = Catalog()
        for source, distribution in state().catalog_sources:
            try:
                new.add_source(source, distribution.name)
            except CatalogError as error:
                new.errors.append(str(error))
            except Exception as error:  # one plugin's odd fragment must not hide every other catalog entry
                new.errors.append(f"{distribution.name}: cannot read its catalog source {source!r}: "
                                  f"{type(error).__name__}: {error}")
        _catalog = new
    return _catalog


def loaded() -> bool:
    """Whether this process has built the catalog (``zoo list`` then trusts it over its snapshot)."""
    return _catalog is not None


def reset() -> None:
    global _catalog
    _catalog = None


def list_models(pattern: Optional[str] = None, pretrained: bool = True) -> list[str]:
    """Names, sorted; ``pattern`` is a shell wildcard (``"ddpm-*"``). ``pretrained=True``: the
    catalog's models (they all have weights). ``pretrained=False``: everything
    ``zoo.create_model(name, pretrained=False)`` builds: the catalog's names and the installed families."""
    names = set(catalog().entries)
    if not pretrained:
        from .plugins import families

        names |= set(families())
    names = sorted(names)
    if pattern:
        names = [n for n in names if fnmatch.fnmatchcase(n, pattern)]
    return names


def info(name: str) -> dict[str, Any]:
    """A catalog entry as a plain dict, with whether its plugin is installed."""
    from .plugins import family_distribution

    entry = catalog().get(name)
    data = entry.model_dump(mode="json")
    data["name"] = name
    data["source"] = entry.source
    if isinstance(entry.weights, HubWeights) and entry.weights.unpinned:
        data["pinned"] = (f"no: revision {entry.weights.revision!r} is a branch, not a commit; `zoo pull {name}` "
                          "prints the commit it resolves to")
    data["installed"] = family_distribution(entry.family) is not None
    data["defined_in"] = catalog().origins[name]
    return data
