"""Sampler options and generators, in every family this project's samplers cover (the DDPM
family's are tested with it): declared options, refused typos with a suggestion, a CPU generator
for a model on any device, one generator per sample."""

from __future__ import annotations

import pytest
import torch

import zoo
from zoo_core.errors import UnknownOptionError
from zoo_core.noise import rand_tensor, randn_tensor

from helpers import run_zoo

FAMILIES = [f for f in ("ae", "sparse-ae", "contractive-ae", "vae", "gan", "nerf", "pixel-gaussian") if f in zoo.families()]


def _tiny(family: str):
    torch.manual_seed(0)
    model = zoo.build(family, zoo.families()[family].tiny_config).eval()
    if hasattr(model, "code_cov"):  # an autoencoder samples from the Gaussian fitted after training
        with torch.no_grad():
            model.code_cov.copy_(torch.eye(model.code_cov.shape[0]))
    return model


@pytest.mark.parametrize("family", FAMILIES)
def test_every_family_declares_its_options_and_refuses_others(family):
    model = _tiny(family)
    cls = type(model)
    assert cls.sampler_options, f"{family} declares no sampler option"
    assert all(isinstance(help, str) and help for help in cls.sampler_options.values())
    option = sorted(cls.sampler_options)[0]
    typo = option[:-1]  # "temperatur", "widt"
    with pytest.raises(UnknownOptionError, match=f"did you mean {option}"):
        model.sample(2, **{typo: 1})
    with pytest.raises(TypeError):  # an UnknownOptionError is a TypeError, like Python's own
        model.sample(2, not_an_option=1)


@pytest.mark.parametrize("family", FAMILIES)
def test_one_generator_per_sample_and_cpu_generators(family):
    model = _tiny(family)
    pair = model.sample(2, generator=[torch.Generator().manual_seed(1), torch.Generator().manual_seed(2)])
    alone = model.sample(1, generator=torch.Generator().manual_seed(2))
    assert torch.allclose(pair[1], alone[0], atol=1e-6)  # sample i comes from generator i alone
    again = model.sample(2, generator=torch.Generator().manual_seed(3))
    assert torch.equal(again, model.sample(2, generator=torch.Generator().manual_seed(3)))
    with pytest.raises(ValueError, match="one generator per sample"):
        model.sample(3, generator=[torch.Generator()])


@pytest.mark.parametrize("family", [f for f in FAMILIES if f != "nerf"])
def test_temperature_scales_the_noise(family):
    model = _tiny(family)
    cold = model.sample(4, generator=torch.Generator().manual_seed(0), temperature=0.0)
    assert torch.allclose(cold, cold[:1].expand_as(cold), atol=1e-5)  # no noise: one image
    warm = model.sample(4, generator=torch.Generator().manual_seed(0), temperature=1.0)
    assert not torch.allclose(warm, warm[:1].expand_as(warm), atol=1e-5)


def test_noise_is_drawn_on_the_generators_device_then_moved():
    cpu = torch.Generator().manual_seed(0)
    meta = randn_tensor((3, 2), generator=cpu, device="meta")  # the model's device need not hold the generator
    assert meta.device.type == "meta" and meta.shape == (3, 2)
    expected = torch.randn((3, 2), generator=torch.Generator().manual_seed(0))
    assert torch.equal(randn_tensor((3, 2), generator=torch.Generator().manual_seed(0), device="cpu"), expected)
    assert rand_tensor((5,), generator=torch.Generator().manual_seed(0), dtype=torch.float64).dtype == torch.float64


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("family", FAMILIES)
def test_a_cpu_generator_drives_a_cuda_model_and_gives_the_cpu_samples(family):
    model = _tiny(family)
    on_cpu = model.sample(2, generator=torch.Generator().manual_seed(0))
    on_gpu = model.to("cuda").sample(2, generator=torch.Generator().manual_seed(0))
    assert on_gpu.device.type == "cuda" and torch.allclose(on_gpu.cpu(), on_cpu, atol=1e-4)


def test_zoo_sample_refuses_a_typo_before_sampling(tmp_path):
    out = tmp_path / "g.png"
    result = run_zoo("sample", "vae-mnist", "--option", "temprature=0.5", "-o", str(out))
    assert result.returncode == 2 and "did you mean temperature?" in result.stderr and not out.exists()
    run_zoo("sample", "vae-mnist", "-n", "4", "--option", "temperature=0.5", "-o", str(out), check=True)
    assert out.is_file()


def test_zoo_sample_gives_nerf_a_generator_it_can_use(tmp_path):
    if "nerf" not in zoo.families():
        pytest.skip("zoo-nerf is not installed")
    out = tmp_path / "views.png"
    run_zoo("sample", "nerf-lego", "-n", "2", "--option", "width=12", "--option", "height=12", "-o", str(out), check=True)
    from PIL import Image

    assert Image.open(out).size == (2 + 2 * 14, 2 + 1 * 14)
