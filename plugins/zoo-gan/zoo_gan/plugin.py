"""Entry point of zoo-gan: registers the "gan" family (imports nothing heavy; its
Parzen-window metric is the core's ``parzen``)."""

from zoo_core.plugins import hookimpl
from zoo_core.specs import FamilySpec


CITATION = """@inproceedings{goodfellow2014generative,
  title = {Generative Adversarial Nets},
  author = {Goodfellow, Ian and Pouget-Abadie, Jean and Mirza, Mehdi and Xu, Bing and Warde-Farley, David and
            Ozair, Sherjil and Courville, Aaron and Bengio, Yoshua},
  booktitle = {Advances in Neural Information Processing Systems},
  volume = {27},
  year = {2014},
  eprint = {1406.2661},
  archivePrefix = {arXiv}
}"""


@hookimpl
def zoo_register_families(register):
    register(
        FamilySpec(
            name="gan",
            config="zoo_gan.model:GANConfig",
            model="zoo_gan.model:GAN",
            description="Generative adversarial nets (Goodfellow et al. 2014): MLP or DCGAN-style G and D",
            dataset="mnist",
            tiny_config={"latent_dim": 8, "hidden_dim": 16},
            papers=("1406.2661",),
            citation=CITATION,
        )
    )
