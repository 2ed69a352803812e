"""Generative adversarial nets: Goodfellow et al. (2014).

A generator G maps noise z ~ N(0, I) to images; a discriminator D outputs the logit of the probability
that its input is real. They play

    min_G max_D V(D, G) = E_{x ~ p_r}[log D(x)] + E_{z ~ p_z}[log(1 - D(G(z)))].

The discriminator step minimizes -V; the generator step minimizes either the non-saturating loss
-log D(G(z)) (the paper's practical choice) or the minimax loss log(1 - D(G(z))). Both go through
binary cross-entropy on logits for numerical stability. Architectures: an MLP (as for MNIST in the
paper) or a DCGAN-style convolutional pair (Radford et al. 2016). Images are in [-1, 1] inside the
model (tanh output); ``sample`` returns [0, 1].
"""

from __future__ import annotations

from typing import Any, Literal, Optional

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from zoo_core.config import TrainConfig, ZooConfig
from zoo_core.generator import Generator
from zoo_core.noise import GeneratorArg, randn_tensor


class GANConfig(ZooConfig):
    """Hyperparameters of a GAN."""

    image_channels: int = Field(1, ge=1, description="Channels of the images (1 for MNIST).")
    image_size: int = Field(28, ge=4, description="Height and width of the (square) images; a multiple of 4 for 'dcgan'.")
    architecture: Literal["mlp", "dcgan"] = Field(
        "mlp", description="'mlp': fully connected G and D; 'dcgan': transposed-conv G, strided-conv D with batch norm."
    )
    latent_dim: int = Field(100, ge=1, description="Dimension of the noise z ~ N(0, I).")
    hidden_dim: int = Field(
        256, ge=1, description="Width: the MLP's first hidden layer (the next is twice as wide), or the DCGAN's base channels."
    )
    discriminator_dropout: float = Field(0.3, ge=0, lt=1, description="Dropout in the MLP discriminator (the paper used dropout).")
    generator_loss: Literal["non_saturating", "minimax"] = Field(
        "non_saturating",
        description="'non_saturating': G minimizes -log D(G(z)); 'minimax': G minimizes log(1 - D(G(z))) (saturates early on).",
    )


def discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """-(E[log D(x)] + E[log(1 - D(G(z)))]) from logits; its minimum over D is 2 log 2 - 2 JS(p_r || p_g)."""
    return F.binary_cross_entropy_with_logits(real_logits, torch.ones_like(real_logits)) + \
        F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits))


def generator_loss(fake_logits: torch.Tensor, kind: str = "non_saturating") -> torch.Tensor:
    """Non-saturating: -E[log D(G(z))]; minimax: E[log(1 - D(G(z)))]."""
    if kind == "non_saturating":
        return F.binary_cross_entropy_with_logits(fake_logits, torch.ones_like(fake_logits))
    if kind == "minimax":
        return -F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits))
    raise ValueError(f"generator_loss must be 'non_saturating' or 'minimax', got {kind!r}")


def _mlp_generator(c: GANConfig) -> nn.Module:
    h, pixels = c.hidden_dim, c.image_channels * c.image_size**2
    return nn.Sequential(
        nn.Linear(c.latent_dim, h), nn.LeakyReLU(0.2),
        nn.Linear(h, 2 * h), nn.BatchNorm1d(2 * h), nn.LeakyReLU(0.2),  # batch norm in G steadies training
        nn.Linear(2 * h, 4 * h), nn.BatchNorm1d(4 * h), nn.LeakyReLU(0.2),
        nn.Linear(4 * h, pixels), nn.Tanh(),
        nn.Unflatten(1, (c.image_channels, c.image_size, c.image_size)),
    )


def _mlp_discriminator(c: GANConfig) -> nn.Module:
    h, pixels, p = c.hidden_dim, c.image_channels * c.image_size**2, c.discriminator_dropout
    return nn.Sequential(
        nn.Flatten(),
        nn.Linear(pixels, 4 * h), nn.LeakyReLU(0.2), nn.Dropout(p),
        nn.Linear(4 * h, 2 * h), nn.LeakyReLU(0.2), nn.Dropout(p),
        nn.Linear(2 * h, 1),
    )


def _dcgan_generator(c: GANConfig) -> nn.Module:
    h, q = c.hidden_dim, c.image_size // 4
    return nn.Sequential(
        nn.Linear(c.latent_dim, 2 * h * q * q), nn.Unflatten(1, (2 * h, q, q)), nn.BatchNorm2d(2 * h), nn.ReLU(),
        nn.ConvTranspose2d(2 * h, h, 4, 2, 1, bias=False), nn.BatchNorm2d(h), nn.ReLU(),
        nn.ConvTranspose2d(h, c.image_channels, 4, 2, 1), nn.Tanh(),
    )


def _dcgan_discriminator(c: GANConfig) -> nn.Module:
    h, q = c.hidden_dim, c.image_size // 4
    return nn.Sequential(
        nn.Conv2d(c.image_channels, h, 4, 2, 1), nn.LeakyReLU(0.2),
        nn.Conv2d(h, 2 * h, 4, 2, 1, bias=False), nn.BatchNorm2d(2 * h), nn.LeakyReLU(0.2),
        nn.Flatten(), nn.Linear(2 * h * q * q, 1),
    )


class GAN(Generator):
    """Generator G and discriminator D, trained with two optimizers (see ``configure_optimizers``)."""

    family = "gan"
    config_class = GANConfig

    def __init__(self, config: GANConfig):
        super().__init__(config)
        if config.architecture == "dcgan" and config.image_size % 4:
            raise ValueError(f"architecture='dcgan' needs image_size divisible by 4, got {config.image_size}")
        build = {"mlp": (_mlp_generator, _mlp_discriminator), "dcgan": (_dcgan_generator, _dcgan_discriminator)}
        make_g, make_d = build[config.architecture]
        self.generator, self.discriminator = make_g(config), make_d(config)
        self.image_shape = (config.image_channels, config.image_size, config.image_size)

    def noise(self, n: int, generator: GeneratorArg = None) -> torch.Tensor:
        """z ~ p_z = N(0, I)."""
        return randn_tensor((n, self.config.latent_dim), generator=generator, device=self.device, dtype=self.dtype)

    def configure_optimizers(self, train: TrainConfig) -> dict[str, torch.optim.Optimizer]:
        """Adam for D, then Adam for G, with ``train.lr`` and ``train.betas`` (DCGAN uses betas (0.5, 0.999))."""
        def adam(module):
            return torch.optim.Adam(module.parameters(), lr=train.lr, betas=train.betas, weight_decay=train.weight_decay)

        return {"discriminator": adam(self.discriminator), "generator": adam(self.generator)}

    def training_step(self, batch, *, optimizer: str = "discriminator") -> dict[str, torch.Tensor]:
        """``optimizer="discriminator"``: ascend V in D; ``"generator"``: the generator loss."""
        x = batch[0] if isinstance(batch, (list, tuple)) else batch
        x = x * 2 - 1  # [0, 1] -> [-1, 1], the range of G's tanh
        z = self.noise(x.shape[0])
        if optimizer == "discriminator":
            real_logits = self.discriminator(x)
            fake_logits = self.discriminator(self.generator(z).detach())
            return {
                "loss": discriminator_loss(real_logits, fake_logits),
                "d_real": torch.sigmoid(real_logits).mean().detach(),
                "d_fake": torch.sigmoid(fake_logits).mean().detach(),
            }
        if optimizer == "generator":
            return {"loss": generator_loss(self.discriminator(self.generator(z)), self.config.generator_loss)}
        raise ValueError(f"optimizer must be 'discriminator' or 'generator', got {optimizer!r}")

    sampler_options = {"temperature": "scale of the noise z ~ N(0, T^2 I) (default 1.0; lower: less varied, cleaner)"}

    @torch.no_grad()
    def sample(self, n: int, *, generator: GeneratorArg = None, **options: Any) -> torch.Tensor:
        """x = G(z), z ~ N(0, I); (n, C, H, W) in [0, 1]. ``generator``: a torch.Generator on any
        device, or a list of n (one per sample)."""
        self.check_sampler_options(options)
        z = float(options.get("temperature", 1.0)) * self.noise(n, generator)
        return ((self.generator(z).float() + 1) / 2).clamp(0, 1)

    def example_batch(self, batch_size: int, *, generator: Optional[torch.Generator] = None) -> torch.Tensor:
        return torch.rand(batch_size, *self.image_shape, generator=generator)
