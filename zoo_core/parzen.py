"""Parzen-window log-likelihood (Goodfellow et al. 2014, following Breuleux et al. 2011), for any
family whose samples have the shape of a registered dataset's images (MNIST by default).

Fit a Gaussian kernel density estimate with bandwidth sigma to samples s_1..s_N of the model and
report the mean over test images x of

    log p_hat(x) = logsumexp_i(-||x - s_i||^2 / (2 sigma^2)) - log N - d/2 log(2 pi sigma^2),

with sigma chosen (from a grid) to maximize the same quantity on held-out training images, and the
standard error of that mean over the test images. Pixels are in [0, 1], as in the paper (Table 1,
MNIST: 225 +- 2 nats for the GAN). Real training images in place of samples give the ceiling
(``parzen_of_images``; 10,000 MNIST training images score ~243, Theis et al. 2016 report 243).

Known weaknesses (Theis, van den Oord & Bethge 2016, "A note on the evaluation of generative
models"): in 784 dimensions a KDE with 10,000 centres is a very poor density estimate; the number
has high variance and a large bias that depend on N; it correlates poorly with sample quality (a
KDE on k-means centroids of the training set, or on a few hundred training images, can beat good
models); and it says nothing about the model's actual likelihood. Report it only for comparison
with the 2014 paper; fid-mnist ranks samples better.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Optional, Sequence

import torch

from .progress import progress_bar

PARZEN_OPTIONS = ("dataset", "num_samples", "num_validation", "test_limit", "sigmas", "seed", "batch_size")
DEFAULT_SIGMAS = tuple(float(s) for s in torch.logspace(-1.3, -0.3, 21))  # 0.05 .. 0.5


def parzen_log_densities(x: torch.Tensor, centres: torch.Tensor, sigmas: Sequence[float],
                         batch_size: int = 500) -> torch.Tensor:
    """Parzen log-density (nats) of each row of ``x`` under Gaussian kernels at ``centres``, for each sigma.

    x: (M, d), centres: (N, d). Returns (len(sigmas), M), float64. Squared distances are computed once
    per batch of rows and shared by every sigma.
    """
    sigmas_t = torch.tensor(sigmas, dtype=torch.float64)
    n, d = centres.shape
    centre_norms = centres.pow(2).sum(1)
    out = []
    for chunk in progress_bar(x.split(batch_size), desc="Parzen", unit="batch"):
        squared = (chunk.pow(2).sum(1, keepdim=True) - 2 * chunk @ centres.T + centre_norms).clamp_min(0).double()
        out.append(torch.stack([
            torch.logsumexp(-squared / (2 * sigma**2), dim=1) - math.log(n) - d / 2 * torch.log(2 * math.pi * sigma**2)
            for sigma in sigmas_t
        ]))
    return torch.cat(out, dim=1)


def parzen_log_likelihood(x: torch.Tensor, centres: torch.Tensor, sigmas: Sequence[float], batch_size: int = 500) -> torch.Tensor:
    """Mean Parzen log-density of the rows of ``x`` under Gaussian kernels at ``centres``, for each sigma.

    x: (M, d), centres: (N, d). Returns (len(sigmas),) in nats.
    """
    return parzen_log_densities(x, centres, sigmas, batch_size).mean(dim=1)


def dataset_images(dataset: str, data, split: str, start: int = 0, stop: Optional[int] = None) -> torch.Tensor:
    """Images ``start:stop`` of a registered dataset's split as one float tensor (N, C, H, W)."""
    from .plugins import get_dataset

    items = get_dataset(dataset).load(data, split=split)
    if callable(getattr(items, "tensors", None)):
        return items.tensors()[start:stop]
    images = [items[i] for i in range(len(items))[start:stop]]
    return torch.stack([image if isinstance(image, torch.Tensor) else image[0] for image in images])  # (image, label)


def parzen_of_images(centres: torch.Tensor, *, data=None, dataset: str = "mnist", num_validation: int = 1000,
                     test_limit: Optional[int] = None, sigmas: Sequence[float] = DEFAULT_SIGMAS) -> dict[str, float]:
    """The protocol on given centres (N, C, H, W) in [0, 1]: sigma chosen on the last ``num_validation``
    training images of ``dataset``, then the mean log-density of its test images and its standard error."""
    validation = dataset_images(dataset, data, "train", -num_validation).flatten(1)
    test = dataset_images(dataset, data, "test", 0, test_limit).flatten(1)
    centres = centres.float().flatten(1)
    if centres.shape[1] != test.shape[1]:
        from .errors import DataMismatchError

        raise DataMismatchError(
            f"the samples have {centres.shape[1]} values each, the {dataset} images {test.shape[1]}: the Parzen metric "
            f"needs samples of the {dataset} images' shape (--option dataset=NAME picks another registered dataset)")
    validation_ll = parzen_log_likelihood(validation, centres, sigmas)
    best = int(validation_ll.argmax())
    if best in (0, len(sigmas) - 1) and len(sigmas) > 1:
        import warnings

        warnings.warn(f"the best Parzen sigma {sigmas[best]:.3g} is at the end of the grid; widen the grid (option sigmas)")
    sigma = sigmas[best]
    per_image = parzen_log_densities(test, centres, [sigma])[0]
    return {
        "parzen_log_likelihood": float(per_image.mean()),
        "parzen_log_likelihood_stderr": float(per_image.std() / math.sqrt(len(per_image))),
        "parzen_sigma": float(sigma),
        "parzen_validation_log_likelihood": float(validation_ll[best]),
    }


def parzen(model, *, data=None, out_dir: Optional[Path] = None, dataset: str = "mnist", num_samples: int = 10000,
           num_validation: int = 1000, test_limit: Optional[int] = None, sigmas: Sequence[float] = DEFAULT_SIGMAS,
           seed: int = 0, batch_size: int = 1000, **sampler_options: Any) -> dict[str, float]:
    """The ``parzen`` metric: Parzen-window log-likelihood of the test images of ``dataset`` (a
    registered dataset; default mnist) under ``num_samples`` samples of the model, drawn with ``seed``.

    sigma is chosen on the last ``num_validation`` training images (the catalog GAN trains on the
    first 50,000 only). Other options go to ``model.sample`` (e.g. ``sampler=ddim``). Returns nats
    per image, its standard error over the test images, and the sigma.
    """
    from .metrics import draw_samples

    centres = draw_samples(model, num_samples, seed=seed, batch_size=batch_size, metric="parzen",
                           metric_options=PARZEN_OPTIONS, **sampler_options)
    sigmas = tuple(float(s) for s in sigmas)
    return parzen_of_images(centres, data=data, dataset=dataset, num_validation=num_validation, test_limit=test_limit,
                            sigmas=sigmas)
