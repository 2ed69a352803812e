"""zoo: a plugin-based zoo of generative models.

    import zoo
    zoo.list_models("ae-*")
    model = zoo.load("ae-mnist")          # a catalog name, "org/repo[@rev]", or a local folder
    images = model.sample(16)             # (16, C, H, W) in [0, 1]
    fresh = zoo.create_model("vae", pretrained=False, latent_dim=8)   # timm-style

Importing zoo is cheap: torch and the families' model code load when first used.
"""

from typing import TYPE_CHECKING

from zoo_core import __version__

if TYPE_CHECKING:  # what type checkers see; at run time the names load lazily (below)
    from zoo_core import errors as errors
    from zoo_core.catalog import info as info, list_models as list_models
    from zoo_core.config import TrainConfig as TrainConfig, ZooConfig as ZooConfig
    from zoo_core.generator import Generator as Generator
    from zoo_core.loading import build as build, create_model as create_model, load as load
    from zoo_core.plugins import families as families, hookimpl as hookimpl
    from zoo_core.renderer import Cameras as Cameras, Renderer as Renderer
    from zoo_core.specs import DatasetSpec as DatasetSpec, FamilySpec as FamilySpec, MetricSpec as MetricSpec
    from zoo_core.specs import TrainerSpec as TrainerSpec
    from zoo_core.trainer import Trainer as Trainer, TrainResult as TrainResult, get_trainer as trainer
    from zoo_core.plugins import trainers as trainers

__all__ = [
    "__version__", "load", "build", "create_model", "list_models", "info", "families", "Generator", "Renderer", "Cameras",
    "Trainer", "trainer", "trainers", "TrainResult", "TrainConfig", "ZooConfig", "hookimpl", "FamilySpec", "DatasetSpec",
    "MetricSpec", "TrainerSpec",
]

_LAZY = {
    "load": "zoo_core.loading:load",
    "build": "zoo_core.loading:build",
    "create_model": "zoo_core.loading:create_model",
    "list_models": "zoo_core.catalog:list_models",
    "info": "zoo_core.catalog:info",
    "families": "zoo_core.plugins:families",
    "Generator": "zoo_core.generator:Generator",
    "Renderer": "zoo_core.renderer:Renderer",
    "Cameras": "zoo_core.renderer:Cameras",
    "Trainer": "zoo_core.trainer:Trainer",
    "trainer": "zoo_core.trainer:get_trainer",
    "trainers": "zoo_core.plugins:trainers",
    "TrainerSpec": "zoo_core.specs:TrainerSpec",
    "TrainResult": "zoo_core.trainer:TrainResult",
    "TrainConfig": "zoo_core.config:TrainConfig",
    "ZooConfig": "zoo_core.config:ZooConfig",
    "hookimpl": "zoo_core.plugins:hookimpl",
    "FamilySpec": "zoo_core.specs:FamilySpec",
    "DatasetSpec": "zoo_core.specs:DatasetSpec",
    "MetricSpec": "zoo_core.specs:MetricSpec",
    "errors": "zoo_core.errors",
}


def __getattr__(name: str):
    if name not in _LAZY:
        raise AttributeError(f"module 'zoo' has no attribute {name!r}")
    from zoo_core.specs import import_object
    import importlib

    target = _LAZY[name]
    value = import_object(target) if ":" in target else importlib.import_module(target)
    globals()[name] = value
    return value


def __dir__():
    return sorted(list(globals()) + list(_LAZY))
