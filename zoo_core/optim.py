"""The optimizer a TrainConfig names, for families' ``configure_optimizers``."""

from __future__ import annotations

from typing import Iterable, Union

import torch

from .config import TrainConfig

Params = Union[Iterable[torch.nn.Parameter], Iterable[dict]]


def build_optimizer(params: Params, train: TrainConfig) -> torch.optim.Optimizer:
    """``train.optimizer`` over ``params`` (tensors or param groups) with the config's lr, betas, eps,
    momentum and weight decay. Adam and AdamW use ``foreach``: one fused update over all tensors (the
    CPU default loops over them in Python)."""
    if train.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=train.lr, betas=train.betas, eps=train.eps, weight_decay=train.weight_decay,
                                 foreach=True)
    if train.optimizer == "adam":
        return torch.optim.Adam(params, lr=train.lr, betas=train.betas, eps=train.eps, weight_decay=train.weight_decay,
                                foreach=True)
    if train.optimizer == "sgd":
        return torch.optim.SGD(params, lr=train.lr, momentum=train.momentum, weight_decay=train.weight_decay, foreach=True)
    raise ValueError(f"unknown optimizer {train.optimizer!r}: use 'adamw', 'adam' or 'sgd'")
