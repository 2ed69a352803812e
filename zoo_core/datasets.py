"""Image datasets the core ships readers for: MNIST (IDX files) and CIFAR-10 (arrays in an npz).

Readers take a folder or file; ``None`` means the usual location, ``$ZOO_DATA_DIR/<name>``
(default ``~/.cache/zoo/data/<name>``). Items are float tensors ``(C, H, W)`` in ``[0, 1]``.
"""

from __future__ import annotations

import gzip
import os
from pathlib import Path
from typing import Optional

import numpy as np

MNIST_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}


def data_home(name: str) -> Path:
    return Path(os.environ.get("ZOO_DATA_DIR", Path.home() / ".cache" / "zoo" / "data")).expanduser() / name


def read_idx(path: Path) -> np.ndarray:
    """An IDX array (the MNIST format): 2 zero bytes, dtype byte 0x08, ndim, big-endian dims, data."""
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rb") as handle:
        data = handle.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        raise ValueError(f"{path} is not an IDX file of unsigned bytes")
    ndim = data[3]
    shape = tuple(int(d) for d in np.frombuffer(data, ">u4", ndim, 4))
    expected = int(np.prod(shape)) + 4 + 4 * ndim
    if len(data) != expected:
        raise ValueError(f"{path} is truncated or corrupt: {len(data)} bytes, expected {expected}")
    return np.frombuffer(data, np.uint8, offset=4 + 4 * ndim).reshape(shape)


class ImageTensorDataset:
    """uint8 images ``(N, H, W, C)`` served as float ``(C, H, W)`` in ``[0, 1]``, with labels."""

    def __init__(self, images: np.ndarray, labels: Optional[np.ndarray] = None):
        import torch

        if images.ndim == 3:
            images = images[..., None]
        self.images = torch.from_numpy(np.array(images.transpose(0, 3, 1, 2), copy=True))
        self.labels = None if labels is None else torch.from_numpy(labels.astype(np.int64))

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, index):
        return self.images[index].float().div_(255.0)

    def __getitems__(self, indices):  # batched fetch: one gather instead of per-item indexing
        import torch

        batch = self.images[torch.as_tensor(indices)].float().div_(255.0)
        return list(batch)

    def tensors(self):
        """All images at once, ``(N, C, H, W)`` float in [0, 1]."""
        return self.images.float().div_(255.0)


def load_mnist(path: Optional[str | Path] = None, split: str = "train", limit: Optional[int] = None):
    """MNIST from the four standard IDX gz files in ``path``; ``split`` is ``train`` or ``test``."""
    if split not in MNIST_FILES:
        raise ValueError(f"MNIST split must be one of {sorted(MNIST_FILES)}, got {split!r}")
    folder = Path(path).expanduser() if path else data_home("mnist")
    image_file, label_file = (folder / name for name in MNIST_FILES[split])
    for needed in (image_file, label_file):
        if not needed.is_file():
            raise FileNotFoundError(
                f"MNIST file {needed} is missing. Put the four IDX files "
                f"({', '.join(n for pair in MNIST_FILES.values() for n in pair)}) in {folder}, "
                f"or pass --data FOLDER."
            )
    images, labels = read_idx(image_file), read_idx(label_file)
    if limit:
        images, labels = images[:limit], labels[:limit]
    return ImageTensorDataset(images, labels)


def load_cifar10_npz(path: Optional[str | Path] = None, split: str = "test", limit: Optional[int] = None):
    """CIFAR-10 images from an npz with ``images`` (N, 32, 32, 3) uint8 and ``labels``.

    ``path`` is the npz file or a folder holding exactly one; ``split`` is informational (the
    shared copy is the test split).
    """
    target = Path(path).expanduser() if path else data_home("cifar10")
    if target.is_dir():
        found = sorted(target.glob("*.npz"))
        if len(found) != 1:
            raise FileNotFoundError(f"expected one CIFAR-10 .npz file in {target}, found {len(found)}; pass the file itself")
        target = found[0]
    if not target.is_file():
        raise FileNotFoundError(f"CIFAR-10 file {target} is missing; pass --data FILE.npz")
    with np.load(target, allow_pickle=False) as archive:
        if "images" not in archive:
            raise ValueError(f"{target} has no 'images' array (found: {', '.join(archive.files)})")
        images = archive["images"]
        labels = archive["labels"] if "labels" in archive else None
    if limit:
        images = images[:limit]
        labels = None if labels is None else labels[:limit]
    return ImageTensorDataset(images, labels)
