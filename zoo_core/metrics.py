"""Metrics every image family can use."""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

import torch


def sample_grid(model, *, data=None, out_dir: Optional[Path] = None, n: int = 64, seed: int = 0, **_) -> dict[str, float]:
    """Sample ``n`` images with a fixed seed, write ``samples.png`` and report their statistics."""
    from .images import save_grid

    generator = torch.Generator(device=model.device).manual_seed(seed)
    with torch.no_grad():
        images = model.sample(n, generator=generator).float().cpu()
    if out_dir is not None:
        save_grid(images, Path(out_dir) / "samples.png")
    return {"sample_mean": float(images.mean()), "sample_std": float(images.std())}


def bits_per_dim_of(model, x: torch.Tensor, *, levels: int = 256) -> float:
    """Mean negative log-likelihood of the batch ``x`` in bits per dimension.

    ``model.log_prob(x)`` returns the log-likelihood of each example in nats. With ``levels`` > 0
    it is a density on [0, 1]^D of images quantized to ``levels`` grey levels, and the usual
    change of scale to [0, levels)^D applies: bits/dim = (-log p(x) / D + log(levels)) / log 2.
    With ``levels=0`` it is already a probability of the discrete data: bits/dim = -log p(x) / (D log 2).
    """
    import math

    log_p = model.log_prob(x.to(model.device))
    dims = x[0].numel()
    nats = -log_p.double().mean().item() / dims + (math.log(levels) if levels else 0.0)
    return nats / math.log(2)


def bits_per_dim(model, *, data=None, out_dir=None, dataset: Optional[str] = None, split: str = "test",
                 limit: Optional[int] = None, batch_size: int = 256, levels: int = 256, **_) -> dict[str, float]:
    """The ``bits_per_dim`` metric for any family that implements ``log_prob(x)``: the mean over the
    ``split`` of ``dataset`` (default: the family's dataset), read from ``data``."""
    from .plugins import get_dataset, get_family

    if not callable(getattr(model, "log_prob", None)):
        raise NotImplementedError(
            f"the {model.family} family does not implement log_prob(x), which the bits_per_dim metric needs"
        )
    dataset = dataset or get_family(model.family).dataset
    if not dataset:
        raise ValueError(f"the {model.family} family names no dataset; pass --option dataset=NAME")
    items = get_dataset(dataset).load(data, split=split)
    count = len(items) if limit is None else min(int(limit), len(items))
    total, seen = 0.0, 0
    with torch.no_grad():
        for start in range(0, count, batch_size):
            batch = torch.stack([items[i] for i in range(start, min(start + batch_size, count))])
            total += bits_per_dim_of(model, batch, levels=levels) * len(batch)
            seen += len(batch)
    return {"bits_per_dim": total / seen}


def draw_samples(model, n: int, *, seed: int = 0, batch_size: int = 500, metric: str = "this metric",
                 metric_options: Sequence[str] = (), **sampler_options) -> torch.Tensor:
    """``n`` samples of ``model`` as one float CPU tensor (n, C, H, W) in [0, 1], drawn in batches from
    one generator seeded with ``seed`` (the same samples for the same seed, batch size and options).

    ``sampler_options`` go to ``model.sample`` and are checked before anything is drawn; a name the
    sampler does not know is an error that also lists the metric's own options (``metric_options``).
    """
    from .errors import UnknownOptionError

    try:
        model.check_sampler_options(sampler_options)
    except UnknownOptionError as error:
        raise UnknownOptionError(f"{error}; the {metric} metric's own options: {', '.join(metric_options)}") from None
    if n < 1 or batch_size < 1:
        from .errors import InvalidArgumentError

        raise InvalidArgumentError(f"num_samples={n} and batch_size={batch_size} must both be at least 1")
    from .progress import progress_bar

    generator = torch.Generator(device=model.device).manual_seed(int(seed))
    batches = []
    with torch.no_grad():
        for start in progress_bar(range(0, n, batch_size), desc=f"sampling for {metric}", unit="batch"):
            batches.append(model.sample(min(batch_size, n - start), generator=generator, **sampler_options).float().cpu())
    images = torch.cat(batches)
    return images.clamp(0, 1)
