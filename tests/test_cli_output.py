"""What the CLI prints and writes: progress bars and --quiet, zoo env, -V, python -m zoo, a quiet
end when the reader of a pipe leaves, eval's default folder, the demo gallery; and packaging."""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
import tomllib
from importlib import metadata
from pathlib import Path

import pytest

import zoo
from helpers import MNIST, REPO, pip_install, run_zoo, write_distribution

COMMANDS = ["list", "info", "plugins", "sample", "train", "eval", "push", "pull", "render", "demo", "env"]


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_takes_quiet(command):
    assert "--quiet" in run_zoo(command, "--help", check=True).stdout


@pytest.mark.parametrize("quiet", [[], ["--quiet"], "TQDM_DISABLE"])
def test_render_shows_a_progress_bar_unless_quiet(tmp_path, quiet):
    if "nerf" not in zoo.families():
        pytest.skip("zoo-nerf is not installed")
    env = {"TQDM_DISABLE": "1"} if quiet == "TQDM_DISABLE" else {"TQDM_DISABLE": "", "ZOO_QUIET": ""}
    flags = [] if quiet == "TQDM_DISABLE" else quiet
    result = run_zoo("render", "nerf-lego", "--frames", "2", "--size", "8x8", "-o", str(tmp_path / "t.gif"), *flags,
                     env=env, check=True)
    bar = re.search(r"render nerf-lego: .*[0-2]/2 .*frame", result.stderr)  # the bar may close before 2/2 is drawn
    assert bool(bar) == (quiet == []), result.stderr
    assert (tmp_path / "t.gif").is_file()


def test_version_env_and_python_m_zoo():
    version = metadata.version("zoo-core")
    assert run_zoo("-V", check=True).stdout.strip() == f"zoo {version}"
    module = subprocess.run([sys.executable, "-m", "zoo", "--version"], capture_output=True, text=True, check=True)
    assert module.stdout.strip() == f"zoo {version}"
    info = json.loads(run_zoo("env", "--json", check=True).stdout)
    assert info["zoo version"] == version
    assert info["torch version"].split("+")[0] == metadata.version("torch").split("+")[0]
    assert info["accelerate version"] == metadata.version("accelerate")
    assert info["huggingface_hub version"] == metadata.version("huggingface-hub")
    assert "cpu" in info["devices"] and set(info["plugins"]) >= {"zoo-ae", "zoo-vae"}
    text = run_zoo("env", check=True).stdout
    assert f"- zoo version: {version}" in text and "- devices: cpu" in text


def test_a_closed_pipe_ends_quietly():
    result = subprocess.run(f"'{Path(sys.executable).with_name('zoo')}' list --json | head -1", shell=True,
                            capture_output=True, text=True)
    assert result.stdout == "[\n" and result.stderr == "", result.stderr


def test_eval_defaults_to_a_folder_per_model_and_makes_none_on_bad_arguments(tmp_path):
    bad = run_zoo("eval", "ae-mnist", "--metric", "recon", "--metric", "no-such-metric", cwd=tmp_path)
    assert bad.returncode == 2 and not any(tmp_path.iterdir())
    wrong_family = run_zoo("eval", "ae-mnist", "--metric", "psnr", cwd=tmp_path)
    assert wrong_family.returncode == 2 and not any(tmp_path.iterdir())
    run_zoo("eval", "ae-mnist", "--metric", "recon", "--data", str(MNIST), "--option", "limit=200", cwd=tmp_path,
            check=True)
    assert json.loads((tmp_path / "eval" / "ae-mnist" / "metrics.json").read_text())["recon_error"] > 0


def test_demo_writes_an_offline_gallery(tmp_path):
    out = tmp_path / "demo"
    result = run_zoo("demo", "-o", str(out), "-n", "4", "[gv]a[ne]-mnist", check=True)  # gan-mnist, vae-mnist: fast
    page = (out / "index.html").read_text()
    shown = zoo.list_models("[gv]a[ne]-mnist")
    assert shown == ["gan-mnist", "vae-mnist"]
    for name in shown:
        assert f'<img src="{name}.png"' in page and (out / f"{name}.png").is_file()
    for metric in zoo.info("gan-mnist")["metrics"]:
        assert metric["command"] in page
    assert "http" not in page.replace("https://www.cs.toronto.edu", "")  # nothing to fetch: it works offline
    assert f"gallery: {out / 'index.html'}" in result.stdout


def test_demo_samples_with_the_familys_cheap_settings_as_the_cards_do(tmp_path):
    # ddpm-mnist's full sampler is 1000 steps (minutes for a grid on a CPU); the demo takes the card's 20
    result = run_zoo("demo", "-o", str(tmp_path / "demo"), "-n", "2", "ddpm-mnist", check=True)
    assert "ddpm-mnist: wrote" in result.stdout and "num_inference_steps=20" in result.stdout
    run_zoo("sample", "ddpm-mnist", "-n", "2", "--seed", "0", "--option", "num_inference_steps=20",
            "-o", str(tmp_path / "same.png"), check=True)
    assert (tmp_path / "demo" / "ddpm-mnist.png").read_bytes() == (tmp_path / "same.png").read_bytes()


def test_demo_lists_skipped_models_and_why(tmp_path):
    source = write_distribution(tmp_path / "src", "zoo-ghost", {"plugin": '''
        from zoo_core.plugins import hookimpl

        @hookimpl
        def zoo_register_catalog(register):
            register({"version": 1, "models": {"ghost-mnist": {
                "family": "ghost", "plugin": "zoo-ghost-models",
                "weights": {"package": "zoo_ghost", "path": "w", "sha256": {
                    "config.json": "0" * 64, "model.safetensors": "0" * 64}}}}})
        '''}, {"ghost": "zoo_ghost.plugin"})
    target = tmp_path / "site"
    pip_install("--target", str(target), str(source))
    import os

    env = {"PYTHONPATH": os.pathsep.join([str(target), os.environ.get("PYTHONPATH", "")])}
    out = tmp_path / "demo"
    run_zoo("demo", "-o", str(out), "-n", "4", "g*-mnist", env=env, check=True)  # ghost-mnist, gan-mnist
    page = (out / "index.html").read_text()
    assert "<b>ghost-mnist</b>: its plugin zoo-ghost-models is not installed" in page
    assert '<img src="gan-mnist.png"' in page


# -- packaging -----------------------------------------------------------------------------------


def _imports(package: Path, *, testing: bool) -> set[str]:
    """Third-party modules imported by ``package`` (``testing``: only its ``testing`` subpackage,
    which runs under pytest; else everything outside it)."""
    found = set()
    for file in package.rglob("*.py"):
        if ("testing" in file.relative_to(package).parts) != testing:
            continue
        for node in ast.walk(ast.parse(file.read_text())):
            if isinstance(node, ast.Import):
                found |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.add(node.module.split(".")[0])
    return {name for name in found if name not in sys.stdlib_module_names}


DISTRIBUTIONS = [(REPO, ["zoo", "zoo_core"])] + [
    (p.parent, [p.parent.name.replace("-", "_")]) for p in sorted(REPO.glob("plugins/*/pyproject.toml"))
] + [(REPO / "tests/example-plugin/zoo-example", ["zoo_example"])]


@pytest.mark.parametrize("root, packages", DISTRIBUTIONS, ids=lambda v: v.name if isinstance(v, Path) else "")
def test_every_imported_module_is_declared(root, packages):
    project = tomllib.loads((root / "pyproject.toml").read_text())
    declared = {re.split(r"[<>=!~;\[ ]", d, maxsplit=1)[0].lower().replace("_", "-")
                for d in project["project"]["dependencies"]}
    declared.add(project["project"]["name"])
    extras = {re.split(r"[<>=!~;\[ ]", d, maxsplit=1)[0].lower().replace("_", "-")
              for deps in project["project"].get("optional-dependencies", {}).values() for d in deps}
    owners = metadata.packages_distributions()
    for package in packages:
        for testing, allowed in ((False, declared), (True, declared | extras)):  # testing/: pytest's plugin
            for module in _imports(root / package, testing=testing):
                distributions = {d.lower().replace("_", "-") for d in owners.get(module, [module])}
                assert distributions & allowed, f"{root.name}/{package} imports {module} but does not declare it"
    build = tomllib.loads((root / "pyproject.toml").read_text())["build-system"]["requires"]
    assert any(req.replace(" ", "").startswith("setuptools>=77") for req in build)  # PEP 639 license fields
    assert "urls" in project["project"]
    for package in packages:
        assert (root / package / "py.typed").is_file()


def test_plugins_declare_the_zoo_core_range_they_support():
    core = metadata.version("zoo-core")
    from packaging.specifiers import SpecifierSet

    for pyproject in sorted(REPO.glob("plugins/*/pyproject.toml")):
        deps = tomllib.loads(pyproject.read_text())["project"]["dependencies"]
        spec = next(d for d in deps if d.startswith("zoo-core"))[len("zoo-core"):]
        assert spec and core in SpecifierSet(spec), pyproject


def test_the_huggingface_hub_floor_has_the_api_the_zoo_uses():
    from packaging.specifiers import SpecifierSet

    deps = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    spec = SpecifierSet(next(d for d in deps if d.startswith("huggingface-hub"))[len("huggingface-hub"):])
    assert metadata.version("huggingface-hub") in spec
    import inspect

    from huggingface_hub import EvalResult, HfApi, ModelCard, ModelCardData, errors

    assert hasattr(HfApi, "verify_repo_checksums") and hasattr(errors, "RemoteEntryNotFoundError")
    assert "create_pr" in inspect.signature(HfApi.create_commit).parameters
    assert {ModelCard, ModelCardData, EvalResult}
    assert (REPO / "LICENSE").read_text().startswith(" " * 33 + "Apache License")


def test_a_plugin_outside_its_zoo_core_range_is_refused_clearly(tmp_path):
    source = write_distribution(tmp_path / "src", "zoo-old", {"plugin": '''
        from zoo_core.plugins import hookimpl
        from zoo_core.specs import FamilySpec

        @hookimpl
        def zoo_register_families(register):
            register(FamilySpec("old-family", "zoo_old.m:C", "zoo_old.m:M"))
        '''}, {"old": "zoo_old.plugin"})
    pyproject = source / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace('version = "0.0.1"', 'version = "0.0.1"\ndependencies = ["zoo-core<0.1"]'))
    target = tmp_path / "site"
    pip_install("--target", str(target), str(source))
    import os

    env = {"PYTHONPATH": os.pathsep.join([str(target), os.environ.get("PYTHONPATH", "")])}
    plugins = run_zoo("plugins", env=env, check=True).stdout
    assert "zoo-old 0.0.1  [zoo-old:old]  ERROR" in plugins
    assert f"supports zoo-core <0.1, but zoo-core {metadata.version('zoo-core')} is installed" in plugins
    assert "old-family" not in run_zoo("plugins", "--json", env=env, check=True).stdout.split('"errors"')[0]
    assert "zoo-ae" in plugins and "ERROR" not in plugins.split("zoo-old")[0]


def test_zoo_list_reads_a_snapshot_and_notices_changes(tmp_path):
    """The second `zoo list` imports neither pydantic nor pluggy; editing a catalog file, or a
    plugin's arrival, is seen at once."""
    import os

    catalog_file = tmp_path / "entries.yaml"
    source = write_distribution(tmp_path / "src", "zoo-snap", {"plugin": f'''
        from zoo_core.plugins import hookimpl

        @hookimpl
        def zoo_register_catalog(register):
            register({str(catalog_file)!r})
        '''}, {"snap": "zoo_snap.plugin"})
    entry = """
  snap-{n}:
    family: gan
    plugin: zoo-gan
    weights: {{package: zoo_gan, path: weights/gan-mnist, sha256: {{config.json: "{h}", model.safetensors: "{h}"}}}}
"""
    catalog_file.write_text("version: 1\nmodels:" + entry.format(n=1, h="a" * 64))
    target = tmp_path / "site"
    env = {"XDG_CACHE_HOME": str(tmp_path / "cache"), "PYTHONPATH": str(target)}
    before = run_zoo("list", "snap-*", env=env, check=True).stdout
    assert "snap-1" not in before  # not installed yet
    pip_install("--target", str(target), str(source))
    first = run_zoo("list", env=env, check=True).stdout
    assert "snap-1" in first and (tmp_path / "cache" / "zoo" / "listing.json").is_file()
    code = "import sys; from zoo_core.cli import main; main(['list']); print(sorted(m for m in ('pydantic', 'pluggy') if m in sys.modules), file=sys.stderr)"
    fast = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env={**os.environ, **env}, check=True)
    assert fast.stdout == first and fast.stderr.strip().endswith("[]")
    catalog_file.write_text("version: 1\nmodels:" + entry.format(n=1, h="a" * 64) + entry.format(n=2, h="b" * 64))
    assert "snap-2" in run_zoo("list", env=env, check=True).stdout
    full = run_zoo("list", "--json", env={**env, "ZOO_NO_CATALOG_CACHE": "1"}, check=True).stdout
    assert run_zoo("list", "--json", env=env, check=True).stdout == full
