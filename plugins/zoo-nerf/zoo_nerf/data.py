"""Ray datasets: the Blender synthetic format (transforms_*.json + images) and the tiny-NeRF npz layout.

Every loader returns a ``RayDataset``: one item per ray, ``{"origins", "directions", "rgb"}`` (each a
float (3,) tensor), with the views' images, poses and intrinsics kept for rendering held-out views.

Held-out split: the npz files hold one set of views; the last ``holdout`` (default 8) are ``"val"``,
the rest ``"train"`` (for the 80-view lego files: views 0-71 train, 72-79 val). A Blender folder uses
``transforms_val.json`` when it exists, else the same rule on ``transforms_train.json``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Optional

import numpy as np
import torch
from torch.utils.data import Dataset

from zoo_core.renderer import Cameras

SPLITS = ("train", "val", "all")
BACKGROUNDS = ("white", "black")


class NeRFDataError(ValueError):
    """A scene file or option the loaders cannot use."""


class RayDataset(Dataset):
    """All rays of some views of one scene.

    images: (N, H, W, 3) float in [0, 1] (already composited on ``background``); poses: (N, 4, 4)
    camera-to-world; focal in pixels. Rays follow ``zoo_core.renderer.Cameras.generate_rays``.
    """

    def __init__(self, images: torch.Tensor, poses: torch.Tensor, focal: float, *, background: Optional[str],
                 near: float = 2.0, far: float = 6.0, source: str = ""):
        self.images, self.poses, self.focal = images.float(), poses.float(), float(focal)
        self.height, self.width = int(images.shape[1]), int(images.shape[2])
        self.background, self.near, self.far, self.source = background, near, far, source
        origins, directions = self.cameras.generate_rays()
        self.origins = origins.reshape(-1, 3).contiguous()
        self.directions = directions.reshape(-1, 3).contiguous()
        self.rgb = self.images.reshape(-1, 3).contiguous()

    @property
    def cameras(self) -> Cameras:
        return Cameras(self.poses, self.focal, self.width, self.height)

    def __len__(self) -> int:
        return self.rgb.shape[0]

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {"origins": self.origins[index], "directions": self.directions[index], "rgb": self.rgb[index]}

    def tensors(self) -> dict[str, torch.Tensor]:
        """Every ray at once: {"origins", "directions", "rgb"}, each (num_rays, 3)."""
        return {"origins": self.origins, "directions": self.directions, "rgb": self.rgb}

    def __repr__(self) -> str:
        return (f"RayDataset({len(self.images)} views of {self.width}x{self.height}, {len(self)} rays, "
                f"focal={self.focal:.3f}, background={self.background}, from {self.source})")


def _split(n: int, split: str, holdout: int) -> slice:
    if split not in SPLITS:
        raise NeRFDataError(f"unknown split {split!r}; use one of {', '.join(SPLITS)}")
    if not 0 < holdout < n:
        raise NeRFDataError(f"holdout={holdout} must be between 1 and {n - 1} (the file has {n} views)")
    return {"train": slice(0, n - holdout), "val": slice(n - holdout, n), "all": slice(0, n)}[split]


def _composite(rgba: np.ndarray, background: Optional[str]) -> np.ndarray:
    """Straight-alpha RGBA floats -> RGB on ``background`` (white: the paper's convention for Blender)."""
    if background not in BACKGROUNDS:
        raise NeRFDataError(f"background {background!r} is not one of {', '.join(BACKGROUNDS)}")
    bg = 1.0 if background == "white" else 0.0
    return rgba[..., :3] * rgba[..., 3:] + bg * (1.0 - rgba[..., 3:])


def _resize(images: np.ndarray, factor: int) -> np.ndarray:
    """Box-filter downsampling by an integer factor (what produced the shared lego files)."""
    if factor == 1:
        return images
    n, h, w, c = images.shape
    if h % factor or w % factor:
        raise NeRFDataError(f"downscale={factor} does not divide the image size {w}x{h}")
    return images.reshape(n, h // factor, factor, w // factor, factor, c).mean((2, 4))


def load_npz(path, split: str = "train", *, background: Optional[str] = None, holdout: int = 8,
             downscale: int = 1, limit: Optional[int] = None, near: float = 2.0, far: float = 6.0) -> RayDataset:
    """Rays from an npz with ``images``, ``poses`` (N, 4, 4) and ``focal``.

    ``images`` float RGB in [0, 1] (the tiny-NeRF layout, already on black: ``background`` must be
    None or "black") or uint8 straight RGBA (composited on ``background``, default "white", the
    paper's convention). ``limit`` keeps the first views of the split (for quick tests).
    """
    if path is None:
        raise NeRFDataError("the nerf-npz dataset needs a path, e.g. ../shared/data/nerf/lego_tiny_80views.npz")
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no npz file at {path}")
    with np.load(path, allow_pickle=False) as data:
        missing = {"images", "poses", "focal"} - set(data.files)
        if missing:
            raise NeRFDataError(f"{path} lacks {sorted(missing)}; a NeRF npz holds images, poses and focal")
        images, poses, focal = data["images"], data["poses"].astype(np.float32), float(data["focal"])
    if images.shape[-1] == 4:
        rgba = images.astype(np.float32) / (255.0 if images.dtype == np.uint8 else 1.0)
        background = background or "white"
        images = _composite(rgba, background)
    elif images.shape[-1] == 3:
        if background not in (None, "black"):
            raise NeRFDataError(f"{path} holds RGB already composited on black (no alpha); background={background!r} "
                                "is impossible, use 'black' or an RGBA file")
        background = "black"
        images = images.astype(np.float32) / (255.0 if images.dtype == np.uint8 else 1.0)
    else:
        raise NeRFDataError(f"{path}: images must be (N, H, W, 3) or (N, H, W, 4), got {images.shape}")
    chosen = _split(len(images), split, holdout)
    images, poses = _resize(images[chosen], downscale), poses[chosen]
    if limit is not None:
        images, poses = images[:limit], poses[:limit]
    return RayDataset(torch.from_numpy(np.ascontiguousarray(images)), torch.from_numpy(poses), focal / downscale,
                      background=background, near=near, far=far, source=str(path))


def load_blender(path, split: str = "train", *, background: str = "white", holdout: int = 8,
                 downscale: int = 1, limit: Optional[int] = None, near: float = 2.0, far: float = 6.0) -> RayDataset:
    """Rays from a Blender synthetic scene folder: ``transforms_{split}.json`` (``camera_angle_x`` and
    ``frames`` with ``file_path`` and ``transform_matrix``) and its RGBA PNGs, composited on
    ``background`` (white by default, as in the paper). Focal = 0.5 W / tan(0.5 camera_angle_x)."""
    from PIL import Image

    if path is None:
        raise NeRFDataError("the blender dataset needs the path of a scene folder with transforms_train.json")
    folder = Path(path)
    if split not in SPLITS:
        raise NeRFDataError(f"unknown split {split!r}; use one of {', '.join(SPLITS)}")
    own = folder / f"transforms_{split}.json"
    if split == "val" and own.is_file():
        meta, chosen = json.loads(own.read_text()), None
    else:
        train_file = folder / "transforms_train.json"
        if not train_file.is_file():
            raise FileNotFoundError(f"{folder} has no transforms_train.json; is it a Blender synthetic scene folder?")
        meta = json.loads(train_file.read_text())
        chosen = _split(len(meta["frames"]), split, holdout)
    frames = meta["frames"] if chosen is None else meta["frames"][chosen]
    if limit is not None:
        frames = frames[:limit]
    images, poses = [], []
    for frame in frames:
        file = folder / frame["file_path"]
        if not file.suffix:
            file = file.with_suffix(".png")
        picture = Image.open(file)
        rgba = np.asarray(picture.convert("RGBA"), dtype=np.float32) / 255.0
        images.append(rgba)
        poses.append(np.asarray(frame["transform_matrix"], dtype=np.float32))
    rgba = _resize(np.stack(images), downscale)
    width = rgba.shape[2]
    focal = 0.5 * width / math.tan(0.5 * float(meta["camera_angle_x"]))
    rgb = _composite(rgba, background)
    return RayDataset(torch.from_numpy(np.ascontiguousarray(rgb)), torch.from_numpy(np.stack(poses)), focal,
                      background=background, near=near, far=far, source=str(folder))


def load_scene(path, split: str = "train", **options) -> RayDataset:
    """A Blender scene folder or a NeRF npz, whichever ``path`` is."""
    if path is None:
        raise NeRFDataError("the blender dataset needs a path: a scene folder with transforms_train.json, or a NeRF npz")
    path = Path(path)
    if path.is_dir():
        return load_blender(path, split, **options)
    if path.suffix == ".npz":
        return load_npz(path, split, **options)
    raise FileNotFoundError(f"{path} is neither a Blender scene folder nor an .npz file")
