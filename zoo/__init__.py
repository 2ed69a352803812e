"""zoo: a plugin-based zoo of generative models.

    import zoo
    zoo.list_models("ae-*")
    model = zoo.load("ae-mnist")          # a catalog name, "org/repo[@rev]", or a local folder
    images = model.sample(16)             # (16, C, H, W) in [0, 1]

Importing zoo is cheap: torch and the families' model code load when first used.
"""

from zoo_core import __version__

__all__ = [
    "__version__", "load", "build", "list_models", "info", "families", "Generator", "Renderer", "Cameras",
    "Trainer", "trainer", "trainers", "TrainResult", "TrainConfig", "ZooConfig", "hookimpl", "FamilySpec", "DatasetSpec", "MetricSpec", "TrainerSpec",
]

_LAZY = {
    "load": "zoo_core.loading:load",
    "build": "zoo_core.loading:build",
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
