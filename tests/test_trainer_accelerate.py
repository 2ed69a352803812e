"""The accelerate trainer and Accelerate's own settings: accelerate launch / accelerate config values
win over the zoo's defaults, never over what the user set."""

import json

import pytest
import torch

import zoo
from zoo_core.config import TrainConfig
from zoo_core.trainers.conformance import tiny_dataset


def trainer(train, tmp_path):
    torch.manual_seed(0)
    model = zoo.build("ae", dict(zoo.families()["ae"].tiny_config))
    return zoo.trainer("accelerate")(model, tiny_dataset(model), train, out_dir=tmp_path, progress=False, cpu=True)


def test_accelerate_launch_settings_win_over_the_zoo_defaults(tmp_path, monkeypatch, capsys):
    # what `accelerate launch --mixed_precision bf16 --gradient_accumulation_steps 2` passes down
    monkeypatch.setenv("ACCELERATE_MIXED_PRECISION", "bf16")
    monkeypatch.setenv("ACCELERATE_GRADIENT_ACCUMULATION_STEPS", "2")
    launched = trainer(TrainConfig(steps=4, batch_size=8, log_every=1), tmp_path / "launched")
    assert launched.train.mixed_precision == "bf16" and launched.train.grad_accum_steps == 2
    assert str(launched.accelerator.mixed_precision) == "bf16" and launched.accelerator.gradient_accumulation_steps == 2
    assert "using mixed_precision=bf16, grad_accum_steps=2 from accelerate launch/config" in capsys.readouterr().err
    launched.fit()
    manifest = json.loads(next((tmp_path / "launched" / "checkpoints").glob("step_*/state.json")).read_text())
    assert manifest["train"]["mixed_precision"] == "bf16" and manifest["train"]["grad_accum_steps"] == 2
    # samples/s counts the effective accumulation: 2 micro-batches of 8 per step
    log = [json.loads(line) for line in (tmp_path / "launched" / "log.jsonl").read_text().splitlines()]
    assert log[-1]["step"] == 4

    chosen = trainer(TrainConfig(steps=4, batch_size=8, mixed_precision="no", grad_accum_steps=1), tmp_path / "chosen")
    assert chosen.train.mixed_precision == "no" and chosen.train.grad_accum_steps == 1  # the user's values stay


def test_an_unsupported_launcher_precision_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("ACCELERATE_MIXED_PRECISION", "fp8")
    with pytest.raises(zoo.errors.ZooError, match="mixed precision 'fp8' is not supported"):
        trainer(TrainConfig(steps=1, batch_size=8), tmp_path)
