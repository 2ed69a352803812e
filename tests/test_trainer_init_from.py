"""``train.init_from``: a run that starts from a trained model's weights (fine-tuning), through the CLI and
the installed zoo-vae plugin, e.g. iwae-mnist, which fine-tunes iwae-mnist-k5 with another k."""

import json

import pytest
import torch
from safetensors.torch import load_file

from helpers import MNIST, run_zoo

pytestmark = pytest.mark.skipif(not MNIST.exists(), reason="needs ../shared/data/mnist")

SMALL = ("--set", "hidden_dim=16", "--set", "latent_dim=4", "--set", "output_bias_init=data_mean")
DATA = ("--data", str(MNIST), "--dataset", "mnist-binarized", "--data-option", "limit=64", "--batch-size", "16", "-q")


def weights(folder):
    return load_file(folder / "model" / "model.safetensors")


@pytest.fixture(scope="module")
def stage_one(tmp_path_factory):
    out = tmp_path_factory.mktemp("init_from") / "stage-one"
    run_zoo("train", "vae", *DATA, *SMALL, "--steps", "4", "--lr", "0.01", "--trainer", "plain", "--out", str(out),
            check=True)
    return out


def test_a_run_starts_from_the_weights_of_init_from_not_a_fresh_initialization(stage_one, tmp_path):
    # another objective and k (not shapes), and an lr so small that the one step leaves the weights as they came
    tuned = tmp_path / "tuned"
    result = run_zoo("train", "vae", *DATA, *SMALL, "--set", "objective=iwae", "--set", "k=3", "--steps", "1",
                     "--lr", "1e-30", "--train-set", f"init_from={stage_one / 'model'}", "--out", str(tuned), check=True)
    assert f"initialized from {stage_one / 'model'}" in result.stdout
    before, after = weights(stage_one), weights(tuned)
    assert before.keys() == after.keys()
    for key in before:
        torch.testing.assert_close(after[key], before[key], rtol=0, atol=1e-20, msg=key)

    fresh = tmp_path / "fresh"  # the same command without init_from starts elsewhere
    run_zoo("train", "vae", *DATA, *SMALL, "--set", "objective=iwae", "--set", "k=3", "--steps", "1", "--lr", "1e-30",
            "--out", str(fresh), check=True)
    assert max(float((weights(fresh)[k] - before[k]).abs().max()) for k in before) > 1e-3

    config = json.loads((tuned / "model" / "config.json").read_text())["config"]
    assert (config["objective"], config["k"]) == ("iwae", 3)
    card = (tuned / "model" / "README.md").read_text()
    assert f"- `init_from`: {stage_one / 'model'}" in card


def test_init_from_weights_that_do_not_fit_the_config_is_a_clear_error(stage_one, tmp_path):
    result = run_zoo("train", "vae", *DATA, "--set", "hidden_dim=32", "--set", "latent_dim=4", "--steps", "1",
                     "--train-set", f"init_from={stage_one / 'model'}", "--out", str(tmp_path / "wide"))
    assert result.returncode != 0
    assert f"the weights of init_from={str(stage_one / 'model')!r} do not match the model's config" in result.stderr
    assert "wrong shapes" in result.stderr
    assert "Traceback" not in result.stderr


def test_init_from_a_model_of_another_family_is_a_clear_error(tmp_path):
    result = run_zoo("train", "vae", *DATA, *SMALL, "--steps", "1", "--train-set", "init_from=ae-mnist",
                     "--out", str(tmp_path / "other"))
    assert result.returncode != 0
    assert "init_from='ae-mnist' is a ae model and this run trains a vae" in result.stderr
    assert "Traceback" not in result.stderr


def test_resuming_with_another_init_from_is_refused(stage_one, tmp_path):
    out = tmp_path / "run"
    run_zoo("train", "vae", *DATA, *SMALL, "--steps", "2", "--checkpoint-every", "1", "--trainer", "plain",
            "--train-set", f"init_from={stage_one / 'model'}", "--out", str(out), check=True)
    result = run_zoo("train", "vae", *DATA, *SMALL, "--steps", "3", "--trainer", "plain", "--resume", "--out", str(out))
    assert result.returncode != 0
    assert "init_from" in result.stderr and "other settings" in result.stderr


def test_every_catalog_recipe_that_fine_tunes_starts_from_a_catalog_model_whose_weights_fit_it():
    """``zoo train NAME`` of an entry with ``init_from`` loads that model: it must be in the catalog, of the
    entry's family, with weights that fit the entry's config (e.g. iwae-mnist from iwae-mnist-k5)."""
    import zoo
    from zoo_core.catalog import catalog
    from zoo_core.generator import load_weights

    entries = catalog().entries
    fine_tuned = {name: entry for name, entry in entries.items() if entry.train.get("init_from")}
    assert "iwae-mnist" in fine_tuned
    for name, entry in fine_tuned.items():
        source = entry.train["init_from"]
        assert source in entries and entries[source].family == entry.family, (name, source)
        load_weights(zoo.build(entry.family, entry.config), zoo.load(source, device="cpu").state_dict(),
                     source=f"{name}'s init_from {source}")
