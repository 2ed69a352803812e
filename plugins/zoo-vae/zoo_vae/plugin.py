"""Entry point of zoo-vae: registers the "vae" family and its metrics (imports nothing heavy)."""

from zoo_core.plugins import hookimpl
from zoo_core.specs import DatasetSpec, FamilySpec, MetricSpec


CITATION = """@inproceedings{kingma2014autoencoding,
  title = {Auto-Encoding Variational {Bayes}},
  author = {Kingma, Diederik P. and Welling, Max},
  booktitle = {International Conference on Learning Representations (ICLR)},
  year = {2014},
  eprint = {1312.6114},
  archivePrefix = {arXiv}
}"""


@hookimpl
def zoo_register_families(register):
    register(
        FamilySpec(
            name="vae",
            config="zoo_vae.model:VAEConfig",
            model="zoo_vae.model:VAE",
            description="Variational autoencoder (Kingma & Welling 2013): Gaussian encoder, ELBO, z ~ N(0, I) sampling",
            dataset="mnist",
            tiny_config={"hidden_dim": 32, "latent_dim": 4},
            papers=("1312.6114",),
            citation=CITATION,
        )
    )


@hookimpl
def zoo_register_metrics(register):
    register(
        MetricSpec(
            "elbo",
            "zoo_vae.metrics:elbo",
            "Test ELBO and importance-sampled log-likelihood (nats per image; Burda et al. 2015 estimator)",
            families=("vae",),
        )
    )
    register(
        MetricSpec(
            "nll",
            "zoo_vae.metrics:nll",
            "Test NLL on binarized MNIST, k importance samples (Burda et al. 2015; --k 5000), with its standard "
            "error, the ELBO and the KL",
            families=("vae",),
        )
    )


@hookimpl
def zoo_register_datasets(register):
    register(
        DatasetSpec(
            "mnist-binarized",
            "zoo_vae.data:load_mnist_binarized",
            "MNIST binarized as in Burda et al. 2015: train dynamically (pixel ~ Bernoulli(grey) at every draw), "
            "400 training images held out (split validation), test binarized once with a fixed seed",
            hub_id="ylecun/mnist",
            pretty_name="MNIST (binarized)",
        )
    )
