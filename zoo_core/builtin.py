"""The core's own plugin: registered through the same hooks as any third-party plugin."""

from importlib import resources

from .plugins import hookimpl
from .specs import DatasetSpec, MetricSpec, TrainerSpec


@hookimpl
def zoo_register_datasets(register):
    register(DatasetSpec("mnist", "zoo_core.datasets:load_mnist", "MNIST digits, 28x28 grey, from the IDX gz files"))
    register(DatasetSpec("cifar10", "zoo_core.datasets:load_cifar10_npz", "CIFAR-10, 32x32 colour, from an npz"))


@hookimpl
def zoo_register_metrics(register):
    register(MetricSpec("samples", "zoo_core.metrics:sample_grid", "Write a grid of samples and report their range"))


@hookimpl
def zoo_register_catalog(register):
    register(resources.files("zoo_core").joinpath("registry.yaml"))


@hookimpl
def zoo_register_trainers(register):
    register(TrainerSpec("accelerate", "zoo_core.trainers.accelerated:AccelerateTrainer",
                         "Accelerate: CPU, GPUs, several processes, mixed precision (the default)"))
    register(TrainerSpec("plain", "zoo_core.trainers.plain:PlainTrainer",
                         "plain PyTorch, one process, full precision: for debugging and as the benches' baseline"))
