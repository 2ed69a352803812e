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
    ``kl`` is the closed-form KL for one stochastic layer; for two (``latent_dims``) the one-sample Monte-Carlo
    estimate of ``model.elbo``.
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


def nll(model, *, data=None, out_dir: Optional[Path] = None, k: int = 5000, split: str = "test",
        limit: Optional[int] = None, batch_size: int = 100, chunk: int = 100, seed: int = 0,
        binarization_seed: int = 0, **_) -> dict[str, float]:
    """Test negative log-likelihood on binarized MNIST as Burda et al. (2015) report it: -log p(x) estimated
    with ``k`` importance samples per image (their tables: k = 5000), in nats, averaged over the images of
    ``split`` (``mnist-binarized``: the 10,000 test images binarized once with ``binarization_seed``).

    Returns ``nll`` and its standard error over the images (``nll_stderr``), and beside it the
    ELBO (the mean of the k log-weights: a one-sample ELBO averaged over k draws), ``kl`` and E[log p(x|z)]
    (``reconstruction_log_likelihood`` = ``elbo + kl``). ``kl`` is KL(q(z|x) || p(z)) averaged over the images:
    in closed form for one stochastic layer; for two (``latent_dims``), which have none, the Monte-Carlo
    estimate over the same k samples, the mean of log q(h1|x) + log q(h2|h1) - log p(h1|h2) - log p(h2), and
    E[log p(x|z)] is then the mean of log p(x|h1). The k samples of ``batch_size`` images are decoded ``chunk``
    at a time (``batch_size * chunk`` decoder rows in memory). Seeded with ``seed``; the caller's random
    state is left as it was.
    """
    from .data import load_mnist_binarized
    from .model import gaussian_kl, log_mean_exp_chunks

    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        from zoo_core.errors import InvalidArgumentError

        raise InvalidArgumentError(f"k={k!r} is not a number of importance samples: give a whole number of at least 1 "
                                   "(e.g. --k 5000, the papers' choice)")
    images = load_mnist_binarized(data, split=split, limit=limit, binarization_seed=binarization_seed).tensors()
    model.eval()
    log_px, log_w_mean, kl = [], [], []
    with torch.random.fork_rng(devices=[model.device] if model.device.type == "cuda" else []), torch.no_grad():
        torch.manual_seed(seed)
        for x in progress_bar(images.split(batch_size), desc=f"NLL, k={k}", unit="batch"):
            x = x.to(model.device, model.dtype)
            if model.two_layers:  # no closed form: KL = E[log p(x|h1)] - ELBO over the same k samples
                lse, mean_log_w, mean_reconstruction = log_mean_exp_chunks(model, x, k, chunk=chunk,
                                                                          with_reconstruction=True)
                kl.append(mean_reconstruction - mean_log_w)
            else:
                lse, mean_log_w = log_mean_exp_chunks(model, x, k, chunk=chunk)
                kl.append(gaussian_kl(*model.encode(x)).double())
            log_px.append(lse)
            log_w_mean.append(mean_log_w)
    log_px, elbo_per_image, kl = torch.cat(log_px), torch.cat(log_w_mean), torch.cat(kl)
    n = log_px.shape[0]
    stderr = {"nll_stderr": float(log_px.std() / n**0.5)} if n > 1 else {}  # over the images: none for one image
    return {
        "nll": float(-log_px.mean()),
        **stderr,
        "elbo": float(elbo_per_image.mean()),
        "kl": float(kl.mean()),
        "reconstruction_log_likelihood": float((elbo_per_image + kl).mean()),
        "k": float(k),
        "images": float(n),
    }
