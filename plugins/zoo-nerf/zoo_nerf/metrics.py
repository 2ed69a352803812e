"""The ``psnr`` metric: render the held-out views and compare them with the ground truth."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Optional

import torch

from zoo_core.progress import progress_bar


def psnr_of(rendered: torch.Tensor, target: torch.Tensor) -> float:
    """PSNR in dB of images in [0, 1]: -10 log10(MSE)."""
    mse = torch.mean((rendered.float() - target.float()) ** 2)
    return float(-10.0 * torch.log10(mse.clamp(min=1e-10)))


def evaluate_views(model, dataset, *, views: Optional[int] = None, chunk: int = 8192):
    """Render the dataset's views at its own intrinsics -> (per-view PSNRs, renders (N, H, W, 3))."""
    cameras = dataset.cameras
    count = len(cameras) if views is None else min(views, len(cameras))
    renders, scores = [], []
    for i in progress_bar(range(count), desc="render views", unit="view"):
        rgb = model.render(cameras[i : i + 1], chunk=chunk)["rgb"][0].cpu()
        renders.append(rgb)
        scores.append(psnr_of(rgb, dataset.images[i]))
    return scores, torch.stack(renders)


def psnr(model, *, data=None, out_dir: Optional[Path] = None, split: str = "val", views: Optional[int] = None,
         chunk: int = 8192, **options) -> dict[str, float]:
    """Mean PSNR over the held-out views (the paper's metric), on the model's background colour.

    ``data`` is a scene folder or npz (see ``zoo_nerf.data.load_scene``); writes
    ``psnr_renders.png`` (top row: renders, bottom row: ground truth) into ``out_dir``.
    """
    from zoo_core.images import save_grid

    from .data import load_npz, load_scene

    if data is None:
        raise ValueError("the psnr metric needs --data: the scene (Blender folder or npz) with the held-out views")
    path = Path(data)
    background = model.config.background
    if path.suffix == ".npz":
        import numpy as np

        with np.load(path, allow_pickle=False) as f:
            rgb_only = f["images"].shape[-1] == 3
        dataset = load_npz(path, split, background=None if rgb_only else background, **options)
    else:
        dataset = load_scene(path, split, background=background, **options)
    if dataset.background != background:
        raise ValueError(f"the model renders on {background} but {path} is composited on {dataset.background}")
    start = time.perf_counter()
    scores, renders = evaluate_views(model, dataset, views=views, chunk=chunk)
    seconds = time.perf_counter() - start
    if out_dir is not None:
        truth = dataset.images[: len(renders)]
        save_grid(torch.cat([renders, truth]).permute(0, 3, 1, 2), Path(out_dir) / "psnr_renders.png", nrow=len(renders))
    return {"psnr": sum(scores) / len(scores), "psnr_min": min(scores), "views": float(len(scores)),
            "render_seconds_per_view": seconds / len(scores)}
