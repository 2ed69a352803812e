"""Entry-point module: light, it only registers specs (the model is imported on first use)."""

from importlib import resources

from zoo_core.plugins import hookimpl
from zoo_core.specs import FamilySpec


@hookimpl
def zoo_register_families(register):
    register(
        FamilySpec(
            name="pixel-gaussian",
            config="zoo_example.model:PixelGaussianConfig",
            model="zoo_example.model:PixelGaussian",
            description="Independent Gaussian per pixel, fitted by maximum likelihood",
            dataset="mnist",
            tiny_config={"channels": 1, "size": 4},
        )
    )


@hookimpl
def zoo_register_catalog(register):
    register(resources.files("zoo_example").joinpath("catalog.yaml"))
