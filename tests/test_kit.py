"""The plugin author's kit: `zoo families`, did-you-mean, catalog checks, the command hook, the
bits_per_dim metric, the catalog's JSON schema and `pytest --zoo-family` errors."""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys

import pytest
import torch

from helpers import REPO, SHARED_DATA, pip_install, run_zoo, write_distribution


def test_zoo_families_shows_config_fields_sampler_options_datasets_and_metrics():
    out = run_zoo("families", "vae", "nerf", check=True).stdout
    # config fields with their type, default and description, from the pydantic schema
    assert 'latent_dim: integer = 20' in out or "latent_dim: integer =" in out, out
    assert 'background: "white" | "black" = "white"  Colour behind the scene' in out
    assert "datasets: blender, nerf-npz (zoo train reads blender)" in out
    assert "metrics: bits_per_dim, elbo" in out and "psnr" in out
    assert "catalog: nerf-lego, nerf-lego-200" in out and re.search(r"catalog: ([\w-]+, )*vae-mnist(,|$)", out, re.M), out
    assert "vae  (zoo-vae " in out and "sampler options:" in out
    data = json.loads(run_zoo("families", "ae", "--json", check=True).stdout)
    assert data[0]["family"] == "ae" and data[0]["config"]["code_dim"]["default"] == 30
    assert "recon" in data[0]["metrics"] and data[0]["dataset"] == "mnist"


def test_unknown_family_dataset_and_metric_names_get_suggestions(tmp_path):
    family = run_zoo("families", "vea")
    assert family.returncode == 2 and "Did you mean vae?" in family.stderr, family.stderr
    dataset = run_zoo("train", "ae", "--dataset", "mnst", "--steps", "1")
    assert dataset.returncode == 2 and "unknown dataset 'mnst'. Did you mean mnist?" in dataset.stderr
    metric = run_zoo("eval", "ae-mnist", "--metric", "recn", "--out", str(tmp_path))
    assert metric.returncode == 2 and "unknown metric 'recn'. Did you mean recon" in metric.stderr
    assert "Traceback" not in family.stderr + dataset.stderr + metric.stderr


def test_a_catalog_entry_must_name_a_registered_dataset_and_a_family_of_its_plugin(capsys):
    from zoo_core import cli, plugins
    from zoo_core.catalog import catalog
    from zoo_core.checks import catalog_problems

    plugins.reset()
    try:
        assert catalog_problems() == []  # the shipped catalog is clean (nerf names its dataset 'blender')
        weights = {"package": "zoo_ae", "path": "weights/ae-mnist",
                   "sha256": {"config.json": "0" * 64, "model.safetensors": "0" * 64}}
        catalog().add_source({"version": 1, "models": {
            "bad-dataset": {"family": "ae", "plugin": "zoo-ae", "weights": weights, "dataset": "mnits"},
            "bad-family": {"family": "autoencoder-x", "plugin": "zoo-ae", "weights": weights},
            "not-installed": {"family": "flow", "plugin": "zoo-flow", "weights": weights},
            "wrong-plugin": {"family": "vae", "plugin": "zoo-ae", "weights": weights},
        }}, "test")
        problems = catalog_problems()
        assert len(problems) == 3, problems
        assert "'wrong-plugin'" in problems[2] and "plugin 'zoo-ae', but the family 'vae' comes from zoo-vae" in problems[2]
        assert "'bad-dataset'" in problems[0] and "dataset 'mnits' is not a registered dataset. Did you mean mnist?" in problems[0]
        assert "'bad-family'" in problems[1] and "family 'autoencoder-x' is not provided by zoo-ae" in problems[1]
        assert cli.main(["plugins"]) == 0
        assert "catalog error: entry 'bad-dataset'" in capsys.readouterr().out
        assert cli.main(["list"]) == 0
        assert "warning: entry 'bad-family'" in capsys.readouterr().err
    finally:
        plugins.reset()


def test_zoo_train_of_a_nerf_catalog_entry_reads_its_registered_dataset(tmp_path):
    # the example: nerf-lego named a file where a dataset name belongs
    result = run_zoo("train", "nerf-lego", "--data", str(SHARED_DATA / "nerf" / "lego_tiny_80views.npz"),
                     "--steps", "1", "--batch-size", "64", "--out", str(tmp_path / "run"), "--cpu",
                     env={"ZOO_QUIET": "1"}, check=True)
    assert "trained 1 steps" in result.stdout


class _Uniform(torch.nn.Module):
    """log p(x) = 0 on [0, 1]^D: the uniform density, 8 bits per dimension on 256 levels."""

    family = "uniform"

    @property
    def device(self):
        return torch.device("cpu")

    def log_prob(self, x):
        return torch.zeros(x.shape[0])


def test_bits_per_dim_of_known_distributions():
    from zoo_core.metrics import bits_per_dim_of

    x = torch.rand(5, 1, 4, 4)
    assert bits_per_dim_of(_Uniform(), x) == pytest.approx(8.0)
    fair_coin = _Uniform()
    fair_coin.log_prob = lambda x: torch.full((x.shape[0],), -x[0].numel() * math.log(2))
    assert bits_per_dim_of(fair_coin, x, levels=0) == pytest.approx(1.0)


def test_bits_per_dim_refuses_a_family_without_log_prob():
    from zoo_core.metrics import bits_per_dim

    model = torch.nn.Linear(1, 1)
    model.family = "linear"
    with pytest.raises(NotImplementedError, match="does not implement log_prob"):
        bits_per_dim(model, data=None)


def test_the_published_catalog_schema_is_generated_from_the_catalog_model():
    sys.path.insert(0, str(REPO / "scripts"))
    try:
        from catalog_schema import TARGET, schema_text
    finally:
        sys.path.pop(0)
    assert TARGET.read_text() == schema_text(), "run: .venv/bin/python scripts/catalog_schema.py"
    schema = json.loads(TARGET.read_text())
    assert schema["$defs"]["CatalogEntry"]["required"] == ["family", "plugin", "weights"]


@pytest.fixture
def command_plugin(tmp_path):
    source = write_distribution(tmp_path, "zoo-cmds", {
        "plugin": """
            from zoo_core.plugins import hookimpl
            from zoo_core.specs import CommandSpec

            @hookimpl
            def zoo_register_commands(register):
                register(CommandSpec("hello", "zoo_cmds.plugin:arguments", "zoo_cmds.plugin:run", "say hello"))
                register(CommandSpec("broken", "zoo_cmds.plugin:no_such_function", "zoo_cmds.plugin:run", "broken"))
                register(CommandSpec("list", "zoo_cmds.plugin:arguments", "zoo_cmds.plugin:run", "clashes"))

            def arguments(parser):
                parser.add_argument("--who", default="world")

            def run(args):
                from zoo_core.cli import UserError
                if args.who == "nobody":
                    raise UserError("hello needs somebody")
                print(f"hello {args.who}")
                return 0
        """}, {"cmds": "zoo_cmds.plugin"})
    pip_install(str(source))
    yield
    subprocess.run([sys.executable, "-m", "pip", "uninstall", "--yes", "--quiet", "zoo-cmds"], check=True)


def test_plugins_add_subcommands_through_zoo_register_commands(command_plugin):
    assert "say hello" in run_zoo("--help", check=True).stdout
    assert run_zoo("hello", "--who", "author", check=True).stdout == "hello author\n"
    mistake = run_zoo("hello", "--who", "nobody")
    assert mistake.returncode == 2 and mistake.stderr.strip() == "zoo: error: hello needs somebody"
    broken = run_zoo("broken")
    assert broken.returncode == 2 and "the command 'broken' of zoo-cmds is broken" in broken.stderr
    listing = run_zoo("list", check=True)  # the core's command wins; `zoo plugins` reports the clash
    assert "ae-mnist" in listing.stdout and listing.stderr == ""
    plugins = run_zoo("plugins", check=True).stdout
    assert "command hello" in plugins
    assert "error: zoo-cmds registers the command 'list', which the core already has; it is ignored" in plugins
    assert "error: the command 'broken' of zoo-cmds is broken (AttributeError" in plugins


def test_pytest_zoo_family_names_the_closest_family_when_it_is_unknown(tmp_path):
    result = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--zoo-family", "vea"],
                            capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 4, result.stdout + result.stderr
    assert "--zoo-family vea: no installed plugin provides this family. Did you mean vae?" in result.stderr


def test_the_guide_says_what_a_batch_is_for_every_registered_dataset():
    from zoo_core.plugins import datasets

    guide = (REPO / "docs" / "writing-plugins.md").read_text()
    table = guide[guide.index("## 7. What a batch is"):guide.index("## 8.")]
    for name in datasets():
        assert f"| `{name}` |" in table, f"docs/writing-plugins.md section 7 does not describe the dataset {name!r}"


def test_zoo_ship_refuses_weights_that_do_not_reproduce_their_metrics(tmp_path):
    package = tmp_path / "zoo_ae"
    package.mkdir()
    (tmp_path / "catalog-entries.yaml").write_text("# entries\nversion: 1\nmodels: {}\n")
    source = REPO / "plugins" / "zoo-ae" / "zoo_ae" / "weights" / "ae-mnist"
    common = [str(source), "--name", "ae-mnist", "--package", "zoo_ae", "--package-dir", str(package),
              "--metric", "recon", "--option", "limit=200", "--data", str(SHARED_DATA / "mnist")]
    refused = run_zoo("ship", *common, "--dtype", "bfloat16", "--rtol", "1e-7")
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "the bfloat16 weights do not reproduce the metrics (rtol 1e-07): recon_error:" in refused.stderr
    assert not (package / "weights").exists() and "models: {}" in (tmp_path / "catalog-entries.yaml").read_text()
    shipped = run_zoo("ship", *common, "--dtype", "float16", "--keep", "recon_error", "--split", "test", check=True)
    assert "recon_error=" in shipped.stdout
    entry = __import__("yaml").safe_load((tmp_path / "catalog-entries.yaml").read_text())["models"]["ae-mnist"]
    assert [m["name"] for m in entry["metrics"]] == ["recon_error"] and entry["metrics"][0]["split"] == "test"
    assert entry["weights"]["sha256"]["config.json"] == (  # same config, same bytes
        __import__("hashlib").sha256((source / "config.json").read_bytes()).hexdigest())
    assert (tmp_path / "catalog-entries.yaml").read_text().startswith("# entries\n")
    card = (package / "weights" / "ae-mnist" / "README.md").read_text()
    assert "- name: ae-mnist\n" in card  # the card's model-index names the catalog entry, not a temporary folder
    again = run_zoo("ship", *common, "--dtype", "float16")
    assert again.returncode == 2 and "exists; shipped weights are not replaced unless you pass --force" in again.stderr
    typo = run_zoo("ship", *common, "--force", "--keep", "recon_eror")
    assert typo.returncode == 2 and "--keep recon_eror: the metrics return no such value" in typo.stderr


def test_zoo_ship_checks_only_the_kept_values_so_timings_do_not_block_it():
    from zoo_core.ship import compare

    before, after = {"psnr": {"psnr": 29.5252, "seconds": 2.0}}, {"psnr": {"psnr": 29.5251, "seconds": 3.7}}
    assert compare(before, after, rtol=0.01) == ["seconds: 2 before, 3.7 after saving"]
    assert compare(before, after, rtol=0.01, keep=["psnr"]) == []
    assert compare(before, {"psnr": {"psnr": 28.0, "seconds": 2.0}}, rtol=0.01, keep=["psnr"]) == [
        "psnr: 29.5252 before, 28 after saving"]


def test_zoo_ship_catalogues_the_config_a_run_trained_not_its_generator_only_export(tmp_path):
    """A GAN run exports its generator only (with_discriminator: false); the catalog's config is the recipe
    that `zoo train NAME` builds, so it must be the trained config, discriminator included."""
    import yaml

    run = tmp_path / "run"
    run_zoo("train", "gan", "--data", str(SHARED_DATA / "mnist"), "--data-option", "limit=128", "--steps", "2",
            "--batch-size", "64", "--set", "hidden_dim=16", "--set", "latent_dim=8", "--out", str(run), "--quiet",
            check=True)
    assert json.loads((run / "model" / "config.json").read_text())["config"]["with_discriminator"] is False
    package = tmp_path / "zoo_gan"
    package.mkdir()
    (tmp_path / "catalog-entries.yaml").write_text("version: 1\nmodels: {}\n")
    run_zoo("ship", str(run), "--name", "gan-tiny", "--package", "zoo_gan", "--package-dir", str(package), check=True)
    entry = yaml.safe_load((tmp_path / "catalog-entries.yaml").read_text())["models"]["gan-tiny"]
    assert entry["config"] == {"hidden_dim": 16, "latent_dim": 8}
    shipped = json.loads((package / "weights" / "gan-tiny" / "config.json").read_text())["config"]
    assert shipped["with_discriminator"] is False  # the weights stay generator-only
