"""Parzen-window log-likelihood (Goodfellow et al. 2014, following Breuleux et al. 2011).

Fit a Gaussian kernel density estimate with bandwidth sigma to samples s_1..s_N of the model and
report the mean over test images x of

    log p_hat(x) = logsumexp_i(-||x - s_i||^2 / (2 sigma^2)) - log N - d/2 log(2 pi sigma^2),

with sigma chosen (from a grid) to maximize the same quantity on a validation split. Pixels are in
[0, 1], as in the paper (Table 1, MNIST: 225 +- 2 nats for the GAN).

Known weaknesses (Theis, van den Oord & Bethge 2016, "A note on the evaluation of generative
models"): in 784 dimensions a KDE with 10,000 centres is a very poor density estimate; the number
has high variance and a large bias that depend on N; it correlates poorly with sample quality (a
KDE on k-means centroids of the training set, or on a few hundred training images, can beat good
models); and it says nothing about the model's actual likelihood. Report it only for comparison
with the 2014 paper.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Optional, Sequence

import torch

from zoo_core.progress import progress_bar

DEFAULT_SIGMAS = tuple(float(s) for s in torch.logspace(-1.3, -0.3, 21))  # 0.05 .. 0.5


def parzen_log_likelihood(x: torch.Tensor, centres: torch.Tensor, sigmas: Sequence[float], batch_size: int = 500) -> torch.Tensor:
    """Mean Parzen log-density of the rows of ``x`` under Gaussian kernels at ``centres``, for each sigma.

    x: (M, d), centres: (N, d). Returns (len(sigmas),) in nats. Squared distances are computed once.
    """
    sigmas_t = torch.tensor(sigmas, dtype=torch.float64)
    n, d = centres.shape
    centre_norms = centres.pow(2).sum(1)
    total = torch.zeros(len(sigmas), dtype=torch.float64)
    for chunk in progress_bar(x.split(batch_size), desc="Parzen", unit="batch"):
        squared = (chunk.pow(2).sum(1, keepdim=True) - 2 * chunk @ centres.T + centre_norms).clamp_min(0).double()
        for i, sigma in enumerate(sigmas_t):
            log_p = torch.logsumexp(-squared / (2 * sigma**2), dim=1) - math.log(n) - d / 2 * torch.log(2 * math.pi * sigma**2)
            total[i] += log_p.sum()
    return total / x.shape[0]


def parzen(model, *, data=None, out_dir: Optional[Path] = None, num_samples: int = 10000, num_validation: int = 1000,
           test_limit: Optional[int] = None, sigmas: Sequence[float] = DEFAULT_SIGMAS, seed: int = 0, **_) -> dict[str, float]:
    """Parzen-window log-likelihood of MNIST test images under ``num_samples`` model samples.

    sigma is chosen on a validation split: the last ``num_validation`` images of the MNIST training
    set (the catalog GAN trains on the first 50,000 only). Returns nats per image and the sigma.
    """
    from zoo_core.datasets import load_mnist

    train = load_mnist(data, split="train").tensors()
    validation = train[-num_validation:].flatten(1)
    test = load_mnist(data, split="test", limit=test_limit).tensors().flatten(1)
    generator = torch.Generator(device=model.device).manual_seed(seed)
    with torch.no_grad():
        centres = torch.cat([model.sample(min(1000, num_samples - i), generator=generator).float().cpu().flatten(1)
                             for i in range(0, num_samples, 1000)])
    if centres.shape[1] != test.shape[1]:
        raise ValueError(f"the model's samples have {centres.shape[1]} values, MNIST images {test.shape[1]}")
    validation_ll = parzen_log_likelihood(validation, centres, sigmas)
    best = int(validation_ll.argmax())
    sigma = sigmas[best]
    test_ll = float(parzen_log_likelihood(test, centres, [sigma])[0])
    return {"parzen_log_likelihood": test_ll, "parzen_sigma": float(sigma), "parzen_validation_log_likelihood": float(validation_ll[best])}
