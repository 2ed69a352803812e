"""Entry point of zoo-fid-mnist: registers the fid-mnist metric (imports nothing heavy)."""

from zoo_core.plugins import hookimpl
from zoo_core.specs import MetricSpec


@hookimpl
def zoo_register_metrics(register):
    register(
        MetricSpec(
            "fid-mnist",
            "zoo_fid_mnist.metric:fid_mnist",
            "Fréchet distance between a shipped MNIST classifier's features of 10,000 samples and of the 10,000 MNIST "
            "test images (lower is better; not comparable with Inception FIDs); options num_samples, seed, batch_size",
            families=None,
        )
    )
