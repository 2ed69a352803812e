"""TrainConfig's optimizer choice and step schedule, as the Trainer applies them."""

import json

import pytest
import torch
from pydantic import ValidationError

from zoo_core.config import TrainConfig
from zoo_core.optim import build_optimizer
from zoo_core.trainer import Trainer

from helpers import MNIST, run_zoo
from test_trainer import LinearConfig, LinearDenoiser, dataset


def test_build_optimizer_follows_the_config():
    params = [torch.nn.Parameter(torch.zeros(3))]
    adam = build_optimizer(params, TrainConfig(optimizer="adam", lr=1e-3, eps=1e-4, betas=(0.8, 0.9)))
    assert type(adam) is torch.optim.Adam
    assert adam.defaults["eps"] == 1e-4 and adam.defaults["betas"] == (0.8, 0.9)
    sgd = build_optimizer(params, TrainConfig(optimizer="sgd", lr=0.1, momentum=0.5))
    assert type(sgd) is torch.optim.SGD and sgd.defaults["momentum"] == 0.5
    assert type(build_optimizer(params, TrainConfig())) is torch.optim.AdamW


@pytest.mark.parametrize("name", ["adam", "adamw"])
def test_adam_is_fused_and_takes_the_same_steps_as_torchs_reference_loop(name):
    """Fused (one kernel per tensor) unless fp16, whose GradScaler path stays on foreach; the updates agree
    with the per-tensor reference implementation to float32 rounding."""
    torch.manual_seed(0)
    shapes = [(200, 784), (200,), (50, 200), (1,)]
    weights = [torch.randn(shape) for shape in shapes]
    gradients = [[torch.randn(shape) * 10 ** torch.randint(-3, 2, ()).item() for shape in shapes] for _ in range(20)]
    train = TrainConfig(optimizer=name, lr=1e-2, eps=1e-4, weight_decay=0.1)
    ours, reference = [torch.nn.Parameter(w.clone()) for w in weights], [torch.nn.Parameter(w.clone()) for w in weights]
    fused = build_optimizer(ours, train)
    assert fused.defaults["fused"] is True
    cls = torch.optim.Adam if name == "adam" else torch.optim.AdamW
    loop = cls(reference, lr=1e-2, eps=1e-4, weight_decay=0.1, foreach=False)
    for step_gradients in gradients:
        for optimizer, params in ((fused, ours), (loop, reference)):
            for p, g in zip(params, step_gradients):
                p.grad = g.clone()
            optimizer.step()
    for a, b in zip(ours, reference):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    assert max(float((a.detach() - w).abs().max()) for a, w in zip(ours, weights)) > 0.1  # they did move
    fp16 = build_optimizer([torch.nn.Parameter(torch.zeros(3))], TrainConfig(optimizer=name, mixed_precision="fp16"))
    assert not fp16.defaults["fused"] and fp16.defaults["foreach"] is True


@pytest.mark.parametrize("bad, message", [
    ({"lr_schedule": "step", "lr_milestones": (5, 5)}, "increasing"),
    ({"lr_schedule": "step", "lr_milestones": (0, 5)}, "positive"),
    ({"lr_milestones": (5,)}, "only used with lr_schedule='step'"),
    ({"momentum": 0.9}, "SGD setting"),
    ({"optimizer": "lbfgs"}, "optimizer"),
])
def test_inconsistent_settings_are_refused(bad, message):
    with pytest.raises(ValidationError, match=message):
        TrainConfig(**bad)


def test_step_schedule_multiplies_the_lr_at_each_milestone(tmp_path):
    """The lr logged after step s is the one the next step uses: lr * gamma^(milestones <= s)."""
    config = TrainConfig(steps=12, batch_size=8, lr=0.1, log_every=1, lr_schedule="step", lr_milestones=(4, 8),
                         lr_gamma=0.5, optimizer="sgd", momentum=0.9)
    Trainer(LinearDenoiser(LinearConfig()), dataset(), config, out_dir=tmp_path / "run", progress=False).fit()
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    lrs = {entry["step"]: entry["lr"] for entry in log}
    assert lrs[1] == pytest.approx(0.1) and lrs[3] == pytest.approx(0.1)
    assert lrs[4] == pytest.approx(0.05) and lrs[7] == pytest.approx(0.05)
    assert lrs[8] == pytest.approx(0.025) and lrs[12] == pytest.approx(0.025)


def test_the_cli_refuses_a_bad_schedule_in_one_line(tmp_path):
    result = run_zoo("train", "ae", "--data", str(MNIST), "--out", str(tmp_path / "run"), "--train-set",
                     "lr_schedule=step", "--train-set", "lr_milestones=[30, 20]")
    assert result.returncode == 2 and "lr_milestones must be positive and increasing" in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and not (tmp_path / "run").exists()
