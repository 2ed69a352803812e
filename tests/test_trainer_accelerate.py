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


def test_report_to_tensorboard_writes_the_logged_losses(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    torch.manual_seed(0)
    model = zoo.build("ae", dict(zoo.families()["ae"].tiny_config))
    zoo.trainer("accelerate")(model, tiny_dataset(model), TrainConfig(steps=6, batch_size=8, log_every=2),
                              out_dir=tmp_path / "run", progress=False, cpu=True, report_to="tensorboard").fit()
    event_files = list((tmp_path / "run" / "trackers").rglob("events.out.tfevents.*"))
    assert event_files, sorted(p.relative_to(tmp_path) for p in (tmp_path / "run").rglob("*"))
    events = EventAccumulator(str(event_files[0].parent))
    events.Reload()
    logged = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    scalars = {e.step: e.value for e in events.Scalars("loss")}
    assert sorted(scalars) == [entry["step"] for entry in logged] == [1, 2, 4, 6]
    for entry in logged:
        assert scalars[entry["step"]] == pytest.approx(entry["loss"], rel=1e-6)
    assert "samples_per_s" in events.Tags()["scalars"]


def test_the_plain_trainer_says_it_has_no_trackers(tmp_path):
    model = zoo.build("ae", dict(zoo.families()["ae"].tiny_config))
    with pytest.raises(zoo.errors.ZooError, match="plain trainer reports to no tracker .*Use --trainer accelerate"):
        zoo.trainer("plain")(model, tiny_dataset(model), TrainConfig(), out_dir=tmp_path, report_to="tensorboard")
