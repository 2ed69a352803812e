"""Every installed family passes the conformance suite of ``zoo_core.testing``: the same checks a
plugin author runs with ``pytest --zoo-family NAME`` (the ``pytest11`` plugin of zoo-core)."""

import zoo
from zoo_core.testing.conformance import *  # noqa: F401,F403  (the checks, parametrized over ZOO_FAMILIES)

ZOO_FAMILIES = sorted(zoo.families())


def test_the_first_party_families_are_installed():
    # CI installs every plugin under plugins/; if one fails to load, `zoo plugins` says why
    assert {"ae", "vae", "gan", "ddpm", "nerf"} <= set(ZOO_FAMILIES), ZOO_FAMILIES


# The DDPM family does not declare its sampler options yet (its sample() takes any keyword); that
# work is under way on another branch. Strict: a fixed family fails here until removed.
_UNDECLARED = "sampler options not declared yet (Generator.sampler_options / check_sampler_options)"
ZOO_EXPECTED_FAILURES = {
    "test_conformance_sampler_options_are_declared_and_unknown_ones_refused": {
        family: _UNDECLARED for family in ("ddpm",)
    },
}
