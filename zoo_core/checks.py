"""Checks that need both the catalog and the plugins: what ``zoo plugins`` reports under
"catalog error" and the conformance suite asserts. Nothing here imports torch."""

from __future__ import annotations

import difflib


def did_you_mean(name: str, known) -> str:
    """`` Did you mean a, b?`` for the closest of ``known``, or an empty string."""
    close = difflib.get_close_matches(name, sorted(known), n=3)
    return f" Did you mean {', '.join(close)}?" if close else ""


def catalog_problems() -> list[str]:
    """One line per catalog entry that cannot work although its plugin is installed: a family that
    the plugin does not provide, a plugin that does not provide the family, or a dataset that no
    installed plugin registers.

    Entries of plugins that are not installed are not problems (``zoo list`` marks them).
    """
    from .catalog import catalog
    from .plugins import state

    s = state()
    installed = {_normal(record.distribution.name) for record in s.plugins.values()}
    problems = []
    for name, entry in sorted(catalog().entries.items()):
        origin = catalog().origins[name]
        if entry.family not in s.families:
            if _normal(entry.plugin) in installed:
                provided = sorted(f for f, r in s.families.items() if r.distribution.name == entry.plugin)
                problems.append(
                    f"entry {name!r} ({origin}): family {entry.family!r} is not provided by {entry.plugin}, which "
                    f"provides {', '.join(provided) or 'no family'}.{did_you_mean(entry.family, s.families)}"
                )
            continue
        provider = s.families[entry.family].distribution.name
        if _normal(provider) != _normal(entry.plugin):
            problems.append(
                f"entry {name!r} ({origin}): plugin {entry.plugin!r}, but the family {entry.family!r} comes from "
                f"{provider}; 'pip install {entry.plugin}' hints would be wrong"
            )
        if entry.dataset is not None and entry.dataset not in s.datasets:
            problems.append(
                f"entry {name!r} ({origin}) of family {entry.family!r}: dataset {entry.dataset!r} is not a registered "
                f"dataset.{did_you_mean(entry.dataset, s.datasets)} Registered datasets: {', '.join(sorted(s.datasets))}"
            )
    return problems


def _normal(distribution: str) -> str:
    return distribution.strip().lower().replace("_", "-")
