"""Image datasets the core ships readers for: MNIST (IDX files) and CIFAR-10 (arrays in an npz).

Readers take a folder or file; ``None`` means the usual location, ``$ZOO_DATA_DIR/<name>``
(default ``~/.cache/zoo/data/<name>``). Items are float tensors ``(C, H, W)`` in ``[0, 1]``.

A map-style dataset may also define ``get_batch(indices)``: the collated batch of those items (a
list of ints), exactly what ``default_collate([dataset[i] for i in indices])`` gives, in one call.
The zoo's trainers then fetch every batch with it, skipping the list of items and the collation;
``DataLoader``s still see the dataset as usual.
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
        return list(self.get_batch(indices))

    def get_batch(self, indices):
        """The collated batch ``(len(indices), C, H, W)`` (see the module docstring)."""
        import torch

        return self.images.index_select(0, torch.as_tensor(indices, dtype=torch.long)).float().div_(255.0)

    def tensors(self):
        """All images at once, ``(N, C, H, W)`` float in [0, 1]."""
        return self.images.float().div_(255.0)


class BatchFetching:
    """``dataset`` as a ``DataLoader`` with ``collate_fn=passthrough`` should see it: each batch of indices
    is one ``dataset.get_batch`` call, already collated. Items one by one are the dataset's own."""

    def __init__(self, dataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index):
        return self.dataset[index]

    def __getitems__(self, indices):
        return self.dataset.get_batch(indices)


def passthrough(batch):
    """The ``collate_fn`` of a ``BatchFetching`` loader: the batch is collated already."""
    return batch


def batch_loading(dataset):
    """``(dataset, collate_fn)`` for a trainer's ``DataLoader``: ``BatchFetching(dataset)`` and ``passthrough``
    where the dataset defines ``get_batch``, else the dataset itself and torch's ``default_collate`` (``None``)."""
    if callable(getattr(dataset, "get_batch", None)):
        return BatchFetching(dataset), passthrough
    return dataset, None


def fetch_batch(dataset, indices):
    """The collated batch of ``indices`` as a ``DataLoader`` in this process gives it: ``get_batch`` where the
    dataset defines it, else ``default_collate`` of ``__getitems__`` (or of the items one by one)."""
    get_batch = getattr(dataset, "get_batch", None)
    if callable(get_batch):
        return get_batch(indices)
    from torch.utils.data import default_collate

    fetch = getattr(dataset, "__getitems__", None)
    return default_collate(fetch(indices) if fetch else [dataset[i] for i in indices])


def check_limit(limit) -> Optional[int]:
    """``limit``: None (every item) or a whole number of items, at least 1."""
    if limit is None:
        return None
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        from .errors import InvalidArgumentError

        raise InvalidArgumentError(
            f"limit={limit!r} is not a number of items: give a whole number of at least 1 (e.g. --data-option "
            "limit=1000), or leave it out to use every item"
        )
    return limit


def check_dataset_fits(model, dataset, *, dataset_name: str) -> None:
    """Before training: compare the shape of the dataset's first item with the model's ``example_batch``.

    A mismatch (MNIST's 1x28x28 images for a 3x32x32 model) is a DataMismatchError that names both
    shapes and the model's config fields holding the numbers that differ, instead of a shape error
    deep inside the first training step.
    """
    import torch

    if len(dataset) == 0:
        from .errors import DataMismatchError

        raise DataMismatchError(f"the {dataset_name} dataset is empty: check --data and --data-option limit")
    expected = _shapes(model.example_batch(1, generator=torch.Generator().manual_seed(0)), batched=True)
    got = _shapes(dataset[0], batched=False)
    if expected == got or not _comparable(expected, got):
        return
    from .errors import DataMismatchError

    hint = ""
    if isinstance(expected, tuple) and isinstance(got, tuple) and len(expected) == len(got):
        wanted = {e for e, g in zip(expected, got) if e != g}
        fields = [f"{k}={v}" for k, v in model.config.model_dump().items()
                  if isinstance(v, int) and not isinstance(v, bool) and v in wanted]
        if fields:
            hint = f" The model's config has {', '.join(fields)}: set them to fit the data (--set KEY=VALUE)."
    raise DataMismatchError(
        f"the {dataset_name} dataset gives items of shape {_show(got)}, but this {model.family} model takes "
        f"{_show(expected)}.{hint} Or train on data of that shape (--data, --dataset)."
    )


def _shapes(batch, *, batched: bool):
    """The shape of a tensor (without the batch dimension), or a dict/tuple of them; None if not tensors."""
    import torch

    if isinstance(batch, torch.Tensor):
        return tuple(batch.shape[1:]) if batched else tuple(batch.shape)
    if isinstance(batch, dict):
        shapes = {k: _shapes(v, batched=batched) for k, v in batch.items()}
        return None if any(v is None for v in shapes.values()) else shapes
    if isinstance(batch, (tuple, list)):
        shapes = tuple(_shapes(v, batched=batched) for v in batch)
        return None if any(v is None for v in shapes) else shapes
    return None


def _comparable(a, b) -> bool:
    """Same structure (tensor, dict with the same keys, tuple of the same length): only then are shapes compared."""
    if a is None or b is None or type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys()
    if isinstance(a, tuple) and a and not isinstance(a[0], int):
        return len(a) == len(b)
    return True


def _show(shape) -> str:
    if isinstance(shape, tuple) and all(isinstance(n, int) for n in shape):
        return "x".join(map(str, shape)) or "a scalar"
    return str(shape)


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
    limit = check_limit(limit)
    images, labels = read_idx(image_file), read_idx(label_file)
    if limit is not None:
        images, labels = images[:limit], labels[:limit]
    return ImageTensorDataset(images, labels)


def load_cifar10_npz(path: Optional[str | Path] = None, split: str = "test", limit: Optional[int] = None):
    """CIFAR-10 images from an npz with ``images`` (N, 32, 32, 3) uint8 and ``labels``.

    ``path`` is the npz file or a folder holding exactly one; ``split`` is informational (the
    shared copy is the test split).
    """
    limit = check_limit(limit)
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
    if limit is not None:
        images = images[:limit]
        labels = None if labels is None else labels[:limit]
    return ImageTensorDataset(images, labels)
