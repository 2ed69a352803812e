"""Every hook of the zoo, in one place.

A plugin is a module that implements some of these with ``@zoo_core.hookimpl`` and is named
under the ``zoo`` entry-point group of its distribution::

    [project.entry-points.zoo]
    ae = "zoo_ae.plugin"

Each hook receives a ``register`` callback instead of returning a list, so one plugin can
register any number of things. The hooks are called once, when the plugin manager loads the
plugins (the first time anything asks for families, datasets, metrics, commands or the catalog;
every ``zoo`` command line does, to build its parser); their return values are ignored. Registering a name that another plugin already registered marks the
name as a conflict naming both distributions. Registering an object of the wrong type is reported
by ``zoo plugins`` against the plugin, and the rest of the plugins keep working.

Keep the module behind the entry point light: the specs name their model classes by import path
(``"zoo_ae.model:Autoencoder"``), and nothing heavier than ``zoo_core.specs`` should be imported
at module level. A test keeps this file and ``docs/writing-plugins.md`` in sync.
"""

from __future__ import annotations

from typing import Callable

import pluggy

from .specs import CommandSpec, DatasetSpec, FamilySpec, MetricSpec

hookspec = pluggy.HookspecMarker("zoo")


@hookspec
def zoo_register_families(register: Callable[[FamilySpec], None]) -> None:
    """Register model families.

    Called once per plugin when plugins are loaded. Call ``register(FamilySpec(...))`` once for
    each family the plugin provides. Returns nothing.
    """


@hookspec
def zoo_register_datasets(register: Callable[[DatasetSpec], None]) -> None:
    """Register dataset readers that ``zoo train --data PATH`` and metrics can use.

    Called once per plugin when plugins are loaded. Call ``register(DatasetSpec(...))`` for each
    dataset. Returns nothing.
    """


@hookspec
def zoo_register_metrics(register: Callable[[MetricSpec], None]) -> None:
    """Register evaluation metrics for ``zoo eval NAME --metric M``.

    Called once per plugin when plugins are loaded. Call ``register(MetricSpec(...))`` for each
    metric. Returns nothing.
    """


@hookspec
def zoo_register_catalog(register: Callable[[object], None]) -> None:
    """Contribute named, pretrained models to the catalog.

    Called once per plugin when the catalog is first read. Call ``register(source)`` where
    ``source`` is a path (``str``, ``pathlib.Path`` or an ``importlib.resources`` traversable) of
    a YAML file in the format of ``registry.yaml``, or a mapping of the same shape. Entries are
    validated like ``registry.yaml``; errors name the file and the entry. Returns nothing.
    """


@hookspec
def zoo_register_commands(register: Callable[[CommandSpec], None]) -> None:
    """Add subcommands to the ``zoo`` command line (like llm's ``register_commands``).

    Called once per plugin when plugins are loaded (every ``zoo`` invocation loads them to build
    its parser). Call ``register(CommandSpec(name, arguments, run, help))`` for each command;
    ``arguments(parser)`` adds its arguments, ``run(args)`` does the work and returns the exit
    status. A name that a core command or another plugin already uses is reported by
    ``zoo plugins`` and the command is not added. Returns nothing.
    """
