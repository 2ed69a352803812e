"""DDPM metrics on held-out images: L_simple and the variational bound in bits per dimension.

The bound (Ho et al. 2020, eq. 5) is L = L_T + sum_{t>=2} L_{t-1} + L_0, with L_{t-1} the KL between
q(x_{t-1}|x_t, x_0) and p_theta(x_{t-1}|x_t), and L_0 the discretized Gaussian decoder. Evaluating all T
terms for every image costs T network passes. Here L_T is exact; L_0 and the terms of the first
``exact_small_t`` timesteps (where most of the bound sits: ~59% of it for t <= 10 on CIFAR-10) are
evaluated for every image (one x_t each); the rest of the sum is estimated without bias by
stratified sampling: the remaining timesteps are cut into ``vlb_strata`` equal strata, one t is
drawn per stratum per image, and its term is weighted by the stratum's width. Every random draw
(t, eps) comes from the metric's seeded generator, so the value is the same in every process.
The standard error is that of the mean over images of each image's estimate (data and Monte Carlo
noise together).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Optional

import torch
import torch.nn.functional as F

from .scheduler import discretized_gaussian_log_likelihood, normal_kl


def held_out_images(model, data, limit: Optional[int], cifar_start: int = 9000) -> torch.Tensor:
    """The held-out images in [0, 1]: CIFAR-10 npz images from ``cifar_start`` on (the catalog model
    trains on the first 9,000), or the MNIST test split for one-channel models."""
    from zoo_core.datasets import load_cifar10_npz, load_mnist

    if model.config.image_channels == 3:
        images = load_cifar10_npz(data).tensors()[cifar_start:]
    else:
        images = load_mnist(data, split="test").tensors()
    return images[:limit] if limit else images


def vlb_terms(model, x0: torch.Tensor, t: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    """L_{t-1} for t >= 1 (0-indexed) and L_0 for t = 0, per image, in nats. x0 in [-1, 1]."""
    s = model.scheduler
    x_t = s.add_noise(x0, eps, t)
    eps_pred = model.eps_theta(x_t, t)
    shape = (-1,) + (1,) * (x0.ndim - 1)
    mean = s.model_mean(eps_pred, t, x_t)
    log_var = (s.posterior_log_variance_clipped if s.variance == "beta_tilde" else torch.log(s.model_variance))[t].view(shape)
    true_mean, _ = s.posterior(x0, x_t, t)
    true_log_var = s.posterior_log_variance_clipped[t].view(shape)
    kl = normal_kl(true_mean, true_log_var, mean, log_var).flatten(1).sum(1)
    decoder_nll = -discretized_gaussian_log_likelihood(x0, mean, 0.5 * log_var).flatten(1).sum(1)
    return torch.where(t == 0, decoder_nll, kl)


def prior_term(model, x0: torch.Tensor) -> torch.Tensor:
    """L_T = KL(q(x_T|x_0) || N(0, I)) per image, in nats."""
    s = model.scheduler
    alpha_bar = s.alpha_bars[-1]
    mean, log_var = alpha_bar.sqrt() * x0, torch.log(1 - alpha_bar).expand_as(x0)
    return normal_kl(mean, log_var, torch.zeros_like(x0), torch.zeros_like(x0)).flatten(1).sum(1)


def ddpm_loss(model, *, data=None, out_dir: Optional[Path] = None, limit: Optional[int] = 1000, vlb_strata: int = 8,
              exact_small_t: int = 10, batch_size: int = 100, seed: int = 0, **_) -> dict[str, float]:
    """Held-out L_simple (t uniform) and the bound in bits/dim with its standard error."""
    generator = torch.Generator().manual_seed(seed)
    images = held_out_images(model, data, limit)
    T = model.config.num_train_timesteps
    exact = min(max(exact_small_t, 0), T - 1)

    def noise(x0):
        return torch.randn(x0.shape, generator=generator).to(model.device, model.dtype)

    def at(t: int, x0):
        return torch.full((x0.shape[0],), t, dtype=torch.long, device=model.device)

    mse_total, per_image = 0.0, []
    model.eval()
    with torch.no_grad():
        for chunk in images.split(batch_size):
            x0 = (chunk * 2 - 1).to(model.device, model.dtype)
            t = torch.randint(0, T, (x0.shape[0],), generator=generator).to(model.device)
            eps = noise(x0)
            mse_total += float(F.mse_loss(model.eps_theta(model.scheduler.add_noise(x0, eps, t), t), eps, reduction="sum"))
            # L_T + L_0 + every term with 1 <= t <= exact (0-indexed), for every image
            terms = prior_term(model, x0).double()
            for t in range(0, exact + 1):
                terms += vlb_terms(model, x0, at(t, x0), noise(x0)).double()
            # the rest, stratified: one t per stratum per image, weighted by the stratum's width
            edges = torch.linspace(exact + 1, T, vlb_strata + 1).long().tolist()
            for low, high in zip(edges[:-1], edges[1:]):
                if high <= low:
                    continue
                t = torch.randint(low, high, (x0.shape[0],), generator=generator).to(model.device)
                terms += (high - low) * vlb_terms(model, x0, t, noise(x0)).double()
            per_image.append(terms.cpu())
    dims = images[0].numel()
    bits = torch.cat(per_image) / (dims * math.log(2))
    n = bits.numel()
    return {"l_simple": mse_total / (n * dims), "vlb_bits_per_dim": float(bits.mean()),
            "vlb_bits_per_dim_stderr": float(bits.std() / math.sqrt(n)) if n > 1 else float("nan")}
