"""The zoo's pytest plugin: ``--zoo-family NAME`` and the ``zoo_family`` / ``zoo_hub`` fixtures.

Loaded by pytest through the ``pytest11`` entry point of ``zoo-core``. It does nothing unless a
test asks for its fixtures or ``--zoo-family`` is given:

* ``pytest --zoo-family NAME [--zoo-family OTHER]`` adds the conformance checks
  (``zoo_core.testing.conformance``) to the run, for each named installed family. With no test
  paths on the command line only the checks run, so it works from any folder.
* ``zoo_family``: the family under test. Parametrized by ``--zoo-family`` when given, else by
  the test module's ``ZOO_FAMILIES`` list. A module's ``ZOO_EXPECTED_FAILURES`` (``{check: {family:
  reason}}``) marks known failures as strict xfails.
* ``zoo_hub``: a Hub-compatible server on 127.0.0.1 (one per session), with ``HF_ENDPOINT``,
  ``HF_TOKEN`` and a fresh ``HF_HOME`` set for the test, so the real ``huggingface_hub`` client
  pushes to and pulls from it.
"""

from __future__ import annotations

import difflib
from pathlib import Path

import pytest

TOKEN = "hf_zoo_conformance_token"


def pytest_addoption(parser):
    group = parser.getgroup("zoo", "zoo plugin conformance")
    group.addoption(
        "--zoo-family", action="append", default=[], metavar="NAME", dest="zoo_family",
        help="run the zoo conformance checks against this installed model family (repeatable)",
    )


def pytest_configure(config):
    config.addinivalue_line("markers", "zoo_conformance: a conformance check of zoo_core.testing")
    names = config.getoption("zoo_family")
    if not names:
        return
    from zoo_core.plugins import families

    known = sorted(families())
    for name in names:
        if name not in known:
            close = difflib.get_close_matches(name, known, n=3)
            hint = f" Did you mean {', '.join(close)}?" if close else ""
            raise pytest.UsageError(
                f"--zoo-family {name}: no installed plugin provides this family.{hint} Installed families: "
                f"{', '.join(known) or 'none'}. Install your plugin (pip install -e .) and see 'zoo plugins'."
            )
    checks = str(Path(__file__).with_name("conformance.py"))
    named_paths = getattr(pytest.Config, "ArgsSource", None)
    if named_paths is not None and config.args_source == named_paths.ARGS:
        config.args.append(checks)  # the paths the user named, and the checks
    else:
        config.args[:] = [checks]  # no paths named: only the checks, from any folder


def pytest_generate_tests(metafunc):
    if "zoo_family" not in metafunc.fixturenames:
        return
    names = metafunc.config.getoption("zoo_family") or list(getattr(metafunc.module, "ZOO_FAMILIES", []))
    if not names:
        skip = pytest.mark.skip(reason="no family to check: pass --zoo-family NAME or set ZOO_FAMILIES in the module")
        metafunc.parametrize("zoo_family", [pytest.param(None, marks=skip)], ids=["no-family"])
        return
    # a module may list known failures: {check name: {family: reason}}; each is a strict xfail, so
    # that the list must shrink when the family is fixed
    expected = getattr(metafunc.module, "ZOO_EXPECTED_FAILURES", {}).get(metafunc.function.__name__, {})
    params = [pytest.param(name, marks=pytest.mark.xfail(strict=True, reason=expected[name])) if name in expected
              else name for name in names]
    metafunc.parametrize("zoo_family", params)


@pytest.fixture(scope="session")
def _zoo_hub_server():
    from .hub_server import HubServer

    server = HubServer(port=0, token=TOKEN).start()
    yield server
    server.stop()


@pytest.fixture
def zoo_hub(_zoo_hub_server, tmp_path, monkeypatch):
    """A running loopback Hub, with HF_ENDPOINT, HF_TOKEN and an empty HF_HOME set for this test.

    The zoo reads these at each call. ``huggingface_hub`` reads its own copies once, at import: it
    is imported first so that the session's settings, not this test's, stay in its constants."""
    import huggingface_hub  # noqa: F401

    _zoo_hub_server.start()
    monkeypatch.setenv("HF_ENDPOINT", _zoo_hub_server.url)
    monkeypatch.setenv("HF_TOKEN", _zoo_hub_server.token)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    monkeypatch.setenv("HF_HUB_DISABLE_XET", "1")
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    yield _zoo_hub_server
