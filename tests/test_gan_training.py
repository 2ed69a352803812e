"""k discriminator steps per generator step on the core Trainer (``Generator.steps_per_optimizer``),
in both built-in trainers, resumable; the GAN's generator-only export; the momentum ramp."""

import json

import pytest
import torch

import zoo
from zoo_core.config import TrainConfig

TINY = {"latent_dim": 8, "hidden_dim": 16}


def _dataset(n=48):
    # distinct items: item i has every pixel i / n, so a batch tells which items it holds
    return [torch.full((1, 28, 28), i / n) for i in range(n)]


def _fit(tmp_path, trainer="plain", resume=None, record=None, model_config=None, **train):
    torch.manual_seed(0)
    model = zoo.build("gan", {**TINY, "discriminator_steps": 3, **(model_config or {})})
    if record is not None:
        original = model.training_step

        def spy(batch, *, optimizer):
            record.append((optimizer, sorted(round(float(x[0, 0, 0]) * 48) for x in batch)))
            return original(batch, optimizer=optimizer)

        model.training_step = spy
    config = TrainConfig(**{"steps": 4, "batch_size": 4, "lr": 1e-3, "log_every": 1, "checkpoint_minutes": 0, **train})
    result = zoo.trainer(trainer)(model, _dataset(), config, out_dir=tmp_path, progress=False, cpu=True).fit(resume=resume)
    return result, model


@pytest.mark.parametrize("trainer", ["plain", "accelerate"])
def test_k_discriminator_steps_each_take_their_own_batch_then_one_generator_step(tmp_path, trainer):
    calls = []
    result, _ = _fit(tmp_path, trainer, record=calls)
    assert result.steps == 4
    assert [name for name, _ in calls] == (["discriminator"] * 3 + ["generator"]) * 4
    d_batches = [items for name, items in calls if name == "discriminator"]
    g_batches = [items for name, items in calls if name == "generator"]
    # 12 discriminator batches of 4 = all 48 items once (one epoch, no repeats)
    assert sorted(i for items in d_batches for i in items) == list(range(48))
    # the generator step shares the last discriminator batch of its training step
    assert g_batches == d_batches[2::3]
    log = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert [entry["step"] for entry in log] == [1, 2, 3, 4]


def test_both_trainers_give_the_same_weights_with_k_steps(tmp_path):
    _fit(tmp_path / "plain", "plain")
    _fit(tmp_path / "accelerate", "accelerate")
    from safetensors.torch import load_file

    plain = load_file(tmp_path / "plain" / "model" / "model.safetensors")
    accelerate = load_file(tmp_path / "accelerate" / "model" / "model.safetensors")
    assert plain.keys() == accelerate.keys()
    for key in plain:
        assert torch.equal(plain[key], accelerate[key]), key


@pytest.mark.parametrize("trainer", ["plain", "accelerate"])
def test_a_run_with_k_steps_resumes_to_the_uninterrupted_weights(tmp_path, trainer):
    from safetensors.torch import load_file

    # 3 steps of 3 + 1 batches of 4 = 36 items per 3 steps: the 4th step crosses into epoch 2 (48 items)
    _fit(tmp_path / "straight", trainer, steps=6, ema_decay=0.9)
    _fit(tmp_path / "cut", trainer, steps=3, ema_decay=0.9)
    resumed, _ = _fit(tmp_path / "cut", trainer, resume="latest", steps=6, ema_decay=0.9)
    assert resumed.steps == 6
    straight = load_file(tmp_path / "straight" / "model" / "model.safetensors")
    cut = load_file(tmp_path / "cut" / "model" / "model.safetensors")
    for key in straight:
        assert torch.equal(straight[key], cut[key]), key


@pytest.mark.parametrize("trainer", ["plain", "accelerate"])
def test_the_lr_schedule_counts_training_steps_not_discriminator_steps(tmp_path, trainer):
    result, model = _fit(tmp_path, trainer, steps=4, lr_schedule="cosine")
    assert result.steps == 4
    # both optimizers went through the same schedule: a factor per training step
    from zoo_core import checkpoint as ckpt

    last = sorted((tmp_path / "checkpoints").iterdir())[-1]
    assert json.loads((last / "state.json").read_text())["step"] == 4
    saved = ckpt.load_tree(last / "state.safetensors")
    d_sched, g_sched = saved["schedulers"]
    assert d_sched["last_epoch"] == 12 and g_sched["last_epoch"] == 4  # optimizer steps taken
    assert d_sched["_last_lr"] == pytest.approx(g_sched["_last_lr"])  # but the same point of the schedule
    assert d_sched["_last_lr"][0] == pytest.approx(0.0, abs=1e-12)  # cosine ends at 0 after 4 training steps


def test_bad_steps_per_optimizer_and_accumulation_are_refused(tmp_path):
    from zoo_core.trainer import UnsupportedTrainingError

    class Odd(type(zoo.build("gan", TINY))):
        def steps_per_optimizer(self):
            return {"critic": 5}

    torch.manual_seed(0)
    odd = Odd(zoo.build("gan", TINY).config)
    with pytest.raises(ValueError, match="critic.*not optimizers of configure_optimizers"):
        zoo.trainer("plain")(odd, _dataset(), TrainConfig(steps=1, batch_size=4), out_dir=tmp_path / "odd",
                             progress=False).fit()
    with pytest.raises(UnsupportedTrainingError, match="grad_accum_steps"):
        _fit(tmp_path / "accum", "plain", grad_accum_steps=2)


def test_the_export_is_the_generator_only_and_samples_like_the_trained_model(tmp_path):
    result, _ = _fit(tmp_path, "plain", model_config={"discriminator_steps": 1}, ema_decay=0.9)
    from safetensors.torch import load_file

    exported = load_file(tmp_path / "model" / "model.safetensors")
    assert exported and all(key.startswith("generator.") for key in exported)
    loaded = zoo.load(tmp_path / "model", device="cpu")
    assert loaded.config.with_discriminator is False and loaded.discriminator is None
    # the EMA's generator from the last checkpoint samples exactly what the export samples
    last = sorted((tmp_path / "checkpoints").iterdir())[-1]
    ema = {k.removeprefix("module."): v for k, v in load_file(last / "ema.safetensors").items() if k.startswith("module.")}
    full = zoo.build("gan", {**TINY, "discriminator_steps": 1})
    full.load_state_dict(ema)
    full.eval()
    torch.testing.assert_close(loaded.sample(4, generator=torch.Generator().manual_seed(3)),
                               full.sample(4, generator=torch.Generator().manual_seed(3)), rtol=0, atol=0)
    with pytest.raises(ValueError, match="without its discriminator"):
        loaded.training_step(loaded.example_batch(2), optimizer="generator")


def test_the_paper_recipe_trains_from_the_catalog_with_its_momentum_ramp_and_resumes_it(tmp_path):
    from helpers import MNIST, run_zoo
    from zoo_core import checkpoint as ckpt

    common = ["train", "gan-mnist-paper", "--data", str(MNIST), "--data-option", "limit=400", "--out", str(tmp_path),
              "--checkpoint-every", "2"]
    run_zoo(*common, "--steps", "2", check=True)
    run_zoo(*common, "--steps", "4", "--resume", check=True)
    last = sorted((tmp_path / "checkpoints").iterdir())[-1]
    optimizers = ckpt.load_tree(last / "state.safetensors")["optimizers"]
    for name in ("discriminator", "generator"):
        group = optimizers[name]["param_groups"][0]
        # SGD lr 0.1, momentum 0.5 -> 0.7 over 125,000 steps: 4 steps taken, across the resume
        assert group["lr"] == pytest.approx(0.1) and group["momentum_step"] == 4
        assert group["momentum"] == pytest.approx(0.5 + 3 / 125000 * 0.2)
    loaded = zoo.load(tmp_path / "model", device="cpu")
    assert loaded.config.discriminator_activation == "maxout" and loaded.discriminator is None
    assert loaded.sample(2).shape == (2, 1, 28, 28)


def test_the_ema_averages_the_generator_and_its_discriminator_copy_is_the_live_one(tmp_path):
    _fit(tmp_path, "plain", model_config={"discriminator_steps": 1}, ema_decay=0.5, steps=4)
    from safetensors.torch import load_file

    last = sorted((tmp_path / "checkpoints").iterdir())[-1]
    live, ema = load_file(last / "model.safetensors"), load_file(last / "ema.safetensors")
    d_keys = [k for k in live if k.startswith("discriminator.")]
    g_keys = [k for k in live if k.startswith("generator.") and live[k].is_floating_point()]
    assert d_keys and g_keys
    assert all(torch.equal(ema[f"module.{k}"], live[k]) for k in d_keys)  # D: the live weights
    assert any(not torch.equal(ema[f"module.{k}"], live[k]) for k in g_keys)  # G: an average that lags
