"""The core's own plugin: registered through the same hooks as any third-party plugin."""

from importlib import resources

from .plugins import hookimpl
from .specs import CommandSpec, DatasetSpec, MetricSpec, TrainerSpec


@hookimpl
def zoo_register_datasets(register):
    register(DatasetSpec("mnist", "zoo_core.datasets:load_mnist", "MNIST digits, 28x28 grey, from the IDX gz files",
                         hub_id="ylecun/mnist", pretty_name="MNIST"))
    register(DatasetSpec("cifar10", "zoo_core.datasets:load_cifar10_npz", "CIFAR-10, 32x32 colour, from an npz",
                         hub_id="uoft-cs/cifar10", pretty_name="CIFAR-10"))


@hookimpl
def zoo_register_metrics(register):
    register(MetricSpec("samples", "zoo_core.metrics:sample_grid", "Write a grid of samples and report their range"))
    register(MetricSpec("bits_per_dim", "zoo_core.metrics:bits_per_dim",
                        "Negative log-likelihood in bits per dimension, for families with log_prob(x); "
                        "options dataset, split, limit, levels"))
    register(MetricSpec("parzen", "zoo_core.parzen:parzen",
                        "Parzen-window (Gaussian KDE) log-likelihood of the test images (default MNIST) under 10,000 "
                        "samples, sigma chosen on held-out training images, with its standard error (Goodfellow et al. "
                        "2014, Table 1); high-variance and easily fooled (Theis et al. 2016)"))


@hookimpl
def zoo_register_catalog(register):
    register(resources.files("zoo_core").joinpath("registry.yaml"))


@hookimpl
def zoo_register_commands(register):
    register(CommandSpec("families", "zoo_core.families:arguments", "zoo_core.families:run",
                         "show each family: config fields, sampler options, datasets, metrics"))
    register(CommandSpec("ship", "zoo_core.ship:arguments", "zoo_core.ship:run",
                         "measure, save and catalogue trained weights inside a plugin package"))
    register(CommandSpec("plugin", "zoo_core.template:arguments", "zoo_core.template:run",
                         "plugin authoring: 'zoo plugin new NAME' writes a working plugin distribution"))


@hookimpl
def zoo_register_trainers(register):
    register(TrainerSpec("accelerate", "zoo_core.trainers.accelerated:AccelerateTrainer",
                         "Accelerate: CPU, GPUs, several processes, mixed precision (the default)"))
    register(TrainerSpec("plain", "zoo_core.trainers.plain:PlainTrainer",
                         "plain PyTorch, one process, full precision: for debugging and as the benches' baseline"))
