"""``mnist-binarized``: MNIST as the IWAE paper's code uses it (Burda, Grosse & Salakhutdinov 2015).

* ``train``: the first 59,600 training images, binarized anew every time an image is drawn,
  pixel ~ Bernoulli(grey level) ("dynamic binarization"). The draws come from torch's global
  random generator, which the Trainer seeds with ``train.seed`` and saves in its checkpoints, so a
  run and its resumption draw the same pixels.
* ``validation``: the last 400 training images, binarized once with ``binarization_seed``.
* ``test``: the 10,000 test images, binarized once with ``binarization_seed`` (the same set for
  every model: their numbers compare).
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import torch

from zoo_core.datasets import check_limit, load_mnist

VALIDATION_IMAGES = 400
SPLITS = ("train", "validation", "test")


class _ImageTensor:
    """A dataset over one uint8 image tensor (N x C x H x W); ``_serve`` turns stored images into items."""

    def __init__(self, images: torch.Tensor):
        self.images = images

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, index):
        return self._serve(self.images[index])

    def __getitems__(self, indices):  # one call for the whole batch
        return list(self.get_batch(indices))

    def get_batch(self, indices) -> torch.Tensor:
        """The collated batch of ``indices`` (the trainers' one call per batch: ``zoo_core.datasets``)."""
        return self._serve(self.images.index_select(0, torch.as_tensor(indices, dtype=torch.long)))

    def _serve(self, images: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


class DynamicallyBinarized(_ImageTensor):
    """Grey-level images (uint8, N x C x H x W) served as fresh Bernoulli draws each time they are read."""

    def _serve(self, images: torch.Tensor) -> torch.Tensor:
        return torch.bernoulli(images.float().div_(255.0))

    def mean(self) -> torch.Tensor:
        """The expected image, (C, H, W): the grey levels' mean."""
        return self.images.double().mean(0).div_(255.0).float()


class StaticallyBinarized(_ImageTensor):
    """Images binarized once, (N, C, H, W) in {0, 1}."""

    def _serve(self, images: torch.Tensor) -> torch.Tensor:
        return images.float()

    def tensors(self) -> torch.Tensor:
        """All images at once, (N, C, H, W) float in {0, 1}."""
        return self.images.float()


def binarize(grey: torch.Tensor, seed: int) -> torch.Tensor:
    """uint8 grey levels -> uint8 {0, 1}, pixel ~ Bernoulli(grey / 255), from a generator seeded with ``seed``."""
    generator = torch.Generator().manual_seed(seed)
    return torch.bernoulli(grey.float().div_(255.0), generator=generator).to(torch.uint8)


def load_mnist_binarized(path: Optional[str | Path] = None, split: str = "train", limit: Optional[int] = None,
                         binarization_seed: int = 0, dynamic: bool = True):
    """Binarized MNIST: ``split`` train (dynamically binarized unless ``dynamic=False``), validation
    (the 400 held-out training images) or test, both binarized once with ``binarization_seed``."""
    if split not in SPLITS:
        raise ValueError(f"mnist-binarized split must be one of {', '.join(SPLITS)}, got {split!r}")
    limit = check_limit(limit)
    grey = load_mnist(path, split="test" if split == "test" else "train").images  # uint8 (N, 1, 28, 28)
    if split == "train":
        grey = grey[:-VALIDATION_IMAGES]
    elif split == "validation":
        grey = grey[-VALIDATION_IMAGES:]
    if split == "train" and dynamic:
        return DynamicallyBinarized(grey[:limit])
    # the whole split is drawn, then cut: the first images of the test set are the same with any limit;
    # the seed depends on the split, so that validation and test pixels are drawn independently
    return StaticallyBinarized(binarize(grey, binarization_seed + SPLITS.index(split))[:limit])
