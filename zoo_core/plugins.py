"""Finding and loading plugins.

Plugins are modules named under the ``zoo`` entry-point group of installed distributions. The
core registers its own pieces (``zoo_core.builtin``) through the same hooks. Loading happens once,
on first use, and is guarded: a plugin that fails to import or registers a wrong object is
recorded as a problem (``zoo plugins`` shows it with its traceback) and the others keep working.

Environment variables:

* ``ZOO_DISABLE_PLUGIN_AUTOLOAD=1``: load no entry-point plugins (the core's own pieces still load).
* ``ZOO_PLUGINS=zoo-ae,zoo-vae``: load only these distributions (an allowlist; empty means none).
* ``ZOO_TRACE_HOOKS=1``: print every hook call to stderr (which plugin, which hook, what it registered).

A plugin cannot take the zoo down: an import that raises anything (``sys.exit()`` included; only
Ctrl-C goes through), a hook that raises or registers the wrong kind of object, a ``zoo_*``
function without ``@hookimpl`` and a spec whose import path names a module that is not installed
are recorded against that plugin, and ``zoo plugins`` shows them. ``zoo plugins --check`` also
imports every spec's targets (``check_imports``), which loading does not do, to keep start-up fast.
"""

from __future__ import annotations

import importlib
import os
import re
import sys
import threading
import traceback
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any, Callable, Mapping, Optional

import pluggy

from . import hookspecs
from .errors import PluginConflictError, UnknownFamilyError
from .specs import CommandSpec, ConverterSpec, DatasetSpec, FamilySpec, MetricSpec, TrainerSpec, import_object

ENTRY_POINT_GROUP = "zoo"
CORE_DISTRIBUTION = "zoo-core"
DEFAULT_PLUGINS = ("zoo_core.builtin",)

hookimpl = pluggy.HookimplMarker("zoo")


@dataclass(frozen=True)
class Distribution:
    name: str
    version: str


@dataclass
class PluginRecord:
    """One loaded (or failed) plugin, as ``zoo plugins`` shows it."""

    name: str
    distribution: Distribution
    module: Optional[str] = None
    hooks: list[str] = field(default_factory=list)
    registered: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


@dataclass
class Registered:
    spec: Any
    distribution: Distribution


class PluginState:
    """Everything the plugins registered. Built once by ``state()``."""

    def __init__(self) -> None:
        self.pm = pluggy.PluginManager("zoo")
        self.pm.add_hookspecs(hookspecs)
        self.plugins: dict[str, PluginRecord] = {}
        self.families: dict[str, Registered] = {}
        self.datasets: dict[str, Registered] = {}
        self.metrics: dict[str, Registered] = {}
        self.converters: dict[str, Registered] = {}
        self.commands: dict[str, Registered] = {}
        self.trainers: dict[str, Registered] = {}
        self.catalog_sources: list[tuple[Any, Distribution]] = []
        #: name -> the distributions that registered it (two or more): using the name is an error.
        self.conflicts: dict[tuple[str, str], list[Distribution]] = {}
        self.tracing = os.environ.get("ZOO_TRACE_HOOKS", "").strip().lower() not in ("", "0", "false", "no", "off")
        if self.tracing:  # hooks called through pluggy (self.pm.hook.NAME(...)) trace themselves
            self.pm.trace.root.setwriter(sys.stderr.write)
            self.pm.enable_tracing()

    # -- loading ------------------------------------------------------------------------------

    def load(self) -> None:
        core = Distribution(CORE_DISTRIBUTION, _version(CORE_DISTRIBUTION))
        for module_name in DEFAULT_PLUGINS:
            self._register(module_name, core, lambda m=module_name: importlib.import_module(m))
        if os.environ.get("ZOO_DISABLE_PLUGIN_AUTOLOAD", "").strip() not in ("", "0"):
            return
        allow = os.environ.get("ZOO_PLUGINS")
        allowed = None if allow is None else {_normalize(n) for n in allow.split(",") if n.strip()}
        for entry_point in sorted(metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
            dist = entry_point.dist
            distribution = Distribution(dist.name, dist.version) if dist else Distribution(entry_point.value, "?")
            if allowed is not None and _normalize(distribution.name) not in allowed:
                continue
            refusal = _core_version_refusal(dist, core.version) if dist else None
            if refusal:  # its hooks would run against an API it was not written for
                name = f"{distribution.name}:{entry_point.name}"
                self.plugins[name] = PluginRecord(name=name, distribution=distribution, errors=[refusal])
                continue
            self._register(f"{distribution.name}:{entry_point.name}", distribution, entry_point.load)

    def _register(self, name: str, distribution: Distribution, importer: Callable[[], Any]) -> None:
        record = PluginRecord(name=name, distribution=distribution)
        self.plugins[name] = record
        try:
            module = importer()
            record.module = getattr(module, "__name__", repr(module))
            self.pm.register(module, name=name)
        except KeyboardInterrupt:
            raise
        except BaseException as error:  # a broken plugin must not break the others, not even with sys.exit()
            what = f"called sys.exit({error.code!r})" if isinstance(error, SystemExit) else f"{type(error).__name__}: {error}"
            record.errors.append(
                f'Error importing plugin "{name}" from {distribution.name} {distribution.version}: '
                f"{what}\n{traceback.format_exc()}"
            )
            return
        record.hooks = sorted(impl.name for impl in self.pm.get_hookcallers(module) or [])
        for hook_name in sorted(h for h in dir(module) if h.startswith("zoo_") and callable(getattr(module, h, None))):
            if not hasattr(self.pm.hook, hook_name):
                record.errors.append(f"{name} implements {hook_name}, which is not a zoo hook (typo?)")
            elif hook_name not in record.hooks:
                record.errors.append(
                    f"{name} defines {hook_name} without @hookimpl, so it is never called: decorate it with "
                    "@zoo_core.plugins.hookimpl"
                )
        self._call(name, "zoo_register_families", FamilySpec, self.families)
        self._call(name, "zoo_register_datasets", DatasetSpec, self.datasets)
        self._call(name, "zoo_register_metrics", MetricSpec, self.metrics)
        self._call(name, "zoo_register_trainers", TrainerSpec, self.trainers)
        self._call(name, "zoo_register_converters", ConverterSpec, self.converters)
        self._call(name, "zoo_register_catalog", None, None)
        self._call(name, "zoo_register_commands", CommandSpec, self.commands)

    def _call(self, plugin_name: str, hook_name: str, spec_type, table) -> None:
        record = self.plugins[plugin_name]
        plugin = self.pm.get_plugin(plugin_name)
        for impl in getattr(self.pm.hook, hook_name).get_hookimpls():
            if impl.plugin is not plugin:
                continue

            def register(obj, _kind=hook_name):
                if spec_type is None:  # a catalog source: its content is validated when the catalog is read
                    if not _is_catalog_source(obj):
                        raise TypeError(
                            f"{_kind} registered {obj!r}; a catalog source is a path (str, pathlib.Path, "
                            "importlib.resources file) of a YAML file, or a mapping"
                        )
                    self.catalog_sources.append((obj, record.distribution))
                    record.registered.append(f"catalog {obj if not isinstance(obj, Mapping) else '<mapping>'}")
                    return
                if not isinstance(obj, spec_type):
                    raise TypeError(f"{_kind} registered {obj!r}, expected a {spec_type.__name__}")
                kind = spec_type.__name__.replace("Spec", "").lower()
                for problem in _spec_problems(obj):
                    record.errors.append(f"{kind} {obj.name!r}: {problem}")
                if obj.name in table:
                    other = table[obj.name].distribution
                    self.conflicts.setdefault((kind, obj.name), [other]).append(record.distribution)
                    record.errors.append(
                        f"{kind} {obj.name!r} is registered by both {other.name} and "
                        f"{record.distribution.name}; uninstall one of them"
                    )
                    return
                table[obj.name] = Registered(obj, record.distribution)
                record.registered.append(f"{kind} {obj.name}")

            before = len(record.registered)
            try:
                impl.function(register=register)
            except KeyboardInterrupt:
                raise
            except BaseException as error:  # SystemExit included: one plugin's hook cannot end the zoo
                record.errors.append(
                    f"{plugin_name}.{hook_name} failed: {type(error).__name__}: {error}\n{traceback.format_exc()}"
                )
            if self.tracing:
                added = ", ".join(record.registered[before:]) or "nothing"
                sys.stderr.write(f"zoo hook: {hook_name}(register) in {plugin_name} ({record.module}): {added}\n")

    def check_imports(self) -> None:
        """Import every registered spec's targets; record each failure against the plugin that registered it."""
        tables = (("family", self.families), ("dataset", self.datasets), ("metric", self.metrics),
                  ("trainer", self.trainers), ("command", self.commands), ("converter", self.converters))
        for kind, table in tables:
            for name, registered in sorted(table.items()):
                for path in _import_paths(registered.spec):
                    try:
                        import_object(path)
                    except KeyboardInterrupt:
                        raise
                    except BaseException as error:
                        record = next((r for r in self.plugins.values() if r.distribution == registered.distribution
                                       and f"{kind} {name}" in r.registered), None)
                        message = f"{kind} {name!r}: cannot import {path!r}: {type(error).__name__}: {error}"
                        if record is not None and message not in record.errors:
                            record.errors.append(message)

    # -- lookups ------------------------------------------------------------------------------

    def _check_conflict(self, kind: str, name: str) -> None:
        dists = self.conflicts.get((kind, name))
        if dists:
            names = " and ".join(f"{d.name} {d.version}" for d in dists)
            raise PluginConflictError(
                f"{kind} {name!r} is registered by more than one plugin ({names}); uninstall all but one"
            )


_state: Optional[PluginState] = None
_lock = threading.Lock()


def state() -> PluginState:
    """The loaded plugins (loading them on first call)."""
    global _state
    with _lock:
        if _state is None:
            new = PluginState()
            new.load()
            _state = new
        return _state


def reset() -> None:
    """Forget the loaded plugins; the next lookup loads them again (tests, after a pip install)."""
    global _state
    with _lock:
        _state = None
    from . import catalog

    catalog.reset()


def families() -> dict[str, FamilySpec]:
    return {name: r.spec for name, r in sorted(state().families.items())}


_NOT_PROVIDED = "No installed plugin provides the {kind}"


def get_family(name: str) -> FamilySpec:
    return _lookup("family", name, state().families, error=UnknownFamilyError, lead=_NOT_PROVIDED,
                   listed="Installed families", tail=". Run 'zoo plugins' to see the plugins and their errors.")


def family_distribution(name: str) -> Optional[Distribution]:
    registered = state().families.get(name)
    return registered.distribution if registered else None


def datasets() -> dict[str, DatasetSpec]:
    return {name: r.spec for name, r in sorted(state().datasets.items())}


def get_dataset(name: str) -> DatasetSpec:
    return _lookup("dataset", name, state().datasets)


def metrics() -> dict[str, MetricSpec]:
    return {name: r.spec for name, r in sorted(state().metrics.items())}


def get_metric(name: str) -> MetricSpec:
    return _lookup("metric", name, state().metrics)


def _lookup(kind: str, name: str, table: dict[str, Registered], *, error: type[Exception] = KeyError,
            lead: str = "unknown {kind}", listed: str = "Registered {kind}s",
            tail: str = " ('zoo families' lists them by family)"):
    """The spec registered as ``name``, or ``error`` naming the closest names and all registered ones."""
    state()._check_conflict(kind, name)
    if name not in table:
        from .checks import did_you_mean

        raise error(f"{lead.format(kind=kind)} {name!r}.{did_you_mean(name, table)} {listed.format(kind=kind)}: "
                    f"{', '.join(sorted(table)) or 'none'}{tail}")
    return table[name].spec


def commands() -> dict[str, Registered]:
    """The ``zoo`` subcommands plugins registered (the core's own included), with their distributions."""
    s = state()
    return {name: r for name, r in sorted(s.commands.items()) if ("command", name) not in s.conflicts}


def trainers() -> dict[str, TrainerSpec]:
    return {name: r.spec for name, r in sorted(state().trainers.items())}


def get_trainer(name: str) -> TrainerSpec:
    from .errors import UnknownTrainerError

    return _lookup("trainer", name, state().trainers, error=UnknownTrainerError, lead=_NOT_PROVIDED, tail=".")


def converters() -> dict[str, ConverterSpec]:
    return {name: r.spec for name, r in sorted(state().converters.items())}


def get_converter(name: str) -> ConverterSpec:
    return _lookup("converter", name, state().converters, tail="")


def plugin_records() -> list[PluginRecord]:
    return list(state().plugins.values())


def check_imports() -> list[PluginRecord]:
    """``zoo plugins --check``: import every spec's targets now; returns the records (with any new errors)."""
    state().check_imports()
    return plugin_records()


def owner_of(spec: Any) -> Optional[Distribution]:
    """The distribution that registered ``spec`` (a FamilySpec, DatasetSpec or MetricSpec), if any."""
    s = state()
    for table in (s.families, s.datasets, s.metrics):
        for registered in table.values():
            if registered.spec is spec:
                return registered.distribution
    return None


def _is_catalog_source(obj: Any) -> bool:
    return isinstance(obj, (str, os.PathLike, Mapping)) or (
        callable(getattr(obj, "read_text", None)) and not isinstance(obj, type)
    )


def _import_paths(spec: Any) -> list[str]:
    if isinstance(spec, FamilySpec):
        return [spec.config, spec.model]
    if isinstance(spec, DatasetSpec):
        return [spec.loader]
    if isinstance(spec, MetricSpec):
        return [spec.function]
    if isinstance(spec, CommandSpec):
        return [spec.arguments, spec.run]
    if isinstance(spec, TrainerSpec):
        return [spec.trainer]
    if isinstance(spec, ConverterSpec):
        return [spec.detect, spec.convert]
    return []


def _spec_problems(spec: Any) -> list[str]:
    """What can be told about a spec's import paths without importing them (start-up stays fast):
    their form, and whether their top-level package is installed at all."""
    import importlib.util

    problems = []
    for path in _import_paths(spec):
        module, _, attribute = path.partition(":") if isinstance(path, str) else ("", "", "")
        if not module or not attribute or not all(part.isidentifier() for part in module.split(".") + attribute.split(".")):
            problems.append(f"import path {path!r} must look like 'package.module:attribute'")
            continue
        top = module.split(".")[0]
        try:
            found = top in sys.modules or importlib.util.find_spec(top) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            problems.append(f"import path {path!r} names the package {top!r}, which is not installed")
    return problems


_CORE_REQUIREMENT = re.compile(r"^\s*zoo[-_.]core\s*(?:\[[^\]]*\])?\s*\(?(?P<spec>[^;()]*)\)?\s*(?:;(?P<marker>.*))?$", re.I)


def _core_version_refusal(dist: metadata.Distribution, core_version: str) -> Optional[str]:
    """Why a plugin distribution cannot load with this zoo-core (its ``zoo-core`` requirement
    excludes the installed version), or None when it can (or states no range). Requirements are
    read with a small pattern and ``packaging.specifiers``: ``packaging.requirements`` alone would
    cost ``zoo list`` a tenth of a second."""
    for text in dist.requires or []:
        match = _CORE_REQUIREMENT.match(text)
        if not match or not match.group("spec").strip() or "extra" in (match.group("marker") or ""):
            continue
        specifier = match.group("spec").strip().replace(" ", "")
        supported = _simple_specifier_contains(specifier, core_version)
        if supported is None:  # not plain "op number" clauses: packaging decides (slower to import)
            from packaging.specifiers import InvalidSpecifier, SpecifierSet
            from packaging.version import InvalidVersion, Version

            try:
                supported = SpecifierSet(specifier).contains(Version(core_version), prereleases=True)
            except (InvalidSpecifier, InvalidVersion):
                return None
        if not supported:
            name = dist.metadata["Name"]
            return (
                f"{name} {dist.version} supports zoo-core {specifier}, but zoo-core {core_version} is installed; "
                f"it was not loaded. Upgrade the plugin (pip install -U {name}) or install a zoo-core it supports "
                f"(pip install 'zoo-core{specifier}')."
            )
    return None


_CLAUSE = re.compile(r"^(>=|<=|==|!=|<|>)(\d+(?:\.\d+)*)$")
_OPERATORS = {">=": tuple.__ge__, "<=": tuple.__le__, "==": tuple.__eq__, "!=": tuple.__ne__,
              "<": tuple.__lt__, ">": tuple.__gt__}


def _simple_specifier_contains(specifier: str, version: str) -> Optional[bool]:
    """``">=0.1,<0.2"`` and ``"0.1.0"`` -> whether it holds, for plain numeric clauses and versions;
    None when either is anything else (``~=``, wildcards, pre-releases)."""
    if not re.fullmatch(r"\d+(?:\.\d+)*", version):
        return None
    clauses = [_CLAUSE.match(c) for c in specifier.split(",")]
    if not all(clauses):
        return None

    def padded(text: str, width: int) -> tuple[int, ...]:
        parts = tuple(int(p) for p in text.split("."))
        return parts + (0,) * (width - len(parts))

    results = []
    for clause in clauses:
        width = max(len(version.split(".")), len(clause.group(2).split(".")))
        results.append(_OPERATORS[clause.group(1)](padded(version, width), padded(clause.group(2), width)))
    return all(results)


def _normalize(name: str) -> str:
    return name.strip().lower().replace("_", "-")


def _version(dist_name: str) -> str:
    try:
        return metadata.version(dist_name)
    except metadata.PackageNotFoundError:
        from . import __version__

        return __version__
