"""Every registered trainer keeps the Trainer contract (zoo_core.trainers.conformance)."""

import pytest

import zoo
from zoo_core.trainers.conformance import check_trainer

TRAINERS = sorted(zoo.trainers())


def test_the_core_registers_its_trainers_through_the_hook():
    from zoo_core.plugins import plugin_records

    assert {"accelerate", "plain"} <= set(TRAINERS)
    core = next(r for r in plugin_records() if r.distribution.name == "zoo-core")
    assert "zoo_register_trainers" in core.hooks
    assert {"trainer accelerate", "trainer plain"} <= set(core.registered)


@pytest.mark.parametrize("trainer", TRAINERS)
def test_trainer_keeps_the_contract(trainer, tmp_path):
    check_trainer(trainer, tmp_path)


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
