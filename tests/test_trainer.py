"""The core Trainer: the same weights however the work is cut (resume, accumulation), EMA, precision."""

import json

import pytest
import torch
from pydantic import Field
from safetensors.torch import load_file
from torch import nn

from zoo_core.config import TrainConfig, ZooConfig
from zoo_core.generator import Generator
from zoo_core.trainer import Trainer, latest_checkpoint


class LinearConfig(ZooConfig):
    dim: int = Field(6, description="Data dimension.")
    sgd: bool = Field(False, description="Plain SGD instead of AdamW (its step is lr times the gradient).")


class LinearDenoiser(Generator):
    """A tiny linear autoencoder: enough to exercise the loop, cheap enough to run many times."""

    family = "test-linear"
    config_class = LinearConfig

    def __init__(self, config):
        super().__init__(config)
        self.encoder = nn.Linear(config.dim, 3)
        self.decoder = nn.Linear(3, config.dim)

    def configure_optimizers(self, train):
        if self.config.sgd:
            return {"main": torch.optim.SGD(self.parameters(), lr=train.lr)}
        return super().configure_optimizers(train)

    def training_step(self, batch, *, optimizer="main"):
        reconstruction = self.decoder(torch.tanh(self.encoder(batch)))
        return {"loss": ((reconstruction - batch) ** 2).mean(), "code_norm": self.encoder.weight.norm()}

    def sample(self, n, *, generator=None, **_):
        z = torch.randn(n, 3, generator=generator)
        return torch.sigmoid(self.decoder(z)).view(n, 1, 1, -1)

    def example_batch(self, batch_size, *, generator=None):
        return torch.randn(batch_size, self.config.dim, generator=generator)


def dataset(n=96):
    return list(torch.randn(n, 6, generator=torch.Generator().manual_seed(123)))


def train(tmp_path, name, resume=None, model_config=LinearConfig(), **overrides):
    torch.manual_seed(0)
    config = TrainConfig(**{"steps": 12, "batch_size": 8, "lr": 0.05, "log_every": 4, **overrides})
    result = Trainer(LinearDenoiser(model_config), dataset(), config, out_dir=tmp_path / name, progress=False).fit(resume)
    return result, load_file(tmp_path / name / "model" / "model.safetensors")


def assert_same_weights(a, b, atol=0.0):
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], atol=atol, rtol=0 if atol == 0 else 1e-5, msg=key)


def test_training_lowers_the_loss_and_exports_a_loadable_folder(tmp_path):
    result, weights = train(tmp_path, "run", steps=60)
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    # the first step of a run (or of a resumed run) is always logged, then every log_every steps
    assert [entry["step"] for entry in log] == [1] + list(range(4, 61, 4))
    assert log[-1]["loss"] < 0.8 * log[0]["loss"], (log[0], log[-1])
    assert result.steps == 60 and result.samples_per_second > 0
    assert set(weights) == {"encoder.weight", "encoder.bias", "decoder.weight", "decoder.bias"}
    assert (tmp_path / "run" / "model" / "config.json").is_file()


def test_resuming_from_a_checkpoint_gives_the_uninterrupted_weights(tmp_path):
    _, straight = train(tmp_path, "straight", checkpoint_every=5)
    train(tmp_path, "cut", steps=5, checkpoint_every=5)  # stops at step 5 (mid-epoch: 12 batches per epoch)
    assert latest_checkpoint(tmp_path / "cut").name == "step_00000005"
    result, resumed = train(tmp_path, "cut", resume="latest", checkpoint_every=5)
    assert result.steps == 12
    assert_same_weights(straight, resumed)


def test_resume_with_another_setup_is_a_clear_error(tmp_path):
    train(tmp_path, "run", steps=3)
    with pytest.raises(ValueError, match=r"written with other settings \(ema_decay None -> 0.9\)"):
        train(tmp_path, "run", steps=6, ema_decay=0.9, resume="latest")


def test_old_checkpoints_are_pruned(tmp_path):
    train(tmp_path, "run", steps=12, checkpoint_every=2, keep_checkpoints=2)
    names = sorted(p.name for p in (tmp_path / "run" / "checkpoints").iterdir())
    assert names == ["step_00000010", "step_00000012"]


def test_gradient_accumulation_matches_the_large_batch(tmp_path):
    _, large = train(tmp_path, "large", batch_size=8, steps=6)
    _, accumulated = train(tmp_path, "accumulated", batch_size=4, grad_accum_steps=2, steps=6)
    assert_same_weights(large, accumulated, atol=1e-6)


def test_ema_weights_are_exported(tmp_path):
    _, plain = train(tmp_path, "plain", steps=10)
    _, ema = train(tmp_path, "ema", steps=10, ema_decay=0.5)
    # EMA of the trajectory lags behind the final weights, so it differs from them
    assert not torch.allclose(plain["decoder.weight"], ema["decoder.weight"])
    diff = (plain["decoder.weight"] - ema["decoder.weight"]).abs().max()
    assert diff < 0.5, diff


def test_gradient_clipping_bounds_the_update(tmp_path):
    torch.manual_seed(0)
    initial = LinearDenoiser(LinearConfig()).state_dict()
    sgd = LinearConfig(sgd=True)

    def step_norm(weights):
        return torch.cat([(weights[k] - initial[k]).flatten() for k in initial]).norm()

    _, free = train(tmp_path, "free", steps=1, lr=1.0, model_config=sgd)
    _, clipped = train(tmp_path, "clip", steps=1, lr=1.0, max_grad_norm=1e-3, model_config=sgd)
    assert step_norm(free) > 1e-2  # one SGD step with lr=1 moves by the gradient's norm
    torch.testing.assert_close(step_norm(clipped), torch.tensor(1e-3), rtol=1e-3, atol=0)


def test_bf16_mixed_precision_runs_on_cpu(tmp_path):
    result, weights = train(tmp_path, "bf16", steps=4, mixed_precision="bf16")
    assert result.steps == 4
    assert all(v.dtype == torch.float32 for v in weights.values())  # master weights stay fp32


def test_a_dataset_smaller_than_a_batch_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="fewer than one batch"):
        Trainer(LinearDenoiser(LinearConfig()), dataset(3), TrainConfig(batch_size=8), out_dir=tmp_path, progress=False).fit()


def test_a_training_curve_is_drawn_next_to_the_log(tmp_path):
    from PIL import Image

    from zoo_core.trainers.curve import LINE

    train(tmp_path, "run", steps=60, log_every=2)
    image = Image.open(tmp_path / "run" / "training-curve.png").convert("RGB")
    assert image.size == (640, 2 * 150)  # one panel per loss: loss, code_norm
    pixels = image.load()
    first_panel = [(x, y) for x in range(image.width) for y in range(150) if pixels[x, y] == LINE]
    xs = sorted({x for x, _ in first_panel})
    assert xs[-1] - xs[0] > 500  # the curve spans the panel
    height_at = lambda x: min(y for px, y in first_panel if px == x)  # noqa: E731
    assert height_at(xs[0]) < height_at(xs[-1]) - 50, "the loss goes down: its curve must end lower than it starts"


def test_the_curve_names_its_x_axis(tmp_path):
    from PIL import Image, ImageChops

    from zoo_core.trainers.curve import plot_losses

    log = tmp_path / "log.jsonl"
    log.write_text("".join(json.dumps({"step": s, "test_nll": 100.0 / s}) + "\n" for s in (1, 4, 13, 40)))
    steps, epochs = plot_losses(log, tmp_path / "steps.png"), plot_losses(log, tmp_path / "epochs.png", x_label="epoch")
    # the same curve; only the axis labels under the panel differ
    difference = ImageChops.difference(Image.open(steps).convert("RGB"), Image.open(epochs).convert("RGB")).getbbox()
    assert difference is not None and difference[1] >= 150 - 22  # below the panel's plotting area


def test_the_exported_card_says_how_the_model_was_trained(tmp_path):
    torch.manual_seed(0)
    config = TrainConfig(steps=6, batch_size=8, lr=0.05, log_every=3)
    result = Trainer(LinearDenoiser(LinearConfig()), dataset(), config, out_dir=tmp_path, progress=False,
                     export={"dataset": "ylecun/mnist", "license": "cc-by-sa-3.0"}).fit()
    card = (tmp_path / "model" / "README.md").read_text()
    training = card[card.index("## Training"):card.index("## Config")]
    assert "- Dataset: ylecun/mnist" in training and "- License: cc-by-sa-3.0" in training
    assert "- Trainer: accelerate (zoo train)" in training and "- Steps: 6" in training
    assert "- Hardware: 1 process x cpu (" in training and " s of training" in training
    assert f"  - `loss`: {result.last_losses['loss']:.6g}" in training
    for key, value in config.model_dump(mode="json").items():  # every hyperparameter, as trained
        shown = json.dumps(value) if isinstance(value, (list, dict)) else (f"{value:.6g}" if isinstance(value, float) else str(value))
        assert f"  - `{key}`: {shown}" in training, key


def test_the_trainers_ema_is_torchs_averaged_model_and_skips_what_the_model_excludes():
    from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

    from zoo_core.trainer import ExponentialMovingAverage

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4), torch.nn.Linear(4, 2))
    ours = ExponentialMovingAverage(model, 0.9)
    reference = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(0.9), use_buffers=True)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    for _ in range(5):  # the BatchNorm's running stats and its integer step count are averaged too
        model(torch.randn(8, 3)).square().mean().backward()
        optimizer.step()
        optimizer.zero_grad()
        ours.update_parameters(model)
        reference.update_parameters(model)
    assert ours.state_dict().keys() == reference.state_dict().keys()
    for key, value in reference.state_dict().items():
        assert torch.equal(ours.state_dict()[key], value), key
    assert not torch.equal(ours.module[0].weight, model[0].weight)  # it lags behind the weights

    model.ema_exclude = ("2.",)  # the last layer, as a GAN excludes its discriminator
    ours = ExponentialMovingAverage(model, 0.9)
    ours.update_parameters(model)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    ours.update_parameters(model)
    torch.testing.assert_close(ours.module[0].weight, model[0].weight - 0.9)  # averaged: 0.9 old + 0.1 new
    torch.testing.assert_close(ours.module[2].weight, model[2].weight - 1.0)  # excluded: left alone until saved
    ours.follow_excluded()
    assert torch.equal(ours.module[2].weight, model[2].weight)
