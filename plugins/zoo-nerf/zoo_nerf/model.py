"""NeRF (Mildenhall et al., ECCV 2020) and an instant-ngp style fast variant (Mueller et al., SIGGRAPH 2022).

One family, two configurations:

* ``variant="paper"``: positional encoding gamma (L=10 for x, L=4 for d), the 8x256 MLP with the input
  skip-connected to the fifth layer's activation, density from position only, view-dependent colour;
  a coarse network at N_c stratified samples and a fine network at N_c + N_f samples drawn by inverse
  transform sampling from the coarse weights; loss = coarse + fine photometric errors (paper, Sec. 5).
* ``variant="fast"``: a multiresolution hash-grid encoding with tiny MLPs, an occupancy grid that
  skips empty space (updated inside ``training_step``), and early ray termination.

Both render with the quadrature of Sec. 4::

    C_hat = sum_i T_i (1 - exp(-sigma_i delta_i)) c_i,  T_i = exp(-sum_{j<i} sigma_j delta_j)

Rays are ``o + t d`` with the unnormalized pixel directions of ``zoo_core.renderer.Cameras`` (camera-space
z component -1), so ``t`` is the depth along the camera axis and ``delta_i = (t_{i+1} - t_i) |d|``.
"""

from __future__ import annotations

import math
from typing import Any, Literal, Optional

import torch
import torch.nn.functional as F
from pydantic import Field, model_validator
from torch import nn

from zoo_core.config import TrainConfig, ZooConfig
from zoo_core.generator import Generator
from zoo_core.noise import GeneratorArg, rand_tensor
from zoo_core.progress import progress_bar
from zoo_core.renderer import Cameras, Renderer, orbit_poses


class NeRFConfig(ZooConfig):
    """A NeRF scene model. Carries the scene's bounds and default camera, never a dataset path."""

    variant: Literal["paper", "fast"] = Field("paper", description="'paper': the NeRF MLP with hierarchical sampling; 'fast': hash grid + occupancy grid.")
    # -- the scene (portable: a trained model renders without its dataset) --
    aabb: tuple[float, float, float, float, float, float] = Field(
        (-1.5, -1.5, -1.5, 1.5, 1.5, 1.5), description="Scene bounds (xmin, ymin, zmin, xmax, ymax, zmax); the fast variant's grids span it.")
    near: float = Field(2.0, gt=0, description="Near bound t_n along each ray (Blender scenes: 2).")
    far: float = Field(6.0, gt=0, description="Far bound t_f along each ray (Blender scenes: 6).")
    background: Literal["white", "black"] = Field("white", description="Colour behind the scene, composited as C + T_final * background.")
    focal: float = Field(138.88887889922103, gt=0, description="Default focal length in pixels (for sample() and turntables).")
    width: int = Field(100, ge=1, description="Default image width in pixels.")
    height: int = Field(100, ge=1, description="Default image height in pixels.")
    orbit_radius: float = Field(4.0311, gt=0, description="Default turntable camera distance from the origin.")
    orbit_elevation: float = Field(30.0, description="Default turntable elevation in degrees.")
    # -- the paper's model --
    pos_freqs: int = Field(10, ge=0, description="L of gamma(x): frequencies 2^0..2^(L-1) for positions (paper: 10).")
    dir_freqs: int = Field(4, ge=0, description="L of gamma(d) for viewing directions (paper: 4).")
    depth: int = Field(8, ge=1, description="Layers of the position MLP (paper: 8).")
    hidden: int = Field(256, ge=1, description="Width of the position MLP (paper: 256).")
    skip_after: int = Field(5, ge=0, description="gamma(x) is concatenated to this layer's activation (1-based; paper: the fifth; 0: none).")
    color_hidden: int = Field(128, ge=1, description="Width of the view-dependent colour layer (paper: 128).")
    n_coarse: int = Field(64, ge=1, description="N_c stratified samples for the coarse network (paper: 64).")
    n_fine: int = Field(128, ge=0, description="N_f inverse-transform samples for the fine network (paper: 128; 0: coarse only).")
    # -- the fast variant --
    hash_levels: int = Field(8, ge=1, description="L: resolution levels of the hash grid (instant-ngp: 16; 8 with F=4 halves the gathers on a CPU).")
    hash_features: int = Field(4, ge=1, description="F: features per level (instant-ngp: 2).")
    hash_log2_size: int = Field(16, ge=4, le=24, description="log2 T: entries per level's table.")
    hash_base_resolution: int = Field(16, ge=2, description="N_min: the coarsest grid resolution.")
    hash_max_resolution: int = Field(256, ge=2, description="N_max: the finest grid resolution.")
    mlp_hidden: int = Field(64, ge=1, description="Width of the fast variant's tiny MLPs.")
    geo_features: int = Field(15, ge=1, description="Features the density MLP passes to the colour MLP (besides log density).")
    n_samples: int = Field(64, ge=1, description="Fast variant: uniform samples along each ray inside the aabb, before skipping empty space.")
    occupancy_resolution: int = Field(64, ge=1, description="Cells per side of the occupancy grid.")
    occupancy_threshold: float = Field(0.5, ge=0, description="Density below which a cell counts as empty (capped by the grid's mean density).")
    occupancy_decay: float = Field(0.95, gt=0, le=1, description="Each update keeps max(decay * old, new) density per cell.")
    occupancy_update_every: int = Field(8, ge=1, description="training_step calls between occupancy-grid updates.")
    occupancy_warmup: int = Field(8, ge=0, description="Before this many training steps every cell is re-evaluated; afterwards a random quarter.")
    early_stop_transmittance: float = Field(1e-3, ge=0, lt=1, description="Early ray termination: samples behind a transmittance below this are not shaded (0: off).")

    @model_validator(mode="after")
    def _check(self) -> "NeRFConfig":
        if self.far <= self.near:
            raise ValueError(f"far ({self.far}) must be greater than near ({self.near})")
        lo, hi = self.aabb[:3], self.aabb[3:]
        if any(h <= l for l, h in zip(lo, hi)):
            raise ValueError(f"aabb {self.aabb} must be (xmin, ymin, zmin, xmax, ymax, zmax) with max > min")
        if self.skip_after > self.depth:
            raise ValueError(f"skip_after ({self.skip_after}) must be at most depth ({self.depth})")
        if self.hash_max_resolution < self.hash_base_resolution:
            raise ValueError("hash_max_resolution must be at least hash_base_resolution")
        return self


# ---------------------------------------------------------------------------------------------
# Encodings
# ---------------------------------------------------------------------------------------------


def positional_encoding(p: torch.Tensor, num_freqs: int, include_input: bool = True) -> torch.Tensor:
    """gamma(p) = (p, sin(2^0 pi p), cos(2^0 pi p), ..., sin(2^{L-1} pi p), cos(2^{L-1} pi p)), per coordinate.

    The paper's Eq. 4 with the raw input prepended, as in its released code (so 3 + 3*2*L values).
    The output is ordered (p, then for each frequency k: sin over the 3 coordinates, cos over them).
    """
    parts = [p] if include_input else []
    for k in range(num_freqs):
        parts += [torch.sin((2.0**k) * math.pi * p), torch.cos((2.0**k) * math.pi * p)]
    return torch.cat(parts, -1) if parts else p[..., :0]


def spherical_harmonics(d: torch.Tensor) -> torch.Tensor:
    """Real spherical harmonics up to degree 3 (16 values) of unit directions, as instant-ngp encodes d."""
    x, y, z = d.unbind(-1)
    xx, yy, zz, xy, yz, xz = x * x, y * y, z * z, x * y, y * z, x * z
    return torch.stack([
        torch.full_like(x, 0.28209479177387814),
        -0.48860251190291987 * y, 0.48860251190291987 * z, -0.48860251190291987 * x,
        1.0925484305920792 * xy, -1.0925484305920792 * yz, 0.94617469575755997 * zz - 0.31539156525251999,
        -1.0925484305920792 * xz, 0.54627421529603959 * (xx - yy),
        0.59004358992664352 * y * (-3.0 * xx + yy), 2.8906114426405538 * xy * z,
        0.45704579946446572 * y * (1.0 - 5.0 * zz), 0.3731763325901154 * z * (5.0 * zz - 3.0),
        0.45704579946446572 * x * (1.0 - 5.0 * zz), 1.4453057213202769 * z * (xx - yy),
        0.59004358992664352 * x * (-xx + 3.0 * yy),
    ], -1)


class HashGrid(nn.Module):
    """Multiresolution hash encoding (instant-ngp, Sec. 3): L levels, T entries of F features each.

    Level l has resolution N_l = floor(N_min * b^l), b = exp((ln N_max - ln N_min) / (L - 1)). A point's
    8 surrounding vertices index the level's table directly when (N_l + 1)^3 <= T, else through the
    spatial hash (x1 pi1 xor x2 pi2 xor x3 pi3) mod T; their features are trilinearly interpolated.
    All levels are looked up at once with one gather on the concatenated tables.

    Positions get no gradient (the NeRF loss does not need one).
    """

    PRIMES = (1, 2654435761, 805459861)

    def __init__(self, levels: int, features: int, log2_size: int, base_resolution: int, max_resolution: int):
        super().__init__()
        size = 2**log2_size
        growth = math.exp((math.log(max_resolution) - math.log(base_resolution)) / max(levels - 1, 1))
        resolutions = torch.tensor([math.floor(base_resolution * growth**l) for l in range(levels)], dtype=torch.long)
        dense = (resolutions + 1) ** 3 <= size
        self.table_size, self.levels, self.features = size, levels, features
        # resolutions grow with l, so the directly indexed levels come first
        self.dense_levels = int(dense.sum())
        self.table = nn.Parameter(torch.empty(levels * size, features).uniform_(-1e-4, 1e-4))
        # Only the low log2 T bits of the hash are used, and the low bits of a product and of a xor
        # depend only on the low bits of their operands: the primes can be reduced mod T, which keeps
        # the arithmetic in int32 (half the memory traffic of int64) whenever it cannot overflow.
        side = resolutions + 1
        strides = torch.stack([torch.ones_like(side), side, side * side], 1)
        primes = torch.tensor([p % size for p in self.PRIMES])
        multipliers = torch.where(dense[:, None], strides, primes[None, :])  # (L, 3)
        index_dtype = torch.int32 if int(side.max()) * size < 2**31 else torch.long
        self.register_buffer("resolutions", resolutions, persistent=False)
        self.register_buffer("multipliers", multipliers.to(index_dtype), persistent=False)
        self.register_buffer("offsets", (torch.arange(levels) * size).to(index_dtype), persistent=False)

    @property
    def out_dim(self) -> int:
        return self.levels * self.features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x``: (M, 3) in [0, 1] -> (M, L * F)."""
        m, nd = x.shape[0], self.dense_levels
        scaled = x.clamp(0.0, 1.0 - 1e-6)[:, None, :] * self.resolutions[None, :, None].to(x.dtype)  # (M, L, 3)
        cell = scaled.floor()
        frac = scaled - cell
        lower = cell.to(self.multipliers.dtype) * self.multipliers  # per axis, the vertex below, pre-multiplied
        vertex = (lower.unbind(-1), (lower + self.multipliers).unbind(-1))  # [0 | 1][axis] -> (M, L)
        weight_1d = ((1.0 - frac).unbind(-1), frac.unbind(-1))
        indices, weights = [], []
        for corner in range(8):  # (M, L) tensors per corner: contiguous, unlike one (M, L, 2, 2, 2) broadcast
            bits = (corner & 1, (corner >> 1) & 1, (corner >> 2) & 1)
            vx, vy, vz = (vertex[b][axis] for axis, b in enumerate(bits))
            direct = vx[:, :nd] + vy[:, :nd] + vz[:, :nd]
            hashed = (vx[:, nd:] ^ vy[:, nd:] ^ vz[:, nd:]) & (self.table_size - 1)
            indices.append(torch.cat([direct, hashed], 1) + self.offsets)
            weights.append(weight_1d[bits[0]][0] * weight_1d[bits[1]][1] * weight_1d[bits[2]][2])
        index = torch.stack(indices).view(8, -1)
        weight = torch.stack(weights).view(8, -1).to(self.table.dtype)
        return _Interpolate.apply(self.table, index, weight).view(m, self.out_dim)


class _Interpolate(torch.autograd.Function):
    """sum_c w_c table[index_c] over the 8 corners c: ``index``, ``weight`` (8, N) -> (N, F).

    Its backward is one ``index_add_`` (on a CPU about 8x faster than the backward of ``F.embedding``,
    which sorts the indices)."""

    @staticmethod
    def forward(ctx, table, index, weight):
        ctx.save_for_backward(index, weight)
        ctx.rows = table.shape[0]
        corners = table.index_select(0, index.reshape(-1)).view(8, -1, table.shape[1])
        return (corners * weight[..., None]).sum(0)

    @staticmethod
    def backward(ctx, grad):
        index, weight = ctx.saved_tensors
        grad_table = torch.zeros(ctx.rows, grad.shape[-1], dtype=grad.dtype, device=grad.device)
        # index_add_ with an int32 index is several times slower than with int64
        grad_table.index_add_(0, index.reshape(-1).long(), (weight[..., None] * grad[None]).reshape(-1, grad.shape[-1]))
        return grad_table, None, None


class _TruncExp(torch.autograd.Function):
    """exp with its gradient clamped (instant-ngp's density activation)."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return torch.exp(x)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad * torch.exp(x.clamp(-15.0, 15.0))


def trunc_exp(x: torch.Tensor) -> torch.Tensor:
    return _TruncExp.apply(x.clamp(max=11.0))


# ---------------------------------------------------------------------------------------------
# Fields: x, d -> sigma, c
# ---------------------------------------------------------------------------------------------


class PaperField(nn.Module):
    """The paper's MLP (Fig. 7): gamma(x) -> 8 x 256 ReLU (gamma(x) concatenated to the fifth layer's
    activation) -> sigma (ReLU) and a 256 feature; [feature, gamma(d)] -> 128 ReLU -> c (sigmoid)."""

    def __init__(self, config: NeRFConfig):
        super().__init__()
        self.pos_freqs, self.dir_freqs, self.skip_after = config.pos_freqs, config.dir_freqs, config.skip_after
        pos_dim, dir_dim = 3 + 6 * config.pos_freqs, 3 + 6 * config.dir_freqs
        layers = []
        for i in range(config.depth):
            fan_in = pos_dim if i == 0 else config.hidden
            if i > 0 and i == config.skip_after:
                fan_in += pos_dim
            layers.append(nn.Linear(fan_in, config.hidden))
        self.layers = nn.ModuleList(layers)
        self.sigma = nn.Linear(config.hidden, 1)
        self.feature = nn.Linear(config.hidden, config.hidden)
        self.color_hidden = nn.Linear(config.hidden + dir_dim, config.color_hidden)
        self.color = nn.Linear(config.color_hidden, 3)

    def forward(self, x: torch.Tensor, d: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        gamma_x = positional_encoding(x, self.pos_freqs)
        gamma_d = positional_encoding(d / d.norm(dim=-1, keepdim=True), self.dir_freqs)
        h = gamma_x
        for i, layer in enumerate(self.layers):
            if i > 0 and i == self.skip_after:
                h = torch.cat([h, gamma_x], -1)
            h = F.relu(layer(h))
        sigma = F.relu(self.sigma(h)).squeeze(-1)
        h = F.relu(self.color_hidden(torch.cat([self.feature(h), gamma_d], -1)))
        return sigma, torch.sigmoid(self.color(h))


class HashField(nn.Module):
    """instant-ngp's NeRF field: hash grid -> 1 x 64 MLP -> (log sigma, 15 features);
    [features, SH(d)] -> 2 x 64 MLP -> c."""

    def __init__(self, config: NeRFConfig):
        super().__init__()
        self.encoding = HashGrid(config.hash_levels, config.hash_features, config.hash_log2_size,
                                 config.hash_base_resolution, config.hash_max_resolution)
        w = config.mlp_hidden
        self.density_mlp = nn.Sequential(nn.Linear(self.encoding.out_dim, w), nn.ReLU(), nn.Linear(w, 1 + config.geo_features))
        self.color_mlp = nn.Sequential(
            nn.Linear(1 + config.geo_features + 16, w), nn.ReLU(), nn.Linear(w, w), nn.ReLU(), nn.Linear(w, 3)
        )
        aabb = torch.tensor(config.aabb, dtype=torch.float32)
        self.register_buffer("aabb_min", aabb[:3], persistent=False)
        self.register_buffer("aabb_size", aabb[3:] - aabb[:3], persistent=False)

    def density(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.density_mlp(self.encoding((x - self.aabb_min) / self.aabb_size))
        return trunc_exp(h[:, 0] - 1.0), h

    def color(self, h: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
        sh = spherical_harmonics(d / d.norm(dim=-1, keepdim=True))
        return torch.sigmoid(self.color_mlp(torch.cat([h, sh], -1)))


# ---------------------------------------------------------------------------------------------
# Volume rendering and sampling (Sec. 4 and 5.2)
# ---------------------------------------------------------------------------------------------


def stratified_samples(near, far, n: int, batch: int, *, perturb: bool, generator=None, device=None) -> torch.Tensor:
    """t_i ~ U[t_n + (i-1)/N (t_f - t_n), t_n + i/N (t_f - t_n)] (Eq. 2); bin midpoints when not perturbed.
    ``near``/``far`` are floats or ``(B, 1)`` tensors; returns ``(B, n)``."""
    u = torch.rand(batch, n, generator=generator, device=device) if perturb else torch.full((batch, n), 0.5, device=device)
    return near + (far - near) * (torch.arange(n, device=device) + u) / n


def composite(sigma: torch.Tensor, color: torch.Tensor, t: torch.Tensor, delta: torch.Tensor, background: float):
    """The quadrature C_hat = sum_i T_i (1 - exp(-sigma_i delta_i)) c_i (Eq. 3).

    sigma, t, delta: (B, N); color: (B, N, 3). Returns rgb (B, 3) composited on ``background``,
    expected depth (B,), accumulated opacity (B,) and the weights w_i = T_i alpha_i (B, N).
    """
    tau = sigma * delta
    alpha = 1.0 - torch.exp(-tau)
    # T_i = exp(-sum_{j<i} sigma_j delta_j): an exclusive cumulative sum
    transmittance = torch.exp(-torch.cat([torch.zeros_like(tau[:, :1]), torch.cumsum(tau, -1)[:, :-1]], -1))
    weights = transmittance * alpha
    acc = weights.sum(-1)
    rgb = (weights[..., None] * color).sum(-2) + (1.0 - acc)[:, None] * background
    depth = (weights * t).sum(-1)
    return rgb, depth, acc, weights


def sample_pdf(bins: torch.Tensor, weights: torch.Tensor, n: int, *, deterministic: bool = False, generator=None) -> torch.Tensor:
    """Inverse-transform sampling of a piecewise-constant PDF (Sec. 5.2).

    bins: (B, K + 1) edges; weights: (B, K) non-negative. The PDF is w_hat_i = w_i / sum_j w_j on
    [bins_i, bins_{i+1}]; u ~ U[0, 1) (or evenly spaced when ``deterministic``) are mapped through the
    inverse of the piecewise-linear CDF. Returns (B, n) samples.
    """
    weights = weights + 1e-5  # no zero-probability ray
    pdf = weights / weights.sum(-1, keepdim=True)
    cdf = torch.cat([torch.zeros_like(pdf[:, :1]), torch.cumsum(pdf, -1)], -1).clamp(max=1.0)  # (B, K + 1)
    if deterministic:
        u = torch.linspace(0.0, 1.0, n, device=bins.device).expand(bins.shape[0], n).contiguous()
    else:
        u = torch.rand(bins.shape[0], n, generator=generator, device=bins.device)
    index = torch.searchsorted(cdf, u, right=True)
    below = (index - 1).clamp(0, cdf.shape[-1] - 1)
    above = index.clamp(max=cdf.shape[-1] - 1)
    cdf_lo, cdf_hi = cdf.gather(-1, below), cdf.gather(-1, above)
    bin_lo, bin_hi = bins.gather(-1, below), bins.gather(-1, above)
    span = cdf_hi - cdf_lo
    fraction = torch.where(span < 1e-5, torch.zeros_like(u), (u - cdf_lo) / span.clamp(min=1e-5))
    return bin_lo + fraction * (bin_hi - bin_lo)


def ray_aabb(origins: torch.Tensor, directions: torch.Tensor, aabb_min: torch.Tensor, aabb_max: torch.Tensor):
    """Slab test: entry and exit t of each ray in the box ((B,) each; exit <= entry when it misses)."""
    inv = 1.0 / torch.where(directions.abs() < 1e-9, torch.full_like(directions, 1e-9), directions)
    t_a, t_b = (aabb_min - origins) * inv, (aabb_max - origins) * inv
    return torch.minimum(t_a, t_b).amax(-1), torch.maximum(t_a, t_b).amin(-1)


# ---------------------------------------------------------------------------------------------
# The model
# ---------------------------------------------------------------------------------------------


class NeRF(Generator, Renderer):
    """A neural radiance field of one scene: a Generator (``sample`` renders random views) and a Renderer.

    ``training_step`` takes a batch of rays ``{"origins": (B, 3), "directions": (B, 3), "rgb": (B, 3)}``.
    """

    family = "nerf"
    config_class = NeRFConfig

    def __init__(self, config: NeRFConfig):
        super().__init__(config)
        if config.variant == "paper":
            self.coarse = PaperField(config)
            self.fine = PaperField(config) if config.n_fine > 0 else None
        else:
            self.field = HashField(config)
            r = config.occupancy_resolution
            # density per cell (EMA-max of the field's density); -1 = never evaluated, counts as occupied
            self.register_buffer("occupancy_density", torch.full((r, r, r), -1.0))
            self.register_buffer("step_count", torch.zeros((), dtype=torch.long))
        aabb = torch.tensor(config.aabb, dtype=torch.float32)
        self.register_buffer("aabb_min", aabb[:3], persistent=False)
        self.register_buffer("aabb_max", aabb[3:], persistent=False)

    @property
    def background_value(self) -> float:
        return 1.0 if self.config.background == "white" else 0.0

    # -- rays -> colours ------------------------------------------------------------------------

    def render_rays(self, origins: torch.Tensor, directions: torch.Tensor, *, perturb: bool = False,
                    generator: Optional[torch.Generator] = None) -> dict[str, torch.Tensor]:
        """Render (B, 3) rays -> {"rgb": (B, 3), "depth": (B,), "acc": (B,)} (+ "rgb_coarse" for the paper)."""
        if self.config.variant == "paper":
            return self._render_paper(origins, directions, perturb, generator)
        return self._render_fast(origins, directions, perturb, generator)

    def _render_paper(self, origins, directions, perturb, generator):
        c = self.config
        batch = origins.shape[0]
        norm = directions.norm(dim=-1, keepdim=True)
        # 1. coarse: N_c stratified samples
        t_coarse = stratified_samples(c.near, c.far, c.n_coarse, batch, perturb=perturb, generator=generator, device=origins.device)
        out = self._shade(self.coarse, origins, directions, norm, t_coarse)
        result = {"rgb_coarse": out[0], "depth_coarse": out[1]}
        if self.fine is None:
            return {**result, "rgb": out[0], "depth": out[1], "acc": out[2]}
        # 2. fine: N_f samples from the coarse weights' PDF, then the fine network on all N_c + N_f
        mids = 0.5 * (t_coarse[:, 1:] + t_coarse[:, :-1])
        t_fine = sample_pdf(mids, out[3][:, 1:-1].detach(), c.n_fine, deterministic=not perturb, generator=generator)
        t_all, _ = torch.sort(torch.cat([t_coarse, t_fine], -1), -1)
        rgb, depth, acc, _ = self._shade(self.fine, origins, directions, norm, t_all)
        return {**result, "rgb": rgb, "depth": depth, "acc": acc}

    def _shade(self, field, origins, directions, norm, t):
        x = origins[:, None, :] + t[..., None] * directions[:, None, :]
        d = directions[:, None, :].expand_as(x)
        sigma, color = field(x.reshape(-1, 3), d.reshape(-1, 3))
        # delta_i = t_{i+1} - t_i; the last interval is unbounded (1e10, as in the paper's code)
        delta = torch.cat([t[:, 1:] - t[:, :-1], torch.full_like(t[:, :1], 1e10)], -1) * norm
        return composite(sigma.view_as(t), color.view(*t.shape, 3), t, delta, self.background_value)

    def _occupied(self, x: torch.Tensor) -> torch.Tensor:
        grid = self.occupancy_density
        r = grid.shape[0]
        cell = ((x - self.aabb_min) / (self.aabb_max - self.aabb_min) * r).long().clamp(0, r - 1)
        known = grid[grid >= 0]
        threshold = min(self.config.occupancy_threshold, float(known.mean())) if known.numel() else 0.0
        occupied = (grid < 0) | (grid > threshold)
        return occupied[cell[..., 0], cell[..., 1], cell[..., 2]]

    def _render_fast(self, origins, directions, perturb, generator):
        c = self.config
        batch, n = origins.shape[0], c.n_samples
        norm = directions.norm(dim=-1, keepdim=True)
        # 1. march n uniform samples through the part of [near, far] inside the aabb
        t_in, t_out = ray_aabb(origins, directions, self.aabb_min, self.aabb_max)
        t_in, t_out = t_in.clamp(min=c.near)[:, None], t_out.clamp(max=c.far)[:, None]
        hit = (t_out > t_in).squeeze(-1)
        t_out = torch.maximum(t_out, t_in)
        t = stratified_samples(t_in, t_out, n, batch, perturb=perturb, generator=generator, device=origins.device)
        delta = ((t_out - t_in) / n * norm).expand(batch, n)
        x = (origins[:, None, :] + t[..., None] * directions[:, None, :]).reshape(-1, 3)
        d = directions[:, None, :].expand(batch, n, 3).reshape(-1, 3)
        # 2. skip empty space: only samples in occupied cells are evaluated
        with torch.no_grad():
            keep = (self._occupied(x).view(batch, n) & hit[:, None]).reshape(-1)
        index = keep.nonzero().squeeze(-1)
        sigma_flat = torch.zeros(batch * n, device=x.device, dtype=x.dtype)
        # 3. early ray termination: a density-only pass finds where T_i falls below the threshold
        if c.early_stop_transmittance > 0 and index.numel():
            with torch.no_grad():
                sigma_probe, h_probe = self.field.density(x[index])
                tau = sigma_flat.index_copy(0, index, sigma_probe).view(batch, n) * delta
                transmittance = torch.exp(-(torch.cumsum(tau, -1) - tau)).reshape(-1)
                alive = transmittance[index] > c.early_stop_transmittance
            if not torch.is_grad_enabled():  # inference: reuse the probe, shade the live samples only
                index, sigma_k, h = index[alive], sigma_probe[alive], h_probe[alive]
            else:
                index = index[alive]
                sigma_k, h = self.field.density(x[index])
        else:
            sigma_k, h = self.field.density(x[index])
        color_k = self.field.color(h, d[index])
        sigma = sigma_flat.index_copy(0, index, sigma_k).view(batch, n)
        color = torch.zeros(batch * n, 3, device=x.device, dtype=x.dtype).index_copy(0, index, color_k).view(batch, n, 3)
        rgb, depth, acc, _ = composite(sigma, color, t, delta, self.background_value)
        return {"rgb": rgb, "depth": depth, "acc": acc, "samples_per_ray": torch.tensor(index.numel() / batch)}

    @torch.no_grad()
    def update_occupancy(self, *, all_cells: bool = True, generator: Optional[torch.Generator] = None) -> None:
        """Re-evaluate the field's density at a jittered point in each cell (or a random quarter of the
        cells): occupancy_density <- max(decay * old, new) (instant-ngp, Sec. 4 / App. E.2)."""
        grid = self.occupancy_density
        r = grid.shape[0]
        cells = torch.stack(torch.meshgrid(*[torch.arange(r, device=grid.device)] * 3, indexing="ij"), -1).view(-1, 3)
        if not all_cells:
            cells = cells[torch.randperm(cells.shape[0], generator=generator, device=grid.device)[: cells.shape[0] // 4]]
        jitter = torch.rand(cells.shape, generator=generator, device=grid.device)
        x = self.aabb_min + (cells + jitter) / r * (self.aabb_max - self.aabb_min)
        density = torch.cat([self.field.density(chunk)[0] for chunk in x.split(65536)])
        flat = grid.view(-1)
        index = cells[:, 0] * r * r + cells[:, 1] * r + cells[:, 2]
        updated = torch.where(flat < 0, flat, flat * self.config.occupancy_decay)  # unknown cells stay -1
        updated[index] = torch.maximum(updated[index].clamp(min=0.0), density.clamp(max=1e4))
        flat.copy_(updated)

    def occupancy_fraction(self) -> float:
        """Fraction of the occupancy grid's cells marked occupied."""
        grid = self.occupancy_density
        known = grid[grid >= 0]
        threshold = min(self.config.occupancy_threshold, float(known.mean())) if known.numel() else 0.0
        return float(((grid < 0) | (grid > threshold)).float().mean())

    # -- Generator -------------------------------------------------------------------------------

    def training_step(self, batch: dict[str, torch.Tensor], *, optimizer: str = "main") -> dict[str, torch.Tensor]:
        """Photometric loss on a batch of rays: ||C_hat_c - C||^2 + ||C_hat_f - C||^2 (paper, Eq. 6;
        mean over rays). The fast variant updates its occupancy grid every ``occupancy_update_every`` calls."""
        c = self.config
        if c.variant == "fast" and self.training:
            self.step_count += 1
            step = int(self.step_count)
            if step % c.occupancy_update_every == 0:
                self.update_occupancy(all_cells=step <= c.occupancy_warmup)
        out = self.render_rays(batch["origins"], batch["directions"], perturb=self.training)
        target = batch["rgb"]
        loss_fine = F.mse_loss(out["rgb"], target)
        losses = {"loss_fine": loss_fine, "psnr": -10.0 * torch.log10(loss_fine.detach().clamp(min=1e-10))}
        if "rgb_coarse" in out and self.fine is not None:
            losses["loss_coarse"] = F.mse_loss(out["rgb_coarse"], target)
            losses["loss"] = losses["loss_coarse"] + loss_fine
        else:
            losses["loss"] = loss_fine
        if "samples_per_ray" in out:
            losses["samples_per_ray"] = out["samples_per_ray"].to(loss_fine.device)
        return losses

    def configure_optimizers(self, train: TrainConfig) -> dict[str, torch.optim.Optimizer]:
        """Adam (paper: betas (0.9, 0.999), eps 1e-7; instant-ngp: eps 1e-15 for the hash tables)."""
        eps = 1e-15 if self.config.variant == "fast" else 1e-7
        return {"main": torch.optim.Adam(self.parameters(), lr=train.lr, betas=train.betas, eps=eps, weight_decay=train.weight_decay)}

    def example_batch(self, batch_size: int, *, generator: Optional[torch.Generator] = None) -> dict[str, torch.Tensor]:
        """Random rays from the default orbit towards the origin, with random target colours."""
        angles = torch.rand(batch_size, generator=generator) * 2 * math.pi
        c = self.config
        elevation = math.radians(c.orbit_elevation)
        origins = c.orbit_radius * torch.stack(
            [math.cos(elevation) * torch.cos(angles), math.cos(elevation) * torch.sin(angles), torch.full_like(angles, math.sin(elevation))], -1)
        directions = -origins / origins.norm(dim=-1, keepdim=True) + 0.1 * torch.randn(batch_size, 3, generator=generator)
        rgb = torch.rand(batch_size, 3, generator=generator)
        return {"origins": origins, "directions": directions, "rgb": rgb}

    sampler_options = {
        "width": "image width in pixels (default: the config's; the height follows the aspect ratio)",
        "height": "image height in pixels (default: the config's)",
        "chunk": "rays rendered per batch (default 8192; lower it to save memory)",
    }

    @torch.no_grad()
    def sample(self, n: int, *, generator: GeneratorArg = None, **options: Any) -> torch.Tensor:
        """Render ``n`` views of the scene from random azimuths on the default orbit (radius and
        elevation from the config) at the default intrinsics: ``(n, 3, H, W)`` in [0, 1].
        ``generator`` (any device, or a list of n) draws the azimuths; rendering has no noise."""
        self.check_sampler_options(options)
        width, height, chunk = options.get("width"), options.get("height"), int(options.get("chunk", 8192))
        azimuth = rand_tensor((n,), generator=generator, dtype=torch.float32) * 360.0
        poses = torch.stack([_orbit_pose(float(a), self.config.orbit_radius, self.config.orbit_elevation) for a in azimuth])
        cameras = self.default_cameras(poses, width=width, height=height)
        views = [self.render(cameras[i : i + 1], chunk=chunk)["rgb"]
                 for i in progress_bar(range(n), desc="sample views", unit="view", disable=n < 2)]
        return torch.cat(views).permute(0, 3, 1, 2).contiguous()

    # -- Renderer --------------------------------------------------------------------------------

    def default_cameras(self, camera_to_world: torch.Tensor, *, width: Optional[int] = None, height: Optional[int] = None) -> Cameras:
        """Cameras at the config's default intrinsics (rescaled to ``width``/``height`` if given)."""
        c = self.config
        cameras = Cameras(camera_to_world, c.focal, c.width, c.height)
        if width or height:
            w = width or round(c.width * height / c.height)
            cameras = cameras.resized(w, height or round(c.height * w / c.width))
        return cameras

    def turntable_cameras(self, frames: int, *, width: Optional[int] = None, height: Optional[int] = None) -> Cameras:
        """``frames`` cameras around the default orbit."""
        poses = orbit_poses(frames, radius=self.config.orbit_radius, elevation_deg=self.config.orbit_elevation)
        return self.default_cameras(poses, width=width, height=height)

    @torch.no_grad()
    def render(self, cameras: Cameras, *, chunk: int = 8192) -> dict[str, torch.Tensor]:
        """Render every camera (no sample jitter): {"rgb": (N, H, W, 3) in [0, 1], "depth": (N, H, W)}
        (depth: expected t, the distance along the camera axis), plus "acc" (N, H, W) opacity."""
        origins, directions = cameras.generate_rays()
        shape = origins.shape[:-1]
        device = self.aabb_min.device
        origins, directions = origins.reshape(-1, 3).to(device), directions.reshape(-1, 3).to(device)
        parts = [self.render_rays(o, d, perturb=False) for o, d in zip(origins.split(chunk), directions.split(chunk))]
        rgb = torch.cat([p["rgb"] for p in parts]).clamp(0.0, 1.0).view(*shape, 3)
        depth = torch.cat([p["depth"] for p in parts]).view(shape)
        acc = torch.cat([p["acc"] for p in parts]).view(shape)
        return {"rgb": rgb, "depth": depth, "acc": acc}


def _orbit_pose(azimuth_deg: float, radius: float, elevation_deg: float) -> torch.Tensor:
    """The pose of ``orbit_poses`` at an arbitrary azimuth: its first pose rotated about the z axis."""
    pose = orbit_poses(1, radius=radius, elevation_deg=elevation_deg)[0]
    a = math.radians(azimuth_deg)
    rotation = torch.eye(4)
    rotation[:2, :2] = torch.tensor([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
    return rotation @ pose
