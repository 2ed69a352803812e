"""Every registered trainer keeps the Trainer contract (zoo_core.trainers.conformance)."""

import pytest

import zoo

TRAINERS = sorted(zoo.trainers())


def test_the_core_registers_its_trainers_through_the_hook():
    from zoo_core.plugins import plugin_records

    assert {"accelerate", "plain"} <= set(TRAINERS)
    core = next(r for r in plugin_records() if r.distribution.name == "zoo-core")
    assert "zoo_register_trainers" in core.hooks
    assert {"trainer accelerate", "trainer plain"} <= set(core.registered)


# the contract check of the installable conformance suite (pytest --zoo-trainer NAME), on every trainer
from zoo_core.testing.conformance import test_conformance_trainer_keeps_the_contract  # noqa: E402,F401

ZOO_TRAINERS = ["*"]


@pytest.mark.parametrize("trainer", TRAINERS)
def test_trainer_trains_a_family_with_two_optimizers(trainer, tmp_path):
    import torch

    from zoo_core.trainers.conformance import tiny_dataset

    torch.manual_seed(0)
    model = zoo.build("gan", dict(zoo.families()["gan"].tiny_config))
    result = zoo.trainer(trainer)(model, tiny_dataset(model), zoo.TrainConfig(steps=4, batch_size=8, log_every=2),
                                  out_dir=tmp_path, progress=False, cpu=True).fit()
    assert result.steps == 4 and {"discriminator/loss", "generator/loss", "loss"} <= set(result.last_losses)
    assert zoo.load(tmp_path / "model", device="cpu").family == "gan"


MY_TRAINER_PLUGIN = '''
from zoo_core.plugins import hookimpl
from zoo_core.specs import TrainerSpec

@hookimpl
def zoo_register_trainers(register):
    register(TrainerSpec("counting", "zoo_counting.engine:CountingTrainer", "plain, counting its optimizer steps"))
'''
MY_TRAINER_ENGINE = '''
from zoo_core.trainers.plain import PlainTrainer

class CountingTrainer(PlainTrainer):
    """A third party's engine: the plain loop, counting the batches it trains on."""

    name = "counting"
    batches = 0

    def _train_on_batch(self, batch, is_last):
        CountingTrainer.batches += 1
        return super()._train_on_batch(batch, is_last)
'''


@pytest.fixture(scope="module")
def counting_plugin(tmp_path_factory):
    """A third party's trainer plugin, installed with pip into a folder put on PYTHONPATH."""
    from helpers import pip_install, write_distribution

    root = tmp_path_factory.mktemp("counting")
    source = write_distribution(root / "src", "zoo-counting", {"plugin": MY_TRAINER_PLUGIN, "engine": MY_TRAINER_ENGINE},
                                {"counting": "zoo_counting.plugin"})
    pip_install("--target", str(root / "site"), str(source))
    return {"PYTHONPATH": str(root / "site")}


def test_a_plugin_registers_a_trainer_that_zoo_train_uses(tmp_path, counting_plugin):
    from helpers import MNIST, run_zoo

    env = counting_plugin
    plugins = run_zoo("plugins", env=env, check=True).stdout
    assert "registered: trainer counting" in plugins, plugins
    trained = run_zoo("train", "ae", "--data", str(MNIST), "--data-option", "limit=64", "--set", "hidden_widths=[8]",
                      "--set", "code_dim=2", "--steps", "3", "--batch-size", "16", "--cpu", "--trainer", "counting",
                      "--out", str(tmp_path / "run"), env=env, check=True)
    assert "trained 3 steps" in trained.stdout


@pytest.mark.slow
def test_the_conformance_check_runs_on_a_plugins_trainer(tmp_path, counting_plugin):
    import os
    import subprocess
    import sys

    code = ("import sys; from zoo_core.trainers.conformance import check_trainer; import zoo\n"
            f"check_trainer('counting', {str(tmp_path / 'conformance')!r})\n"
            "print('batches', zoo.trainer('counting').batches)")
    check = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                           env={**os.environ, **counting_plugin})
    assert check.returncode == 0, check.stderr
    assert int(check.stdout.split()[-1]) > 0
