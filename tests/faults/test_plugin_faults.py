"""Broken plugins, installed for real with pip into a target folder: each one is recorded against
itself, `zoo plugins` shows it, and every other command and plugin keeps working."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from helpers import pip_install, run_zoo, write_distribution

EXITS_AT_IMPORT = '''
import sys
sys.exit(3)
'''
BAD_CATALOG_SOURCE = '''
from zoo_core.plugins import hookimpl

@hookimpl
def zoo_register_catalog(register):
    register(42)
'''
EXITS_IN_HOOK = '''
import sys
from zoo_core.plugins import hookimpl

@hookimpl
def zoo_register_families(register):
    sys.exit("giving up")
'''
NO_HOOKIMPL = '''
from zoo_core.specs import FamilySpec

def zoo_register_families(register):
    register(FamilySpec("unmarked", "x:y", "x:z"))
'''
BAD_PATHS = '''
from zoo_core.plugins import hookimpl
from zoo_core.specs import DatasetSpec, FamilySpec

@hookimpl
def zoo_register_families(register):
    register(FamilySpec("nowhere", "zoo_not_installed_anywhere.model:Config", "zoo_badpaths.model:Model"))
    register(FamilySpec("typo", "zoo_badpaths.model:Confg", "zoo_badpaths.model:Model"))

@hookimpl
def zoo_register_datasets(register):
    register(DatasetSpec("bad-form", "zoo_badpaths.model.load"))
'''
BAD_PATHS_MODEL = '''
class Config:
    pass

class Model:
    pass
'''
BUGGY = '''
from zoo_core.plugins import hookimpl
from zoo_core.specs import FamilySpec

@hookimpl
def zoo_register_families(register):
    register(FamilySpec("buggy", "zoo_buggy.model:BuggyConfig", "zoo_buggy.model:Buggy", tiny_config={}))
'''
BUGGY_MODEL = '''
import torch
from torch import nn

from zoo_core.config import ZooConfig
from zoo_core.generator import Generator


class BuggyConfig(ZooConfig):
    size: int = 4


class Buggy(Generator):
    family = "buggy"
    config_class = BuggyConfig
    sampler_options = {"mode": "'ok', 'key-bug' or anything else (refused)"}

    def __init__(self, config):
        super().__init__(config)
        self.w = nn.Parameter(torch.zeros(1, config.size, config.size))

    def sample(self, n, *, generator=None, mode="ok"):
        self.check_sampler_options({"mode": mode})
        if mode == "key-bug":
            table = {}
            return table["missing"]  # a bug: a KeyError from the plugin's own code
        if mode != "ok":
            raise ValueError(f"mode must be 'ok' or 'key-bug', got {mode!r}")  # the plugin telling the user
        return torch.rand(n, 1, self.config.size, self.config.size, generator=generator)

    def training_step(self, batch, *, optimizer="main"):
        return {"loss": (batch - self.w).pow(2).mean()}

    def example_batch(self, batch_size, *, generator=None):
        return torch.rand(batch_size, 1, self.config.size, self.config.size, generator=generator)
'''


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    root = tmp_path_factory.mktemp("src")
    site = tmp_path_factory.mktemp("site")
    sources = [
        write_distribution(root, "zoo-exits", {"plugin": EXITS_AT_IMPORT}, {"exits": "zoo_exits.plugin"}),
        write_distribution(root, "zoo-badsource", {"plugin": BAD_CATALOG_SOURCE}, {"badsource": "zoo_badsource.plugin"}),
        write_distribution(root, "zoo-hookexit", {"plugin": EXITS_IN_HOOK}, {"hookexit": "zoo_hookexit.plugin"}),
        write_distribution(root, "zoo-nomark", {"plugin": NO_HOOKIMPL}, {"nomark": "zoo_nomark.plugin"}),
        write_distribution(root, "zoo-badpaths", {"plugin": BAD_PATHS, "model": BAD_PATHS_MODEL},
                           {"badpaths": "zoo_badpaths.plugin"}),
        write_distribution(root, "zoo-buggy", {"plugin": BUGGY, "model": BUGGY_MODEL}, {"buggy": "zoo_buggy.plugin"}),
    ]
    pip_install("--target", str(site), *map(str, sources))
    return site


def _records(site, *args, **env):
    result = run_zoo("plugins", "--json", *args, env={"PYTHONPATH": str(site), **env})
    assert result.stdout, result.stderr
    return {item.get("distribution"): item for item in json.loads(result.stdout)}, result


def test_every_broken_plugin_is_recorded_against_itself(site):
    records, result = _records(site)
    assert result.returncode == 0, result.stderr
    assert "called sys.exit(3)" in records["zoo-exits"]["errors"][0]
    assert "a catalog source is a path" in records["zoo-badsource"]["errors"][0] and "42" in records["zoo-badsource"]["errors"][0]
    assert "SystemExit: giving up" in records["zoo-hookexit"]["errors"][0]
    assert any("zoo_register_families without @hookimpl" in e for e in records["zoo-nomark"]["errors"])
    assert any("'zoo_not_installed_anywhere', which is not installed" in e for e in records["zoo-badpaths"]["errors"])
    assert any("'zoo_badpaths.model.load' must look like 'package.module:attribute'" in e
               for e in records["zoo-badpaths"]["errors"])
    # a wrong attribute is not caught at load (that would import model code): --check finds it
    assert not any("Confg" in e for e in records["zoo-badpaths"]["errors"])
    assert records["zoo-buggy"]["errors"] == [] and records["zoo-core"]["errors"] == []
    assert all(records[name]["errors"] == [] for name in ("zoo-ae", "zoo-vae") if name in records)


def test_the_rest_of_the_zoo_keeps_working(site):
    env = {"PYTHONPATH": str(site)}
    listing = run_zoo("list", env=env)
    assert listing.returncode == 0 and "ae-mnist" in listing.stdout, listing.stderr
    code = "import zoo; m = zoo.load('ae-mnist', device='cpu'); print(tuple(m.sample(2).shape))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env={"PYTHONPATH": str(site), "PATH": ""})
    assert out.returncode == 0 and out.stdout.strip().startswith("(2,"), out.stderr


def test_plugins_check_imports_every_spec_and_reports_against_the_plugin(site):
    records, result = _records(site, "--check")
    assert result.returncode == 1
    assert any("family 'typo': cannot import 'zoo_badpaths.model:Confg'" in e and "AttributeError" in e
               for e in records["zoo-badpaths"]["errors"])
    assert records["zoo-buggy"]["errors"] == [] and records["zoo-core"]["errors"] == []
    assert run_zoo("plugins", "--check").returncode == 0  # the first-party plugins alone are clean


def test_using_a_spec_whose_import_fails_names_the_plugin(site, tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"family": "typo", "plugin": "zoo-badpaths", "config": {}}))
    (tmp_path / "model.safetensors").write_bytes(b"")
    result = run_zoo("sample", str(tmp_path), env={"PYTHONPATH": str(site)})
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "zoo-badpaths 0.0.1" in result.stderr and "zoo plugins --check" in result.stderr, result.stderr


def test_zoo_trace_hooks_prints_every_hook_call(site):
    result = run_zoo("list", env={"PYTHONPATH": str(site), "ZOO_TRACE_HOOKS": "1"})
    lines = [line for line in result.stderr.splitlines() if line.startswith("zoo hook: ")]
    assert "zoo hook: zoo_register_families(register) in zoo-ae:ae (zoo_ae.plugin): family ae, family sparse-ae, " \
           "family contractive-ae" in lines
    assert any(line.startswith("zoo hook: zoo_register_catalog(register) in zoo-badsource:badsource") for line in lines)
    assert any("zoo-buggy:buggy" in line and "family buggy" in line for line in lines)
    quiet = run_zoo("list", env={"PYTHONPATH": str(site), "ZOO_TRACE_HOOKS": "0"})
    assert "zoo hook:" not in quiet.stderr


def test_a_bug_inside_a_plugin_is_shown_as_the_plugins_bug(site, tmp_path):
    import torch
    from safetensors.torch import save_file

    env = {"PYTHONPATH": str(site), "PATH": ""}
    (tmp_path / "buggy").mkdir()
    (tmp_path / "buggy" / "config.json").write_text(json.dumps({"family": "buggy", "plugin": "zoo-buggy",
                                                                 "config": {"size": 4}}))
    save_file({"w": torch.zeros(1, 4, 4)}, tmp_path / "buggy" / "model.safetensors")
    bug = run_zoo("sample", str(tmp_path / "buggy"), "--option", "mode=key-bug", "-o", str(tmp_path / "x.png"), env=env)
    assert bug.returncode == 1 and "Traceback" not in bug.stderr and bug.stderr.count("\n") == 1, bug.stderr
    assert "bug in the plugin zoo-buggy 0.0.1" in bug.stderr and "KeyError" in bug.stderr
    debug = run_zoo("sample", str(tmp_path / "buggy"), "--option", "mode=key-bug", env={**env, "ZOO_DEBUG": "1"})
    assert "Traceback" in debug.stderr and "zoo_buggy/model.py" in debug.stderr
    told = run_zoo("sample", str(tmp_path / "buggy"), "--option", "mode=loud", "-o", str(tmp_path / "x.png"), env=env)
    assert told.returncode == 2 and told.stderr == "zoo: error: mode must be 'ok' or 'key-bug', got 'loud'\n"
