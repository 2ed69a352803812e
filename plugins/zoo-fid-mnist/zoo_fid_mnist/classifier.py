"""The small MNIST classifier whose penultimate features fid-mnist compares.

Three 3x3 convolutions (32, 64, 128 channels, each with batch norm, ReLU and 2x2 max-pooling),
then a 128-unit layer (the features) and a 10-way linear read-out. It takes images in [0, 1]
(the zoo's convention) and standardizes them itself. Trained by
``plugins/zoo-fid-mnist/scripts/train_classifier.py``; the shipped weights are checked against
``WEIGHTS_SHA256`` every time they are loaded.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Optional

import torch
from torch import nn

WEIGHTS_FILE = "weights/mnist-classifier.safetensors"
WEIGHTS_SHA256 = "1a327ea2b44bf68295670915eafcc7749a23c4958b195d3ae30741f4a19c7a5f"
FEATURE_DIM = 128
MNIST_MEAN, MNIST_STD = 0.1307, 0.3081  # of the 60,000 training images' pixels in [0, 1]


def _block(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(),
                         nn.MaxPool2d(2))


class MNISTClassifier(nn.Module):
    """28x28 -> 14 -> 7 -> 3 (conv blocks) -> 128 features -> 10 logits."""

    def __init__(self):
        super().__init__()
        self.blocks = nn.Sequential(_block(1, 32), _block(32, 64), _block(64, 128))
        self.features_head = nn.Sequential(nn.Flatten(), nn.Linear(128 * 3 * 3, FEATURE_DIM), nn.ReLU())
        self.dropout = nn.Dropout(0.3)
        self.readout = nn.Linear(FEATURE_DIM, 10)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate features (N, 128) of images (N, 1, 28, 28) in [0, 1]."""
        return self.features_head(self.blocks((x - MNIST_MEAN) / MNIST_STD))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.readout(self.dropout(self.features(x)))


def weights_path() -> Path:
    return Path(str(resources.files("zoo_fid_mnist").joinpath(WEIGHTS_FILE)))


def load_classifier(path: Optional[Path] = None, *, sha256: Optional[str] = WEIGHTS_SHA256) -> MNISTClassifier:
    """The shipped classifier (or the one at ``path``) in eval mode, after checking the file's sha256."""
    from safetensors.torch import load_file

    from zoo_core.errors import WeightsError
    from zoo_core.loading import sha256_file

    path = Path(path) if path is not None else weights_path()
    if not path.is_file():
        raise WeightsError(f"the fid-mnist classifier {path} is missing: reinstall zoo-fid-mnist "
                           "(pip install --force-reinstall zoo-fid-mnist)")
    if sha256 is not None:
        got = sha256_file(path)
        if got != sha256:
            raise WeightsError(
                f"the fid-mnist classifier {path} has sha256 {got}, expected {sha256}: the file is corrupt or was "
                "replaced, and fid-mnist numbers from it would not be comparable; reinstall zoo-fid-mnist "
                "(pip install --force-reinstall zoo-fid-mnist)")
    model = MNISTClassifier()
    model.load_state_dict(load_file(str(path)))
    return model.eval()
