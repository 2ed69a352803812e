"""VAE metrics: the test ELBO and an importance-sampled estimate of log p(x), in nats per image."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import torch

from zoo_core.progress import progress_bar


def elbo(model, *, data=None, out_dir: Optional[Path] = None, split: str = "test", limit: Optional[int] = None,
         num_samples: int = 100, iw_limit: int = 1000, batch_size: int = 500, seed: int = 0, **_) -> dict[str, float]:
    """Average ELBO over the MNIST ``split`` (all images, or ``limit``), and the importance-sampled
    log-likelihood with ``num_samples`` samples per image on the first ``iw_limit`` of them.

    Values are nats per image on grey-level MNIST in [0, 1] (a Bernoulli likelihood on continuous
    intensities is not a normalized density, so they are not comparable with binarized-MNIST papers).
    """
    from zoo_core.datasets import load_mnist

    torch.manual_seed(seed)
    images = load_mnist(data, split=split, limit=limit).tensors().to(model.device, model.dtype)
    model.eval()
    totals = {"elbo": 0.0, "reconstruction": 0.0, "kl": 0.0}
    with torch.no_grad():
        for chunk in progress_bar(images.split(batch_size), desc="ELBO", unit="batch"):
            terms = model.elbo(chunk)
            for key in totals:
                totals[key] += float(terms[key].double().sum())
        log_px = torch.cat([model.importance_log_likelihood(chunk, num_samples) for chunk in
                            progress_bar(images[:iw_limit].split(100), desc=f"log p(x), {num_samples} samples", unit="batch")])
    n = images.shape[0]
    return {
        "elbo": totals["elbo"] / n,
        "reconstruction_log_likelihood": totals["reconstruction"] / n,
        "kl": totals["kl"] / n,
        f"log_likelihood_iw{num_samples}": float(log_px.double().mean()),
    }
