"""zoo-ddpm against diffusers (a test-only dependency): the converted UNet computes what diffusers'
UNet2DModel computes, the samplers step as DDPMScheduler / DDIMScheduler do, and ddpm-cifar loads
Ho et al.'s checkpoint layout from the (loopback test) Hub, then offline from the converted cache."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from diffusers import DDIMPipeline, DDIMScheduler, DDPMPipeline, DDPMScheduler, UNet2DModel

import zoo
from helpers import run_zoo
from zoo_core.errors import InvalidConfigError, UnknownOptionError, WeightsError

TIMESTEPS = torch.tensor([0, 1, 10, 500, 999])
HO = dict(flip_sin_to_cos=False, freq_shift=1, downsample_padding=0, norm_eps=1e-6, attention_head_dim=None)
CONFIGS = {
    # google/ddpm-cifar10-32 (Ho et al.'s CIFAR-10 model, 35.7M parameters)
    "cifar10": dict(HO, sample_size=32, block_out_channels=(128, 256, 256, 256), layers_per_block=2, norm_num_groups=32,
                    down_block_types=("DownBlock2D", "AttnDownBlock2D", "DownBlock2D", "DownBlock2D"),
                    up_block_types=("UpBlock2D", "UpBlock2D", "AttnUpBlock2D", "UpBlock2D")),
    # other widths, attention at two resolutions (16 and 4), one block per level
    "two-attention-levels": dict(HO, sample_size=16, block_out_channels=(32, 64, 64), layers_per_block=1, norm_num_groups=8,
                                 down_block_types=("AttnDownBlock2D", "DownBlock2D", "AttnDownBlock2D"),
                                 up_block_types=("AttnUpBlock2D", "UpBlock2D", "AttnUpBlock2D")),
    # the zoo's old defaults (pad 1, no frequency shift, eps 1e-5), grey images, 3 blocks, a head as wide as the layer
    "grey-three-blocks": dict(sample_size=8, in_channels=1, out_channels=1, block_out_channels=(16, 32, 48), layers_per_block=3,
                              norm_num_groups=4, flip_sin_to_cos=False, freq_shift=0, downsample_padding=1, norm_eps=1e-5,
                              attention_head_dim=48, down_block_types=("DownBlock2D", "DownBlock2D", "AttnDownBlock2D"),
                              up_block_types=("AttnUpBlock2D", "UpBlock2D", "UpBlock2D")),
}
# Ho et al.'s 256x256 models (google/ddpm-ema-{celebahq,church,bedroom,cat}-256; config as published for ddpm-cat-256)
EMA_256 = dict(HO, sample_size=256, block_out_channels=(128, 128, 256, 256, 512, 512), layers_per_block=2, norm_num_groups=32,
               down_block_types=("DownBlock2D",) * 4 + ("AttnDownBlock2D", "DownBlock2D"),
               up_block_types=("UpBlock2D", "AttnUpBlock2D") + ("UpBlock2D",) * 4)
LEGACY = {"to_q": "query", "to_k": "key", "to_v": "value", "to_out.0": "proj_attn"}


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Small convolutions: one thread is as fast, and much faster when the cores are shared."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def diffusers_unet(config: dict, seed: int = 0) -> UNet2DModel:
    torch.manual_seed(seed)
    return UNet2DModel(**config).eval()


def save(unet: UNet2DModel, folder: Path, layout: str, scheduler=None) -> Path:
    """diffusers' own save_pretrained: 'flat' (UNet at the root + scheduler_config.json) or 'pipeline'."""
    scheduler = scheduler or DDPMScheduler(variance_type="fixed_small", clip_sample=True)
    if layout == "pipeline":
        DDPMPipeline(unet=unet, scheduler=scheduler).save_pretrained(folder)
    else:
        unet.save_pretrained(folder)
        scheduler.save_pretrained(folder)
    return folder


def relative_error(zoo_model, unet: UNet2DModel, seed: int = 1) -> float:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(len(TIMESTEPS), unet.config.in_channels, unet.config.sample_size, unet.config.sample_size, generator=g)
    with torch.no_grad():
        expected = unet(x, TIMESTEPS).sample
        got = zoo_model.eps_theta(x, TIMESTEPS)
    return float((got - expected).abs().max() / expected.abs().max())


def to_legacy_names(folder: Path) -> None:
    """Rewrite the weights with the attention names of diffusers < 0.14 (query/key/value/proj_attn)."""
    from safetensors.torch import load_file, save_file

    path = folder / "diffusion_pytorch_model.safetensors"
    state = load_file(path)
    renamed = {}
    for key, value in state.items():
        for new, old in LEGACY.items():
            key = key.replace(f".{new}.", f".{old}.")
        renamed[key] = value
    assert renamed.keys() != state.keys()
    save_file(renamed, path)


# -- the UNet, exactly ---------------------------------------------------------------------------


@pytest.mark.parametrize("name, layout", [
    ("cifar10", "flat"),
    pytest.param("cifar10", "pipeline", marks=pytest.mark.slow),  # ~20 s on 2 shared cores; the Hub test covers it too
    ("two-attention-levels", "flat"), ("two-attention-levels", "pipeline"),
    ("grey-three-blocks", "flat"), ("grey-three-blocks", "pipeline"),
])
def test_the_converted_unet_computes_what_diffusers_computes(tmp_path, name, layout):
    unet = diffusers_unet(CONFIGS[name])
    model = zoo.load(save(unet, tmp_path / "src", layout), device="cpu")
    assert model.num_parameters() == sum(p.numel() for p in unet.parameters())
    if name == "cifar10":
        assert model.num_parameters() == 35_746_307
        assert (model.config.norm_eps, model.config.frequency_shift, model.config.same_padding_downsample) == (1e-6, 1, True)
    assert relative_error(model, unet) < 1e-5


def test_legacy_attention_names_load_the_same(tmp_path):
    unet = diffusers_unet(CONFIGS["two-attention-levels"])
    folder = save(unet, tmp_path / "legacy", "flat")
    to_legacy_names(folder)
    reloaded = UNet2DModel.from_pretrained(folder).eval()  # diffusers reads the legacy names too
    assert all(torch.equal(a, b) for a, b in zip(reloaded.state_dict().values(), unet.state_dict().values()))
    assert relative_error(zoo.load(folder, device="cpu"), unet) < 1e-5


def test_the_converter_reads_the_scheduler_config(tmp_path):
    unet = diffusers_unet(CONFIGS["two-attention-levels"])
    scheduler = DDPMScheduler(num_train_timesteps=500, beta_schedule="squaredcos_cap_v2", variance_type="fixed_large")
    model = zoo.load(save(unet, tmp_path / "src", "pipeline", scheduler), device="cpu")
    assert (model.config.num_train_timesteps, model.config.beta_schedule, model.config.variance) == (500, "cosine", "beta")
    torch.testing.assert_close(model.scheduler.alpha_bars, scheduler.alphas_cumprod, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", ["ddpm-ema-celebahq-256", "ddpm-ema-church-256", "ddpm-ema-bedroom-256", "ddpm-ema-cat-256"])
def test_each_256_catalog_entry_is_the_published_configuration(name):
    from zoo_ddpm.convert_diffusers import zoo_config

    converted = zoo_config({"_class_name": "UNet2DModel", **EMA_256}, None, source=name)
    entry = zoo.info(name)
    assert entry["weights"]["format"] == "diffusers" and entry["weights"]["repo"] == f"google/{name}"
    assert {key: converted[key] for key in entry["config"]} == entry["config"]
    assert sum(p.numel() for p in zoo.build("ddpm", converted).parameters()) == 113_673_219


@pytest.mark.slow  # ~100 s on 2 shared CPU cores (two 114M-parameter UNets at 256x256)
def test_the_256_configuration_computes_what_diffusers_computes(tmp_path):
    """Golden test of the ddpm-ema-*-256 configuration (113.7M parameters), batch 1 and two timesteps to stay fast."""
    unet = diffusers_unet(EMA_256)
    model = zoo.load(save(unet, tmp_path / "src", "pipeline"), device="cpu")
    x = torch.randn(1, 3, 256, 256, generator=torch.Generator().manual_seed(1))
    for t in (10, 999):
        with torch.no_grad():
            expected, got = unet(x, torch.tensor([t])).sample, model.eps_theta(x, torch.tensor([t]))
        assert float((got - expected).abs().max() / expected.abs().max()) < 1e-5


# -- refusals ------------------------------------------------------------------------------------


def _edit_config(folder: Path, **changes) -> None:
    path = folder / "config.json"
    config = json.loads(path.read_text())
    config.update(changes)
    path.write_text(json.dumps(config))


@pytest.mark.parametrize("changes, field", [
    ({"down_block_types": ["AttnDownBlock2D", "ResnetDownsampleBlock2D", "AttnDownBlock2D"]}, "down_block_types[1]"),
    ({"attention_head_dim": 8}, "attention_head_dim"),
    ({"num_class_embeds": 10}, "num_class_embeds"),
    ({"time_embedding_type": "fourier"}, "time_embedding_type"),
    ({"norm_num_groups": 24}, "norm_num_groups"),
    ({"up_block_types": ["UpBlock2D", "UpBlock2D", "AttnUpBlock2D"]}, "up_block_types[0]"),
])
def test_a_config_the_zoo_cannot_express_is_refused_naming_the_field(tmp_path, changes, field):
    folder = save(diffusers_unet(CONFIGS["two-attention-levels"]), tmp_path / "src", "flat")
    _edit_config(folder, **changes)
    with pytest.raises(InvalidConfigError) as error:
        zoo.load(folder, device="cpu")
    assert f"cannot express {field}=" in str(error.value), str(error.value)
    if field == "norm_num_groups":  # the command line says the same, in one line
        result = run_zoo("convert", str(folder), str(tmp_path / "out"))
        assert result.returncode == 2 and field in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_pickled_only_weights_are_refused_and_never_unpickled(tmp_path, monkeypatch):
    folder = tmp_path / "bin-only"
    diffusers_unet(CONFIGS["two-attention-levels"]).save_pretrained(folder, safe_serialization=False)
    assert (folder / "diffusion_pytorch_model.bin").is_file()
    monkeypatch.setattr(torch, "load", lambda *a, **k: pytest.fail("the zoo unpickled something"))
    with pytest.raises(WeightsError, match=r"only pickled weights \(diffusion_pytorch_model.bin\)"):
        zoo.load(folder, device="cpu")


def test_corrupt_safetensors_are_refused(tmp_path):
    folder = save(diffusers_unet(CONFIGS["two-attention-levels"]), tmp_path / "src", "flat")
    path = folder / "diffusion_pytorch_model.safetensors"
    path.write_bytes(b"\xff" * 64 + path.read_bytes()[64:])
    with pytest.raises(WeightsError, match="not a readable safetensors file"):
        zoo.load(folder, device="cpu")


# -- zoo convert, the cache ------------------------------------------------------------------------


def test_zoo_convert_writes_a_zoo_folder_with_a_card_naming_the_source(tmp_path):
    unet = diffusers_unet(CONFIGS["two-attention-levels"])
    src = save(unet, tmp_path / "src", "pipeline")
    result = run_zoo("convert", str(src), str(tmp_path / "out"), check=True)
    assert "diffusers format" in result.stdout
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["README.md", "SHA256SUMS", "config.json", "model.safetensors"]
    assert str(src) in (tmp_path / "out" / "README.md").read_text()
    assert relative_error(zoo.load(tmp_path / "out", device="cpu"), unet) < 1e-5
    again = run_zoo("convert", str(src), str(tmp_path / "out"))
    assert again.returncode == 2 and "not empty" in again.stderr


def test_a_local_diffusers_folder_is_converted_once_into_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("ZOO_CACHE", str(tmp_path / "cache"))
    src = save(diffusers_unet(CONFIGS["two-attention-levels"]), tmp_path / "src", "flat")
    zoo.load(src, device="cpu")
    converted = list((tmp_path / "cache" / "converted" / "diffusers").iterdir())
    assert len(converted) == 1
    stamp = (converted[0] / "model.safetensors").stat().st_mtime_ns
    zoo.load(src, device="cpu")
    assert (converted[0] / "model.safetensors").stat().st_mtime_ns == stamp  # not converted again


# -- the catalog's ddpm-cifar through the (loopback) Hub ---------------------------------------------


def upload(hub, folder: Path, repo_id: str) -> str:
    from huggingface_hub import HfApi

    api = HfApi()
    api.create_repo(repo_id, exist_ok=True)
    return api.upload_folder(repo_id=repo_id, folder_path=folder).oid


def test_ddpm_cifar_loads_from_the_hub_then_offline_from_the_converted_cache(hub, tmp_path, monkeypatch):
    monkeypatch.setenv("ZOO_CACHE", str(tmp_path / "cache"))
    unet = diffusers_unet(CONFIGS["cifar10"], seed=3)
    commit = upload(hub, save(unet, tmp_path / "src", "flat"), "google/ddpm-cifar10-32")

    model = zoo.load("ddpm-cifar", device="cpu")
    assert relative_error(model, unet) < 1e-5
    assert model.config.variance == "beta_tilde"  # the scheduler config's fixed_small
    info = zoo.info("ddpm-cifar")
    assert "unpinned" in info["source"] and info["pinned"].startswith("no")

    pulled = run_zoo("pull", "ddpm-cifar", check=True, env={"ZOO_CACHE": str(tmp_path / "cache")})
    assert f"commit {commit}" in pulled.stdout

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    before = hub.request_count()
    offline = zoo.load("ddpm-cifar", device="cpu")
    assert hub.request_count() == before and relative_error(offline, unet) < 1e-5


def test_ddpm_cifar_offline_with_nothing_cached_fails_with_one_clear_line(hub, tmp_path):
    env = {"HF_HUB_OFFLINE": "1", "ZOO_CACHE": str(tmp_path / "empty-cache"), "HF_HOME": str(tmp_path / "empty-hf")}
    result = run_zoo("sample", "ddpm-cifar", "-o", str(tmp_path / "x.png"), env=env)
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1
    assert "zoo pull ddpm-cifar" in result.stderr and "Traceback" not in result.stderr
    demo = run_zoo("demo", "ddpm-cifar", "-n", "1", "-o", str(tmp_path / "demo"), env=env)
    assert "ddpm-cifar: skipped: " in demo.stdout and "zoo pull ddpm-cifar" in demo.stdout
    assert demo.returncode == 2 and "every catalog model was skipped" in demo.stderr


def test_a_diffusers_repo_id_loads_directly_and_a_pickled_only_repo_is_refused(hub, tmp_path, monkeypatch):
    monkeypatch.setenv("ZOO_CACHE", str(tmp_path / "cache"))
    unet = diffusers_unet(CONFIGS["two-attention-levels"])
    upload(hub, save(unet, tmp_path / "src", "pipeline"), "someone/ddpm-small")
    assert relative_error(zoo.load("someone/ddpm-small", device="cpu"), unet) < 1e-5

    folder = tmp_path / "bin-only"
    unet.save_pretrained(folder, safe_serialization=False)
    upload(hub, folder, "someone/ddpm-pickled")
    with pytest.raises(WeightsError, match="only pickled weights .*diffusion_pytorch_model.bin"):
        zoo.load("someone/ddpm-pickled", device="cpu")


def test_a_corrupted_hub_download_is_refused(hub, tmp_path, monkeypatch):
    from zoo_core.hub import IntegrityError

    monkeypatch.setenv("ZOO_CACHE", str(tmp_path / "cache"))
    upload(hub, save(diffusers_unet(CONFIGS["two-attention-levels"]), tmp_path / "src", "flat"), "someone/ddpm-corrupt")
    hub.corrupt("someone/ddpm-corrupt", "diffusion_pytorch_model.safetensors")
    with pytest.raises(IntegrityError):
        zoo.load("someone/ddpm-corrupt", device="cpu")


# -- samplers against diffusers' schedulers ----------------------------------------------------------


def _tiny_ddpm(variance: str):
    return zoo.build("ddpm", image_size=8, base_channels=8, channel_mults=[1, 2], attention_resolutions=[4], norm_groups=4,
                     variance=variance).eval()


@pytest.mark.parametrize("spacing, steps", [("leading", 1000), ("leading", 50), ("trailing", 50)])
@pytest.mark.parametrize("variance_type", ["fixed_small", "fixed_large"])
def test_the_ddpm_sampler_steps_as_diffusers_ddpmscheduler(variance_type, spacing, steps):
    if spacing == "trailing" and variance_type == "fixed_large":
        pytest.skip("diffusers adds sqrt(beta) noise on the last trailing step (t=19 -> the end); the zoo adds none")
    from zoo_ddpm.samplers import DDPMSampler

    model = _tiny_ddpm({"fixed_small": "beta_tilde", "fixed_large": "beta"}[variance_type])
    theirs = DDPMScheduler(variance_type=variance_type, timestep_spacing=spacing)
    theirs.set_timesteps(steps)
    sampler = DDPMSampler(num_inference_steps=steps, timestep_spacing=spacing)
    timesteps = sampler.timesteps(1000)
    assert timesteps == theirs.timesteps.tolist()
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, 8, 8, generator=g)
    ours = x.clone()
    for i, t in enumerate(timesteps[:: max(1, len(timesteps) // 25)] if steps == 1000 else timesteps):
        j = timesteps.index(t)
        t_prev = timesteps[j + 1] if j + 1 < len(timesteps) else -1
        eps = torch.randn(x.shape, generator=g)
        seed = 100 + i
        expected = theirs.step(eps, t, ours, generator=torch.Generator().manual_seed(seed)).prev_sample
        noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(seed))
        got = sampler.step(model.scheduler, eps, t, t_prev, ours, noise if sampler.adds_noise(model.scheduler, t, t_prev) else None)
        torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)
        ours = expected


@pytest.mark.parametrize("spacing", ["leading", "trailing"])
@pytest.mark.parametrize("eta", [0.0, 0.5, 1.0])
def test_the_ddim_sampler_steps_as_diffusers_ddimscheduler(eta, spacing):
    from zoo_ddpm.samplers import DDIMSampler

    model = _tiny_ddpm("beta_tilde")
    theirs = DDIMScheduler(timestep_spacing=spacing)
    theirs.set_timesteps(50)
    sampler = DDIMSampler(num_inference_steps=50, eta=eta, timestep_spacing=spacing)
    timesteps = sampler.timesteps(1000)
    assert timesteps == theirs.timesteps.tolist()
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, 8, 8, generator=g)
    for i, t in enumerate(timesteps):
        t_prev = timesteps[i + 1] if i + 1 < len(timesteps) else -1
        eps, noise = torch.randn(x.shape, generator=g), torch.randn(x.shape, generator=g)
        expected = theirs.step(eps, t, x, eta=eta, variance_noise=noise).prev_sample
        got = sampler.step(model.scheduler, eps, t, t_prev, x, noise if sampler.adds_noise(model.scheduler, t, t_prev) else None)
        torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)
        x = expected


def test_fifty_ddim_steps_end_to_end_match_diffusers_ddimpipeline(tmp_path):
    """The whole sampling call. In float64 with the same alpha_bar table on both sides (diffusers builds
    it in float32: 0.6% off the float64 product at t = 999, 2.5e-7 absolute), because 50 DDIM steps of a random-weight UNet are
    chaotic: in float32 the two drift apart by ~1.3x per step from the UNets' 1e-6 rounding differences."""
    unet = diffusers_unet(CONFIGS["two-attention-levels"], seed=5).double()
    model = zoo.load(save(unet, tmp_path / "src", "flat"), device="cpu").double()
    pipeline = DDIMPipeline(unet=unet, scheduler=DDIMScheduler.from_config(DDPMScheduler().config))
    pipeline.set_progress_bar_config(disable=True)
    schedule = pipeline.scheduler.alphas_cumprod
    assert float(((schedule.double() - model.scheduler.alpha_bars64).abs() / schedule).max()) < 0.01
    pipeline.scheduler.alphas_cumprod = model.scheduler.alpha_bars64 = schedule.double()
    expected = pipeline(batch_size=4, generator=torch.Generator().manual_seed(0), num_inference_steps=50, eta=0.0,
                        output_type="np").images
    got = model.sample(4, sampler="ddim", num_inference_steps=50, eta=0.0, generator=torch.Generator().manual_seed(0))
    assert float(abs(got.permute(0, 2, 3, 1).numpy() - expected).max()) < 1e-6


def test_a_list_of_generators_gives_one_per_sample_and_options_are_checked():
    model = _tiny_ddpm("beta_tilde")
    kwargs = dict(sampler="ddpm", num_inference_steps=10)
    both = model.sample(2, generator=[torch.Generator().manual_seed(1), torch.Generator().manual_seed(2)], **kwargs)
    second = model.sample(1, generator=torch.Generator().manual_seed(2), **kwargs)
    torch.testing.assert_close(both[1:], second)
    assert not torch.equal(both[0], both[1])
    with pytest.raises(UnknownOptionError, match="the ddim sampler takes no option 'variance'"):
        model.sample(1, sampler="ddim", variance="beta")
    with pytest.raises(ValueError, match="timestep_spacing"):
        model.sample(1, sampler="ddim", timestep_spacing="even")
    from zoo_ddpm.samplers import DDIMSampler

    obj = model.sample(1, sampler=DDIMSampler(num_inference_steps=5), generator=torch.Generator().manual_seed(0))
    named = model.sample(1, sampler="ddim", num_inference_steps=5, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(obj, named)
    assert math.isfinite(float(obj.sum()))
