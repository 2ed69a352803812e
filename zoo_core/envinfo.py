"""What ``zoo env`` prints: versions and devices, for bug reports (like ``accelerate env``)."""

from __future__ import annotations

import platform
import sys
from importlib import metadata
from typing import Any


def _version(distribution: str) -> str:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "not installed"


def environment() -> dict[str, Any]:
    """zoo, plugin, torch, accelerate and huggingface_hub versions, and the devices torch sees."""
    import torch

    from . import __version__
    from .plugins import plugin_records

    plugins = {}
    for record in plugin_records():
        if record.distribution.name == "zoo-core":
            continue
        label = f"{record.distribution.version}" + (" (ERROR: see 'zoo plugins')" if record.errors else "")
        plugins[record.distribution.name] = label
    devices = ["cpu"]
    if torch.cuda.is_available():
        devices += [f"cuda:{i} ({torch.cuda.get_device_name(i)})" for i in range(torch.cuda.device_count())]
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        devices.append("mps")
    if hasattr(torch, "xpu") and torch.xpu.is_available():
        devices += [f"xpu:{i}" for i in range(torch.xpu.device_count())]
    from .loading import default_device

    return {
        "zoo version": __version__,
        "Platform": platform.platform(),
        "Python version": sys.version.split()[0],
        "torch version": torch.__version__,
        "torch CUDA": torch.version.cuda or "none",
        "accelerate version": _version("accelerate"),
        "huggingface_hub version": _version("huggingface-hub"),
        "safetensors version": _version("safetensors"),
        "pydantic version": _version("pydantic"),
        "plugins": plugins,
        "devices": devices,
        "default device": str(default_device()),
        "torch threads": torch.get_num_threads(),
    }
