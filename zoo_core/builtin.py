"""The core's own plugin: registered through the same hooks as any third-party plugin."""

from importlib import resources

from .plugins import hookimpl
from .specs import DatasetSpec, MetricSpec


@hookimpl
def zoo_register_datasets(register):
    register(DatasetSpec("mnist", "zoo_core.datasets:load_mnist", "MNIST digits, 28x28 grey, from the IDX gz files",
                         hub_id="ylecun/mnist", pretty_name="MNIST"))
    register(DatasetSpec("cifar10", "zoo_core.datasets:load_cifar10_npz", "CIFAR-10, 32x32 colour, from an npz",
                         hub_id="uoft-cs/cifar10", pretty_name="CIFAR-10"))


@hookimpl
def zoo_register_metrics(register):
    register(MetricSpec("samples", "zoo_core.metrics:sample_grid", "Write a grid of samples and report their range"))


@hookimpl
def zoo_register_catalog(register):
    register(resources.files("zoo_core").joinpath("registry.yaml"))
