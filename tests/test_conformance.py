"""Every registered family, built from its tiny config, must pass these (timm's test_models style)."""

import math

import pytest
import torch

import zoo
from zoo_core.config import TrainConfig

FAMILIES = sorted(zoo.families())


def _build(name, seed=0):
    torch.manual_seed(seed)
    return zoo.build(name, dict(zoo.families()[name].tiny_config))


def _batch(model, n=4, seed=0):
    return model.example_batch(n, generator=torch.Generator().manual_seed(seed))


def test_the_first_party_families_are_installed():
    # CI installs every plugin under plugins/; if one fails to load, `zoo plugins` says why
    assert {"ae", "vae", "gan", "ddpm", "nerf"} <= set(FAMILIES), FAMILIES


@pytest.mark.parametrize("family", FAMILIES)
def test_builds_from_its_config(family):
    model = _build(family)
    assert isinstance(model, zoo.Generator)
    assert model.family == family
    assert model.num_parameters() > 0
    assert isinstance(model.config, zoo.families()[family].config_class())
    with pytest.raises(Exception):  # configs are frozen
        setattr(model.config, next(iter(type(model.config).model_fields)), None)


@pytest.mark.parametrize("family", FAMILIES)
def test_training_step_gives_finite_losses(family):
    model = _build(family)
    model.train()
    for name in model.configure_optimizers(TrainConfig()):
        losses = model.training_step(_batch(model), optimizer=name)
        assert "loss" in losses, sorted(losses)
        for key, value in losses.items():
            assert value.dim() == 0, f"{family} {name} {key} is not a scalar"
            assert torch.isfinite(value), f"{family} {name} {key} = {value}"


@pytest.mark.parametrize("family", FAMILIES)
def test_one_optimizer_step_changes_the_weights(family):
    model = _build(family)
    model.train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    optimizers = model.configure_optimizers(TrainConfig(lr=1e-2))
    batch = _batch(model)
    for name, optimizer in optimizers.items():
        model.zero_grad(set_to_none=True)
        model.training_step(batch, optimizer=name)["loss"].backward()
        optimizer.step()
    changed = [k for k, v in model.state_dict().items() if not torch.equal(v, before[k])]
    assert changed, f"{family}: no weight changed after one step of {list(optimizers)}"
    for name, optimizer in optimizers.items():
        params = [p for group in optimizer.param_groups for p in group["params"]]
        assert params, f"{family}: optimizer {name} has no parameters"


@pytest.mark.parametrize("family", FAMILIES)
def test_sample_shape_range_and_seed(family):
    model = _build(family).eval()
    with torch.no_grad():
        a = model.sample(3, generator=torch.Generator().manual_seed(1))
        b = model.sample(3, generator=torch.Generator().manual_seed(1))
    assert a.shape[0] == 3 and a.dim() == 4, a.shape
    assert a.dtype.is_floating_point
    assert torch.isfinite(a).all()
    assert a.min() >= 0.0 and a.max() <= 1.0, (float(a.min()), float(a.max()))
    assert torch.equal(a, b), "the same generator seed must give the same samples"


@pytest.mark.parametrize("family", FAMILIES)
def test_save_and_load_reproduce_outputs_exactly(family, tmp_path):
    model = _build(family, seed=3)
    model.train()
    optimizer = model.configure_optimizers(TrainConfig(lr=1e-2))
    for name, opt in optimizer.items():  # move off the initial weights so loading is really tested
        model.zero_grad(set_to_none=True)
        model.training_step(_batch(model), optimizer=name)["loss"].backward()
        opt.step()
    model.eval()
    model.save_pretrained(tmp_path / "m")
    assert {p.name for p in (tmp_path / "m").iterdir()} >= {"config.json", "model.safetensors", "README.md"}
    loaded = zoo.load(tmp_path / "m", device="cpu")
    assert type(loaded) is type(model) and loaded.config == model.config
    assert not loaded.training
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key
    with torch.no_grad():
        expected = model.sample(2, generator=torch.Generator().manual_seed(7))
        actual = loaded.sample(2, generator=torch.Generator().manual_seed(7))
    assert torch.equal(expected, actual)
    assert not math.isnan(float(actual.sum()))
