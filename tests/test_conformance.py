"""Every installed family passes the conformance suite of ``zoo_core.testing``: the same checks a
plugin author runs with ``pytest --zoo-family NAME`` (the ``pytest11`` plugin of zoo-core)."""

import zoo
from zoo_core.testing.conformance import *  # noqa: F401,F403  (the checks, parametrized over ZOO_FAMILIES)

ZOO_FAMILIES = sorted(zoo.families())


def test_the_first_party_families_are_installed():
    # CI installs every plugin under plugins/; if one fails to load, `zoo plugins` says why
    assert {"ae", "vae", "gan", "ddpm", "nerf"} <= set(ZOO_FAMILIES), ZOO_FAMILIES


# Every first-party family passes every check: no expected failures.
ZOO_EXPECTED_FAILURES: dict = {}
