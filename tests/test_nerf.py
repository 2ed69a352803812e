"""NeRF (plugin zoo-nerf): renderer against analytic cases, the inverse-transform sampler against its PDF,
encodings, rays, loaders, a tiny training run, and the shipped nerf-lego model."""

import json
import math
from importlib import resources
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import zoo
from zoo_core.config import TrainConfig
from zoo_core.plugins import get_dataset, get_metric
from zoo_core.renderer import Cameras
from zoo_nerf.data import NeRFDataError, load_blender, load_npz
from zoo_nerf.model import HashGrid, composite, positional_encoding, sample_pdf

DATA = Path(__file__).parents[2] / "shared" / "data" / "nerf"
TINY_NPZ = DATA / "lego_tiny_80views.npz"
RGBA_NPZ = DATA / "lego_200_rgba_80views.npz"
needs_data = pytest.mark.skipif(not TINY_NPZ.is_file(), reason=f"needs the shared lego data in {DATA}")


# -- analytic fields ------------------------------------------------------------------------------


class SlabField(nn.Module):
    """An opaque slab |z| < 0.1 of one colour; empty elsewhere (the paper model's field interface)."""

    def __init__(self, color=(1.0, 0.2, 0.0), sigma=1e4):
        super().__init__()
        self.register_buffer("colour", torch.tensor(color))
        self.sigma = sigma

    def forward(self, x, d):
        sigma = torch.where(x[:, 2].abs() < 0.1, self.sigma, 0.0)
        return sigma, self.colour.expand(x.shape[0], 3)


class ConstantField(nn.Module):
    """Constant density and colour (the fast model's field interface: density() and color())."""

    def __init__(self, sigma, color=(0.0, 1.0, 0.0)):
        super().__init__()
        self.sigma = sigma
        self.register_buffer("colour", torch.tensor(color))

    def density(self, x):
        return torch.full((x.shape[0],), self.sigma), torch.zeros(x.shape[0], 4)

    def color(self, h, d):
        return self.colour.expand(h.shape[0], 3)


def _down_rays(n=5):
    """Rays from z = 4 straight down (-z), spread in x, y (unnormalized: z component -1)."""
    origins = torch.tensor([[0.0, 0.0, 4.0]]).expand(n, 3)
    directions = torch.stack([torch.linspace(-0.1, 0.1, n), torch.linspace(0.1, -0.1, n), -torch.ones(n)], -1)
    return origins, directions


def test_constant_density_transmittance_has_its_closed_form():
    sigma, n = 0.7, 50
    t = torch.linspace(2.0, 6.0, n + 1)[None]
    delta = t[:, 1:] - t[:, :-1]
    colour = torch.tensor([0.2, 0.4, 0.6]).expand(1, n, 3)
    rgb, depth, acc, weights = composite(torch.full((1, n), sigma), colour, t[:, :-1], delta, background=1.0)
    # T_i = exp(-sigma (t_i - t_n)), so w_i = exp(-sigma (t_i - t_n)) (1 - exp(-sigma delta))
    expected_w = torch.exp(-sigma * (t[:, :-1] - 2.0)) * (1 - math.exp(-sigma * 4.0 / n))
    torch.testing.assert_close(weights, expected_w)
    assert float(acc) == pytest.approx(1 - math.exp(-sigma * 4.0), rel=1e-5)
    torch.testing.assert_close(rgb[0], torch.tensor([0.2, 0.4, 0.6]) * float(acc) + (1 - float(acc)))


def test_fast_renderer_through_a_constant_medium_matches_beer_lambert():
    model = zoo.build("nerf", variant="fast", background="black", n_samples=32, early_stop_transmittance=0.0,
                      hash_levels=2, hash_log2_size=8, occupancy_resolution=4).eval()
    sigma = 0.3
    model.field = ConstantField(sigma)
    origins, directions = _down_rays()
    out = model.render_rays(origins, directions)
    # the ray crosses the aabb (|z| <= 1.5) over t in [2.5, 5.5]: optical depth sigma * 3 * |d|
    expected_acc = 1 - torch.exp(-sigma * 3.0 * directions.norm(dim=-1))
    torch.testing.assert_close(out["acc"], expected_acc)
    torch.testing.assert_close(out["rgb"], expected_acc[:, None] * torch.tensor([0.0, 1.0, 0.0]))
    # expected depth of a uniform medium over [a, b]: a + 1/k - L e^{-kL} / (1 - e^{-kL}), k = sigma |d|
    k, length = sigma * directions.norm(dim=-1), 3.0
    depth = 2.5 + 1 / k - length * torch.exp(-k * length) / (1 - torch.exp(-k * length))
    torch.testing.assert_close(out["depth"] / expected_acc, depth, atol=0.03, rtol=0)


@pytest.mark.parametrize("background", ["white", "black"])
def test_paper_renderer_returns_the_colour_of_an_opaque_slab(background):
    model = zoo.build("nerf", variant="paper", background=background, n_coarse=64, n_fine=32, depth=1, hidden=4,
                      skip_after=0, color_hidden=4, pos_freqs=1, dir_freqs=1).eval()
    model.coarse, model.fine = SlabField(), SlabField()
    origins, directions = _down_rays()
    with torch.no_grad():
        out = model.render_rays(origins, directions)
    torch.testing.assert_close(out["rgb"], torch.tensor([1.0, 0.2, 0.0]).expand(5, 3), atol=1e-4, rtol=0)
    torch.testing.assert_close(out["acc"], torch.ones(5), atol=1e-4, rtol=0)
    # the surface is at z = 0.1, i.e. t = 3.9; the fine samples concentrate there
    assert torch.all((out["depth"] - 3.9).abs() < 0.05), out["depth"]
    assert torch.all((out["depth"] - 3.9).abs() <= (out["depth_coarse"] - 3.9).abs() + 1e-4)


def test_rays_that_miss_the_scene_show_the_background():
    model = zoo.build("nerf", variant="paper", background="white", n_coarse=8, n_fine=0, depth=1, hidden=4,
                      skip_after=0, color_hidden=4, pos_freqs=1, dir_freqs=1).eval()
    model.coarse = SlabField(sigma=0.0)
    out = model.render_rays(*_down_rays())
    torch.testing.assert_close(out["rgb"], torch.ones(5, 3))


@pytest.mark.parametrize("grad", [False, True])
def test_fast_variant_renders_background_when_no_sample_is_shaded(grad):
    """Rays that leave the scene's box: the hash grid is queried with zero points (a chunk of sky)."""
    model = zoo.build("nerf", variant="fast", background="white", hash_levels=2, hash_log2_size=8, mlp_hidden=8, n_samples=8)
    origins = torch.tensor([[0.0, 0.0, 5.0]]).repeat(4, 1)
    directions = torch.tensor([[0.0, 0.0, 1.0]]).repeat(4, 1)  # pointing away from the box
    with torch.set_grad_enabled(grad):
        out = model.render_rays(origins, directions, perturb=grad)
    torch.testing.assert_close(out["rgb"], torch.ones(4, 3))
    assert float(out["samples_per_ray"]) == 0.0


def test_inverse_transform_sampler_follows_its_pdf():
    bins = torch.tensor([[0.0, 1.0, 2.0, 3.0, 4.0]])
    weights = torch.tensor([[1.0, 0.0, 3.0, 0.5]])
    n = 20000
    samples = sample_pdf(bins, weights, n, generator=torch.Generator().manual_seed(0))[0]
    assert samples.shape == (n,)
    pdf = (weights[0] + 1e-5) / (weights[0] + 1e-5).sum()
    histogram = torch.histc(samples, bins=4, min=0.0, max=4.0) / n
    torch.testing.assert_close(histogram, pdf, atol=0.012, rtol=0)
    # Kolmogorov-Smirnov against the piecewise-linear CDF (critical value at alpha = 0.001: 1.95 / sqrt(n))
    cdf_edges = torch.cat([torch.zeros(1), torch.cumsum(pdf, 0)])
    xs = torch.sort(samples).values
    i = xs.floor().long().clamp(0, 3)
    model_cdf = cdf_edges[i] + (xs - i) * pdf[i]
    empirical = torch.arange(1, n + 1) / n
    assert float((empirical - model_cdf).abs().max()) < 1.95 / math.sqrt(n)
    # deterministic: evenly spaced quantiles of the same CDF
    quantiles = sample_pdf(bins, weights, 5, deterministic=True)[0]
    expected = [0.0, 2.0 + (0.25 - pdf[0] - pdf[1]) / pdf[2], None, None, 4.0]
    assert float(quantiles[0]) == pytest.approx(0.0, abs=1e-4) and float(quantiles[-1]) == pytest.approx(4.0, abs=1e-3)
    assert float(quantiles[1]) == pytest.approx(float(expected[1]), abs=1e-3)


def test_positional_encoding_values():
    p = torch.tensor([[0.25, -0.5, 1.0]])
    gamma = positional_encoding(p, 3)
    assert gamma.shape == (1, 3 + 3 * 2 * 3)
    torch.testing.assert_close(gamma[0, :3], p[0])
    for k in range(3):
        sin, cos = gamma[0, 3 + 6 * k : 6 + 6 * k], gamma[0, 6 + 6 * k : 9 + 6 * k]
        torch.testing.assert_close(sin, torch.sin(2**k * math.pi * p[0]))
        torch.testing.assert_close(cos, torch.cos(2**k * math.pi * p[0]))
    # the paper's sizes: 3 + 60 for positions (L = 10), 3 + 24 for directions (L = 4)
    assert positional_encoding(p, 10).shape[-1] == 63 and positional_encoding(p, 4).shape[-1] == 27


def hash_grid_reference(grid: HashGrid, x: torch.Tensor) -> torch.Tensor:
    """instant-ngp's encoding written point by point with Python integers (Sec. 3, Eq. 4)."""
    rows = []
    for point in x.tolist():
        features = []
        for level, resolution in enumerate(grid.resolutions.tolist()):
            # x N_l rounded to float32 as the model computes it (at N_l = 32768 float32 keeps ~1e-3 of a cell)
            scaled = (torch.tensor(point).clamp(0.0, 1.0 - 1e-6) * resolution).tolist()
            lower = [math.floor(s) for s in scaled]
            value = torch.zeros(grid.features)
            for corner in range(8):
                vertex = [lower[axis] + ((corner >> axis) & 1) for axis in range(3)]
                if (resolution + 1) ** 3 <= grid.table_size:
                    index = vertex[0] + vertex[1] * (resolution + 1) + vertex[2] * (resolution + 1) ** 2
                else:
                    index = (vertex[0] * 1 ^ vertex[1] * 2654435761 ^ vertex[2] * 805459861) % grid.table_size
                weight = math.prod(s - l if (corner >> axis) & 1 else 1.0 - (s - l)
                                   for axis, (s, l) in enumerate(zip(scaled, lower)))
                value = value + weight * grid.table[level * grid.table_size + index]
            features.append(value)
        rows.append(torch.cat(features))
    return torch.stack(rows)


@pytest.mark.parametrize("log2_size, max_resolution, index_dtype", [(10, 64, torch.int32), (16, 32768, torch.long)])
def test_hash_grid_matches_the_papers_encoding_and_its_gradient(log2_size, max_resolution, index_dtype):
    torch.manual_seed(0)
    grid = HashGrid(levels=5, features=2, log2_size=log2_size, base_resolution=4, max_resolution=max_resolution)
    assert 0 < grid.dense_levels < grid.levels  # both the direct and the hashed lookup are exercised
    assert grid.multipliers.dtype == index_dtype  # int32 only where (N_max + 1) T cannot overflow it
    with torch.no_grad():
        grid.table.normal_()
    x = torch.cat([torch.rand(40, 3), torch.tensor([[0.0, 0.0, 0.0], [1.0, 1.0, 1.0], [0.5, 0.25, 1.0]])])
    encoded, expected = grid(x), hash_grid_reference(grid, x)
    torch.testing.assert_close(encoded, expected, rtol=1e-5, atol=1e-5)
    upstream = torch.randn_like(encoded)
    (grad,) = torch.autograd.grad((encoded * upstream).sum(), grid.table)
    (grad_expected,) = torch.autograd.grad((expected * upstream).sum(), grid.table)
    torch.testing.assert_close(grad, grad_expected, rtol=1e-4, atol=1e-5)


def test_paper_model_has_the_papers_architecture():
    model = zoo.build("nerf", variant="paper")
    assert len(model.coarse.layers) == 8 and model.coarse.layers[0].in_features == 63
    assert model.coarse.layers[5].in_features == 256 + 63  # gamma(x) joins the fifth layer's activation
    assert model.coarse.color_hidden.in_features == 256 + 27
    assert model.config.n_coarse == 64 and model.config.n_fine == 128


@needs_data
def test_dataset_rays_follow_the_data_readme_formula():
    train = load_npz(TINY_NPZ, "train", limit=2)
    with np.load(TINY_NPZ) as f:
        pose, focal = torch.from_numpy(f["poses"][1]), float(f["focal"])
    u, v = 37, 81
    direction = pose[:3, :3] @ torch.tensor([(u - 50) / focal, -(v - 50) / focal, -1.0])
    ray = train[1 * 100 * 100 + v * 100 + u]
    torch.testing.assert_close(ray["directions"], direction)
    torch.testing.assert_close(ray["origins"], pose[:3, 3])
    # and Cameras at any resolution: half the size, half the focal, the same centre ray
    origins, directions = Cameras(pose, focal, 100, 100).resized(50, 50).generate_rays()
    assert directions.shape == (1, 50, 50, 3)
    torch.testing.assert_close(directions[0, 25, 25], pose[:3, :3] @ torch.tensor([0.0, 0.0, -1.0]))


@needs_data
def test_npz_loaders_split_and_composite():
    train, val = load_npz(TINY_NPZ, "train"), load_npz(TINY_NPZ, "val")
    assert len(train.images) == 72 and len(val.images) == 8 and len(train) == 72 * 100 * 100
    assert train.background == "black" and train.focal == pytest.approx(138.88887889922103)
    with np.load(TINY_NPZ) as f:
        torch.testing.assert_close(val.images, torch.from_numpy(f["images"][72:]))
    with pytest.raises(NeRFDataError, match="black"):
        load_npz(TINY_NPZ, background="white")
    with pytest.raises(NeRFDataError, match="split"):
        load_npz(TINY_NPZ, "test")
    with pytest.raises(NeRFDataError, match="green"):
        load_npz(RGBA_NPZ, background="green", limit=1)
    white = load_npz(RGBA_NPZ, "val", limit=1)
    assert white.background == "white" and white.width == 200
    assert float(white.images[0, 0, 0].min()) == pytest.approx(1.0)  # a corner is background
    # the RGBA file box-filtered 2x on black is the tiny file (both come from the same renders)
    black = load_npz(RGBA_NPZ, "val", background="black", downscale=2, limit=1)
    assert black.focal == pytest.approx(val.focal, rel=1e-6)
    assert float((black.images[0] - val.images[0]).abs().mean()) < 0.01


@needs_data
def test_blender_folder_loader_matches_the_npz(tmp_path):
    from PIL import Image

    with np.load(RGBA_NPZ) as f:
        images, poses, angle = f["images"][:3], f["poses"][:3], float(f["camera_angle_x"])
    frames = []
    for i, (image, pose) in enumerate(zip(images, poses)):
        (tmp_path / "train").mkdir(exist_ok=True)
        Image.fromarray(image, "RGBA").save(tmp_path / "train" / f"r_{i}.png")
        frames.append({"file_path": f"./train/r_{i}", "transform_matrix": pose.tolist()})
    (tmp_path / "transforms_train.json").write_text(json.dumps({"camera_angle_x": angle, "frames": frames}))
    scene = load_blender(tmp_path, "train", holdout=1)
    reference = load_npz(RGBA_NPZ, "all", limit=2)
    assert len(scene.images) == 2 and scene.focal == pytest.approx(reference.focal, rel=1e-6)
    torch.testing.assert_close(scene.images, reference.images)
    torch.testing.assert_close(scene.directions, reference.directions)
    registered = get_dataset("blender").load(tmp_path, split="val", holdout=1)
    assert len(registered.images) == 1


@needs_data
def test_tiny_training_lowers_the_loss():
    torch.manual_seed(0)
    rays = load_npz(TINY_NPZ, "train", limit=2, downscale=4).tensors()  # 2 views of 25x25
    model = zoo.build("nerf", variant="fast", background="black", hash_levels=4, hash_log2_size=12,
                      hash_max_resolution=64, n_samples=24, occupancy_resolution=16, mlp_hidden=32)
    optimizer = model.configure_optimizers(TrainConfig(lr=1e-2, betas=(0.9, 0.99)))["main"]
    generator = torch.Generator().manual_seed(0)
    model.train()
    losses = []
    for _ in range(40):
        index = torch.randint(0, rays["rgb"].shape[0], (256,), generator=generator)
        out = model.training_step({k: v[index] for k, v in rays.items()})
        optimizer.zero_grad()
        out["loss"].backward()
        optimizer.step()
        losses.append(float(out["loss"].detach()))
    assert int(model.step_count) == 40
    assert 0.0 <= model.occupancy_fraction() < 1.0  # the grid was updated and found empty space
    assert np.mean(losses[-5:]) < 0.6 * np.mean(losses[:5]), losses


SHIPPED_SCENES = ["nerf-lego", "nerf-lego-200"]


@pytest.mark.parametrize("name", SHIPPED_SCENES)
def test_shipped_scenes_render_without_their_dataset(name):
    model = zoo.load(name, device="cpu")
    assert model.config.variant == "fast" and model.config.near < model.config.far
    cameras = model.turntable_cameras(2, width=32, height=32)
    out = model.render(cameras)
    assert out["rgb"].shape == (2, 32, 32, 3) and out["depth"].shape == (2, 32, 32)
    assert 0.0 <= float(out["rgb"].min()) and float(out["rgb"].max()) <= 1.0
    assert float(out["rgb"].std()) > 0.05  # a scene, not a blank
    images = model.sample(1, generator=torch.Generator().manual_seed(0), width=16, height=16)
    assert images.shape == (1, 3, 16, 16)


@needs_data
@pytest.mark.parametrize("name", SHIPPED_SCENES)
def test_shipped_scenes_reproduce_a_held_out_view(name):
    model = zoo.load(name, device="cpu")
    metric = get_metric("psnr")
    # the held-out view 72 at the resolution it was trained on (31.2 and 30.6 dB when shipped), from the file
    # whose background the model was trained on; one ray per pixel, so a smaller render would alias
    data = TINY_NPZ if model.config.background == "black" else RGBA_NPZ
    scores = metric.compute(model, data=data, out_dir=None, views=1)
    assert scores["psnr"] > 29.0, scores


def test_fast_variant_saves_its_occupancy_grid_and_loads_exactly(tmp_path):
    torch.manual_seed(0)
    model = zoo.build("nerf", variant="fast", hash_levels=2, hash_log2_size=8, n_samples=16, occupancy_resolution=8,
                      occupancy_update_every=1, width=8, height=8, focal=11.0)
    optimizer = model.configure_optimizers(TrainConfig(lr=1e-2))["main"]
    model.train()
    model.training_step(model.example_batch(16, generator=torch.Generator().manual_seed(0)))["loss"].backward()
    optimizer.step()
    assert int(model.step_count) == 1 and bool((model.occupancy_density >= 0).all())
    model.eval().save_pretrained(tmp_path / "m")
    loaded = zoo.load(tmp_path / "m", device="cpu")
    torch.testing.assert_close(loaded.occupancy_density, model.occupancy_density, rtol=0, atol=0)
    generator = lambda: torch.Generator().manual_seed(3)  # noqa: E731
    assert torch.equal(model.sample(2, generator=generator()), loaded.sample(2, generator=generator()))


def test_invalid_configs_name_the_bad_value():
    with pytest.raises(ValueError, match="far"):
        zoo.build("nerf", near=6.0, far=2.0)
    with pytest.raises(ValueError, match="variant"):
        zoo.build("nerf", variant="instant")
