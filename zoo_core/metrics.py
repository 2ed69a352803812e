"""Metrics every image family can use."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

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
