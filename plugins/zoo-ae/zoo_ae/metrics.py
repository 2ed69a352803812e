"""Metrics of the autoencoder families, as in Hinton & Salakhutdinov (2006) and Rifai et al. (2011).

Each is ``fn(model, *, data, out_dir, **options) -> dict[str, float]``; ``data`` is the MNIST folder
(None: the usual location), evaluated on ``split="test"`` (10,000 images) unless ``limit`` is given.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator, Optional

import torch

from .models import squared_error_per_image


def _test_images(model, data, split: str, limit: Optional[int], batch_size: int) -> Iterator[torch.Tensor]:
    from zoo_core.datasets import load_mnist

    from zoo_core.progress import progress_bar

    images = load_mnist(data, split=split, limit=limit).tensors()
    for start in progress_bar(range(0, images.shape[0], batch_size), desc=f"{split} images", unit="batch"):
        yield images[start : start + batch_size].to(model.device, model.dtype)


@torch.no_grad()
def reconstruction_error(model, *, data=None, out_dir=None, split: str = "test", limit: Optional[int] = None,
                         batch_size: int = 500, n_show: int = 10, **_) -> dict[str, float]:
    """sum_pixels (x - x')^2 averaged over the test images (the paper's 3.00 / 8.01 / 13.87 table).

    Writes ``recon.png``: the first ``n_show`` test images (top row) over their reconstructions."""
    total, count, shown = 0.0, 0, None
    for x in _test_images(model, data, split, limit, batch_size):
        x_rec = model.reconstruct(x).clamp(0, 1)
        total += float(squared_error_per_image(x.double(), x_rec.double()).sum())
        count += x.shape[0]
        if shown is None:
            shown = torch.cat([x[:n_show], x_rec[:n_show]]).float().cpu()
    if out_dir is not None and shown is not None:
        from zoo_core.images import save_grid

        save_grid(shown, Path(out_dir) / "recon.png", nrow=shown.shape[0] // 2)
    return {"recon_error": total / count, "images": float(count)}


def pca_reconstruction_error(train: torch.Tensor, test: torch.Tensor, k: int) -> float:
    """PCA with k components fitted on ``train`` (centred, float64, torch.linalg.eigh of the covariance):
    mean over ``test`` of sum_pixels (x - x_hat)^2, x_hat = mu + U_k U_k^T (x - mu)."""
    train, test = train.flatten(1).double(), test.flatten(1).double()
    mu = train.mean(0)
    centred = train - mu
    covariance = centred.T @ centred / (train.shape[0] - 1)
    _, eigenvectors = torch.linalg.eigh(covariance)  # ascending eigenvalues
    components = eigenvectors[:, -k:]
    residual = (test - mu) - (test - mu) @ components @ components.T
    return float(residual.pow(2).sum(1).mean())


def pca_baseline(model=None, *, data=None, out_dir=None, components: Optional[int] = None, limit: Optional[int] = None,
                 **_) -> dict[str, float]:
    """The paper's PCA row: PCA with ``components`` (default: the model's code_dim) fitted on the
    training images, reconstruction error on the test images."""
    from zoo_core.datasets import load_mnist

    k = components or (model.config.code_dim if model is not None else 30)
    train = load_mnist(data, split="train").tensors()
    test = load_mnist(data, split="test", limit=limit).tensors()
    return {"pca_recon_error": pca_reconstruction_error(train, test, k), "components": float(k)}


@torch.no_grad()
def sparsity(model, *, data=None, out_dir=None, split: str = "test", limit: Optional[int] = None, batch_size: int = 500,
             active_threshold: float = 0.5, **_) -> dict[str, float]:
    """Mean code activation, the fraction of code units with h_j > ``active_threshold`` per image
    (averaged over images), the fraction of units never active, and the reconstruction error."""
    activation, active, error, count, ever_active = 0.0, 0.0, 0.0, 0, None
    for x in _test_images(model, data, split, limit, batch_size):
        h = model.encode(x)
        on = (h > active_threshold).double()
        activation += float(h.double().mean(1).sum())
        active += float(on.mean(1).sum())
        ever_active = on.amax(0) if ever_active is None else torch.maximum(ever_active, on.amax(0))
        error += float(squared_error_per_image(x.double(), model.decode(h).clamp(0, 1).double()).sum())
        count += x.shape[0]
    return {
        "mean_activation": activation / count,
        "fraction_active": active / count,
        "dead_units": float(1.0 - ever_active.mean()),
        "recon_error": error / count,
    }


def contractive(model, *, data=None, out_dir=None, split: str = "test", limit: Optional[int] = None, batch_size: int = 100,
                noise_std: float = 0.1, seed: int = 0, **_) -> dict[str, float]:
    """Mean ||J_f(x)||_F^2 over the test images (exact: torch.func, or the closed form for one sigmoid
    layer), and the reconstruction error of x + N(0, noise_std^2) against the clean x."""
    from .models import jacobian_frobenius_sq

    generator = torch.Generator().manual_seed(seed)
    jacobian, noisy_error, code_shift, count = 0.0, 0.0, 0.0, 0
    for x in _test_images(model, data, split, limit, batch_size):
        with torch.enable_grad():
            frobenius = (model.jacobian_frobenius_sq(x) if hasattr(model, "jacobian_frobenius_sq")
                         else jacobian_frobenius_sq(model.encoder, x))
        jacobian += float(frobenius.detach().double().sum())
        with torch.no_grad():
            noise = noise_std * torch.randn(x.shape, generator=generator).to(x)
            x_noisy = x + noise
            noisy_error += float(squared_error_per_image(x.double(), model.reconstruct(x_noisy).clamp(0, 1).double()).sum())
            code_shift += float((model.encode(x_noisy) - model.encode(x)).double().pow(2).sum(1).sum())
        count += x.shape[0]
    return {
        "jacobian_frobenius_sq": jacobian / count,
        "noisy_recon_error": noisy_error / count,
        "code_shift_sq": code_shift / count,
        "noise_std": noise_std,
    }
