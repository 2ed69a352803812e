"""Writing sample grids and animations with Pillow (no torchvision)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Optional, Sequence

import numpy as np


def to_uint8(images) -> np.ndarray:
    """``(N, C, H, W)`` floats in [0, 1] (torch or numpy) -> ``(N, H, W, C)`` uint8."""
    array = images.detach().float().cpu().numpy() if hasattr(images, "detach") else np.asarray(images, np.float32)
    if array.ndim == 3:
        array = array[None]
    array = np.clip(array, 0.0, 1.0).transpose(0, 2, 3, 1)
    return (array * 255.0 + 0.5).astype(np.uint8)


def make_grid(images, nrow: Optional[int] = None, padding: int = 2) -> np.ndarray:
    """Tile ``(N, C, H, W)`` images into one ``(H', W', C)`` uint8 array, ``nrow`` per row."""
    tiles = to_uint8(images)
    n, h, w, c = tiles.shape
    nrow = nrow or math.ceil(math.sqrt(n))
    rows = math.ceil(n / nrow)
    grid = np.zeros((rows * (h + padding) + padding, nrow * (w + padding) + padding, c), np.uint8)
    for i, tile in enumerate(tiles):
        r, col = divmod(i, nrow)
        top, left = padding + r * (h + padding), padding + col * (w + padding)
        grid[top : top + h, left : left + w] = tile
    return grid


def save_grid(images, path: str | Path, nrow: Optional[int] = None) -> Path:
    """Write ``(N, C, H, W)`` images in [0, 1] as one PNG grid."""
    from PIL import Image

    grid = make_grid(images, nrow=nrow)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(grid[..., 0] if grid.shape[-1] == 1 else grid).save(path)
    return path


def save_animation(frames: Sequence, path: str | Path, fps: int = 15) -> Path:
    """Write frames (``(N, C, H, W)`` in [0, 1]) as an animated GIF (or PNG frames if .png)."""
    from PIL import Image

    tiles = to_uint8(frames)
    pictures = [Image.fromarray(t[..., 0] if t.shape[-1] == 1 else t) for t in tiles]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    pictures[0].save(path, save_all=True, append_images=pictures[1:], duration=int(1000 / fps), loop=0)
    return path
