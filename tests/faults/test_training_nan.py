"""NaN and inf: the run stops at the step, naming it and the losses (or skips the batch, by config,
up to a limit); the finite checkpoints are kept; nothing non-finite is checkpointed or exported;
log.jsonl stays valid JSON."""

import json
import math

import pytest
import torch

from test_trainer import LinearConfig, LinearDenoiser, dataset
from zoo_core.config import TrainConfig
from zoo_core.trainer import NonFiniteLossError, latest_checkpoint
from zoo_core.trainers.plain import PlainTrainer
from zoo_core.trainer import Trainer


class Diverging(LinearDenoiser):
    """Returns a NaN loss (or a finite loss with an infinite gradient) at chosen training_step calls."""

    bad_calls: set = set()
    kind = "loss"

    def __init__(self, config):
        super().__init__(config)
        self.calls = 0

    def training_step(self, batch, *, optimizer="main"):
        self.calls += 1
        out = super().training_step(batch, optimizer=optimizer)
        if self.calls in self.bad_calls:
            if self.kind == "loss":
                out["loss"] = out["loss"] * float("nan")
                out["kl"] = torch.tensor(float("inf"))
            else:  # d sqrt(x)/dx at x = 0 is infinite: a finite loss, a non-finite gradient
                out["loss"] = out["loss"] + (self.encoder.weight - self.encoder.weight.detach()).abs().sqrt().sum()
        return out


def strict_json(line):
    def refuse(constant):
        raise ValueError(f"bare {constant} in log.jsonl")

    return json.loads(line, parse_constant=refuse)


def fit(tmp_path, bad_calls, kind="loss", trainer=Trainer, **overrides):
    torch.manual_seed(0)
    model = type("Model", (Diverging,), {"bad_calls": set(bad_calls), "kind": kind})(LinearConfig())
    config = TrainConfig(**{"steps": 12, "batch_size": 8, "lr": 0.05, "log_every": 1, "checkpoint_every": 3, **overrides})
    return trainer(model, dataset(), config, out_dir=tmp_path, progress=False).fit()


@pytest.mark.parametrize("trainer", [Trainer, PlainTrainer])
def test_a_nan_loss_stops_the_run_at_its_step_naming_the_losses(tmp_path, trainer):
    with pytest.raises(NonFiniteLossError) as stop:
        fit(tmp_path, {8}, trainer=trainer)
    message = str(stop.value)
    assert message.startswith("training stopped at step 8: non-finite loss (kl, loss)"), message
    assert f"last finite checkpoint: {tmp_path / 'checkpoints' / 'step_00000006'}" in message
    assert latest_checkpoint(tmp_path).name == "step_00000006"
    assert not (tmp_path / "model").exists()  # nothing exported
    from safetensors.torch import load_file

    for folder in (tmp_path / "checkpoints").iterdir():
        assert all(torch.isfinite(t).all() for t in load_file(folder / "model.safetensors").values())
    steps = [strict_json(line)["step"] for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert steps == list(range(1, 8))


def test_a_non_finite_gradient_with_a_finite_loss_stops_the_run(tmp_path):
    with pytest.raises(NonFiniteLossError, match=r"^training stopped at step 4: non-finite gradient \(norm nan\)"):
        fit(tmp_path, {4}, kind="gradient")


@pytest.mark.parametrize("trainer", [Trainer, PlainTrainer])
def test_check_gradients_false_checks_the_losses_only_and_still_saves_nothing_non_finite(tmp_path, trainer):
    # the infinite gradient of step 4 reaches the weights unseen; step 5's loss is then NaN and stops the run
    with pytest.raises(NonFiniteLossError, match=r"^training stopped at step 5: non-finite loss \(code_norm, loss\)") as stop:
        fit(tmp_path, {4}, kind="gradient", trainer=trainer, check_gradients=False)
    assert "check_gradients=False: a non-finite gradient of an earlier step may have reached the weights" in str(stop.value)
    assert latest_checkpoint(tmp_path).name == "step_00000003"
    assert not (tmp_path / "model").exists()


def test_nonfinite_skip_skips_batches_up_to_the_limit(tmp_path):
    result = fit(tmp_path / "skip", {3, 5}, nonfinite="skip", max_nonfinite_batches=2)
    assert result.steps == 12 and result.skipped_batches == 2
    assert all(math.isfinite(v) for v in result.last_losses.values())
    for line in (tmp_path / "skip" / "log.jsonl").read_text().splitlines():
        assert all(v is None or math.isfinite(v) for v in strict_json(line).values() if not isinstance(v, str))
    with pytest.raises(NonFiniteLossError, match=r"^training stopped at step 4 after skipping 2 batches \(max_nonfinite_batches=2\)"):
        fit(tmp_path / "limit", {3, 5, 6}, nonfinite="skip", max_nonfinite_batches=2)


def test_non_finite_weights_are_never_exported(tmp_path):
    class BreaksAtTheEnd(LinearDenoiser):
        def on_fit_end(self, batches):
            self.decoder.bias.fill_(float("inf"))

    torch.manual_seed(0)
    with pytest.raises(NonFiniteLossError, match=r"refusing to export non-finite weights \(decoder.bias\)"):
        Trainer(BreaksAtTheEnd(LinearConfig()), dataset(), TrainConfig(steps=3, batch_size=8), out_dir=tmp_path,
                progress=False).fit()
    assert not (tmp_path / "model").exists() and latest_checkpoint(tmp_path).name == "step_00000003"
