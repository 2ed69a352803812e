"""The plugin system, with real distributions installed by pip (into a target folder on PYTHONPATH)."""

import json
import subprocess
import sys

import pytest

from helpers import REPO, pip_install, run_zoo, write_distribution

GOOD = '''
from zoo_core.plugins import hookimpl
from zoo_core.specs import FamilySpec

@hookimpl
def zoo_register_families(register):
    register(FamilySpec("third-party", "zoo_good.model:Config", "zoo_good.model:Model", "a third-party family"))
'''
BROKEN = '''
raise ImportError("this plugin needs a library that is not installed")
'''
WRONG_OBJECT = '''
from zoo_core.plugins import hookimpl

@hookimpl
def zoo_register_families(register):
    register("not a FamilySpec")
'''
DUPLICATE = '''
from zoo_core.plugins import hookimpl
from zoo_core.specs import FamilySpec

@hookimpl
def zoo_register_families(register):
    register(FamilySpec("third-party", "x:y", "x:z", "the same name as zoo-good's"))
'''
BAD_CATALOG = '''
from zoo_core.plugins import hookimpl

@hookimpl
def zoo_register_catalog(register):
    register({"version": 1, "models": {"typo-model": {"family": "ae", "plugin": "zoo-ae", "wieghts": {}}}})
'''


@pytest.fixture(scope="module")
def plugin_site(tmp_path_factory):
    """Five small distributions installed with pip into one folder."""
    root = tmp_path_factory.mktemp("src")
    site = tmp_path_factory.mktemp("site")
    sources = [
        write_distribution(root, "zoo-good", {"plugin": GOOD}, {"good": "zoo_good.plugin"}),
        write_distribution(root, "zoo-broken", {"plugin": BROKEN}, {"broken": "zoo_broken.plugin"}),
        write_distribution(root, "zoo-wrong", {"plugin": WRONG_OBJECT}, {"wrong": "zoo_wrong.plugin"}),
        write_distribution(root, "zoo-dupe", {"plugin": DUPLICATE}, {"dupe": "zoo_dupe.plugin"}),
        write_distribution(root, "zoo-badcat", {"plugin": BAD_CATALOG}, {"badcat": "zoo_badcat.plugin"}),
    ]
    pip_install("--target", str(site), *map(str, sources))
    return site


def plugins_json(site, **env):
    result = run_zoo("plugins", "--json", env={"PYTHONPATH": str(site), **env}, check=True)
    return {item.get("distribution"): item for item in json.loads(result.stdout)}, result


def test_broken_plugins_are_reported_and_the_others_keep_working(plugin_site):
    records, _ = plugins_json(plugin_site)
    assert "this plugin needs a library that is not installed" in records["zoo-broken"]["errors"][0]
    assert 'Error importing plugin "zoo-broken:broken"' in records["zoo-broken"]["errors"][0]
    assert "expected a FamilySpec" in records["zoo-wrong"]["errors"][0]
    assert "family third-party" in records["zoo-good"]["registered"] + records["zoo-dupe"]["registered"]
    assert records["zoo-core"]["errors"] == []
    # and the ordinary commands still work
    listing = run_zoo("list", env={"PYTHONPATH": str(plugin_site)})
    assert listing.returncode == 0, listing.stderr
    assert "typo-model" not in listing.stdout


def test_duplicate_names_are_an_error_naming_both_distributions(plugin_site):
    records, _ = plugins_json(plugin_site)
    conflicts = [e for r in records.values() for e in r.get("errors", []) if "registered by both" in e]
    assert len(conflicts) == 1 and "zoo-good" in conflicts[0] and "zoo-dupe" in conflicts[0], conflicts
    code = "import zoo\ntry:\n    zoo.build('third-party')\nexcept Exception as e:\n    print(type(e).__name__, e)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={"PYTHONPATH": str(plugin_site), "PATH": ""}).stdout
    assert out.startswith("PluginConflictError") and "zoo-good" in out and "zoo-dupe" in out, out


def test_a_bad_catalog_fragment_names_its_entry_and_field(plugin_site):
    result = run_zoo("plugins", env={"PYTHONPATH": str(plugin_site)}, check=True)
    assert "entry 'typo-model'" in result.stdout and "wieghts" in result.stdout, result.stdout


def test_autoload_can_be_disabled_and_restricted(plugin_site):
    records, _ = plugins_json(plugin_site, ZOO_DISABLE_PLUGIN_AUTOLOAD="1")
    assert set(records) == {"zoo-core"}  # the core's own pieces still load
    records, _ = plugins_json(plugin_site, ZOO_PLUGINS="zoo-good,zoo-broken")
    assert set(records) == {"zoo-core", "zoo-good", "zoo-broken"}


def test_hookspecs_and_the_plugin_guide_agree():
    from zoo_core import hookspecs

    hooks = sorted(name for name in dir(hookspecs) if name.startswith("zoo_"))
    guide = (REPO / "docs" / "writing-plugins.md").read_text()
    for name in hooks:
        assert f"### `{name}(register)`" in guide, f"{name} is not documented in docs/writing-plugins.md"
        assert getattr(hookspecs, name).__doc__, f"{name} has no docstring"
    documented = {line.split("`")[1].split("(")[0] for line in guide.splitlines() if line.startswith("### `zoo_")}
    assert documented == set(hooks), f"the guide documents hooks that do not exist: {documented - set(hooks)}"


def test_import_zoo_and_zoo_list_do_not_import_torch_or_model_code():
    code = (
        "import sys\n"
        "from importlib import metadata\n"
        "import zoo\n"
        "from zoo_core.cli import main\n"
        "main(['list']); main(['plugins']); zoo.list_models(); zoo.families()\n"
        "entry_modules = {ep.value.split(':')[0] for ep in metadata.entry_points(group='zoo')}\n"
        "packages = {m.split('.')[0] for m in entry_modules}\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] == 'torch'\n"
        "               or (m.split('.')[0] in packages and m not in entry_modules and '.' in m))\n"
        "print('PLUGINS', len(entry_modules))\n"
        "print('HEAVY', heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    lines = out.strip().splitlines()
    assert int(lines[-2].split()[1]) >= 5, out  # the first-party plugins were loaded
    assert lines[-1] == "HEAVY []", out
