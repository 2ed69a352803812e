"""fid-mnist: the Fréchet distance (Heusel et al. 2017) between Gaussians fitted to the penultimate
features of the shipped MNIST classifier on model samples and on the 10,000 MNIST test images,

    d^2 = ||mu_1 - mu_2||^2 + tr(S_1) + tr(S_2) - 2 tr((S_1 S_2)^(1/2)).

The classifier is this package's, not Inception: the numbers are on their own scale and NOT
comparable with the Inception FIDs of papers. Lower is better; 10,000 real training images score
the floor (``fid_mnist_of_images`` on them), which no model should be expected to beat.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any, Optional

import torch

FID_OPTIONS = ("num_samples", "seed", "batch_size")


def _sqrt_psd(matrix: torch.Tensor) -> torch.Tensor:
    """The symmetric square root of a symmetric positive semi-definite matrix (eigenvalues below 0,
    rounding errors, set to 0)."""
    eigenvalues, eigenvectors = torch.linalg.eigh(matrix)
    return (eigenvectors * eigenvalues.clamp_min(0).sqrt()) @ eigenvectors.T


def trace_sqrt_product(sigma_1: torch.Tensor, sigma_2: torch.Tensor) -> torch.Tensor:
    """tr((S_1 S_2)^(1/2)) for covariance matrices, in float64.

    S_1 S_2 is not symmetric, but it is similar to the symmetric PSD matrix S_1^(1/2) S_2 S_1^(1/2)
    (same eigenvalues), whose square root's trace is the sum of the square roots of its eigenvalues:
    two symmetric eigendecompositions, no general (Schur) matrix square root and its complex parts.
    """
    root_1 = _sqrt_psd(sigma_1.double())
    middle = root_1 @ sigma_2.double() @ root_1
    return torch.linalg.eigvalsh(0.5 * (middle + middle.T)).clamp_min(0).sqrt().sum()


def frechet_distance(mu_1: torch.Tensor, sigma_1: torch.Tensor, mu_2: torch.Tensor, sigma_2: torch.Tensor) -> float:
    """Squared Fréchet (2-Wasserstein) distance between N(mu_1, S_1) and N(mu_2, S_2), in float64."""
    mu_1, mu_2, sigma_1, sigma_2 = (t.double() for t in (mu_1, mu_2, sigma_1, sigma_2))
    if mu_1.shape != mu_2.shape or sigma_1.shape != sigma_2.shape or sigma_1.shape != (len(mu_1), len(mu_1)):
        raise ValueError(f"shapes do not match: mu {tuple(mu_1.shape)}, {tuple(mu_2.shape)}; "
                         f"sigma {tuple(sigma_1.shape)}, {tuple(sigma_2.shape)}")
    distance = (mu_1 - mu_2).pow(2).sum() + sigma_1.trace() + sigma_2.trace() - 2 * trace_sqrt_product(sigma_1, sigma_2)
    return float(distance.clamp_min(0))


def gaussian_of(features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and unbiased covariance (N - 1) of the rows of ``features``, in float64."""
    features = features.double()
    return features.mean(0), torch.cov(features.T)


def classifier_features(images: torch.Tensor, batch_size: int = 1000) -> torch.Tensor:
    """Penultimate features (N, 128) of the shipped classifier for images (N, 1, 28, 28) in [0, 1]."""
    if images.dim() != 4 or tuple(images.shape[1:]) != (1, 28, 28):
        raise ValueError(f"fid-mnist needs images of shape (N, 1, 28, 28) in [0, 1], got {tuple(images.shape)}")
    model = _classifier()
    with torch.no_grad():
        return torch.cat([model.features(chunk.float()) for chunk in images.split(batch_size)])


@lru_cache(maxsize=1)
def _classifier():
    from .classifier import load_classifier

    return load_classifier()


def mnist_test_features(data=None) -> torch.Tensor:
    """The classifier's features of the 10,000 MNIST test images in ``data`` (computed once per process)."""
    return _test_features(None if data is None else str(Path(data).resolve()))


@lru_cache(maxsize=2)
def _test_features(data: Optional[str]) -> torch.Tensor:
    from zoo_core.datasets import load_mnist

    return classifier_features(load_mnist(data, split="test").tensors())


def fid_mnist_of_images(images: torch.Tensor, *, data=None) -> float:
    """fid-mnist of any images (N, 1, 28, 28) in [0, 1] against the 10,000 MNIST test images in ``data``."""
    mu, sigma = gaussian_of(classifier_features(images.clamp(0, 1)))
    mu_test, sigma_test = gaussian_of(mnist_test_features(data))
    return frechet_distance(mu, sigma, mu_test, sigma_test)


def fid_mnist(model, *, data=None, out_dir: Optional[Path] = None, num_samples: int = 10000, seed: int = 0,
              batch_size: int = 1000, **sampler_options: Any) -> dict[str, float]:
    """The ``fid-mnist`` metric: ``num_samples`` samples drawn with ``seed`` (other options go to
    ``model.sample``, e.g. ``sampler=ddim``) against the MNIST test images in ``data``."""
    from zoo_core.metrics import draw_samples

    if num_samples < 2:
        from zoo_core.errors import InvalidArgumentError

        raise InvalidArgumentError("fid-mnist needs num_samples >= 2 to fit a covariance (10,000 is the protocol)")
    samples = draw_samples(model, num_samples, seed=seed, batch_size=batch_size, metric="fid-mnist",
                           metric_options=FID_OPTIONS, **sampler_options)
    if tuple(samples.shape[1:]) != (1, 28, 28):
        from zoo_core.errors import DataMismatchError

        raise DataMismatchError(f"fid-mnist compares MNIST-shaped samples (1x28x28); this {model.family} model samples "
                         f"{'x'.join(map(str, samples.shape[1:]))}")
    if out_dir is not None:
        from zoo_core.images import save_grid

        save_grid(samples[:64], Path(out_dir) / "fid-mnist-samples.png")
    return {"fid_mnist": fid_mnist_of_images(samples, data=data)}
