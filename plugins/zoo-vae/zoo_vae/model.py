"""Variational autoencoder: Kingma & Welling (2013), "Auto-Encoding Variational Bayes".

The encoder outputs the mean mu and the log-variance log sigma^2 of q_phi(z|x) = N(mu, diag sigma^2);
the prior is p(z) = N(0, I); the decoder outputs the parameters of p_theta(x|z) (Bernoulli logits,
or a Gaussian mean with one learned log-variance). Training maximizes

    ELBO = E_{z ~ q_phi(z|x)}[log p_theta(x|z)] - KL(q_phi(z|x) || p(z))

with z = mu + sigma * eps, eps ~ N(0, I) (the reparameterization trick) and the closed-form KL
between diagonal Gaussians (Appendix B of the paper).
"""

from __future__ import annotations

import math
from typing import Any, Literal, Optional

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from zoo_core.config import ZooConfig
from zoo_core.generator import Generator
from zoo_core.noise import GeneratorArg, randn_tensor

LOG_2PI = math.log(2 * math.pi)


class VAEConfig(ZooConfig):
    """Hyperparameters of a VAE."""

    image_channels: int = Field(1, ge=1, description="Channels of the images (1 for MNIST).")
    image_size: int = Field(28, ge=4, description="Height and width of the (square) images; a multiple of 4 for 'conv'.")
    architecture: Literal["mlp", "conv"] = Field(
        "mlp", description="'mlp': one hidden layer each way, as in the paper; 'conv': two stride-2 convolutions each way."
    )
    hidden_dim: int = Field(400, ge=1, description="Hidden units of the MLP (paper: 400 for MNIST), or the conv width of the first layer.")
    latent_dim: int = Field(20, ge=1, description="Dimension of z (the paper shows 2 to 200 for MNIST).")
    likelihood: Literal["bernoulli", "gaussian"] = Field(
        "bernoulli",
        description="p(x|z): 'bernoulli' (binary cross-entropy on intensities in [0, 1]) or 'gaussian' "
        "(mean from the decoder, one learned log-variance).",
    )


def gaussian_kl(mu: torch.Tensor, log_sigma2: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, diag sigma^2) || N(0, I)) = -1/2 sum_j (1 + log sigma_j^2 - mu_j^2 - sigma_j^2), per row."""
    return -0.5 * (1 + log_sigma2 - mu.pow(2) - log_sigma2.exp()).sum(dim=-1)


def gaussian_log_density(z: torch.Tensor, mu: torch.Tensor, log_sigma2: torch.Tensor) -> torch.Tensor:
    """log N(z; mu, diag sigma^2), summed over the last dimension."""
    return -0.5 * (LOG_2PI + log_sigma2 + (z - mu).pow(2) / log_sigma2.exp()).sum(dim=-1)


class VAE(Generator):
    """A VAE with an MLP or a small convolutional encoder/decoder (see ``VAEConfig``)."""

    family = "vae"
    config_class = VAEConfig

    def __init__(self, config: VAEConfig):
        super().__init__(config)
        c, s, h, d = config.image_channels, config.image_size, config.hidden_dim, config.latent_dim
        self.image_shape = (c, s, s)
        if config.architecture == "mlp":
            pixels = c * s * s
            self.encoder = nn.Sequential(nn.Flatten(), nn.Linear(pixels, h), nn.ReLU())
            self.to_mu, self.to_log_sigma2 = nn.Linear(h, d), nn.Linear(h, d)
            self.decoder = nn.Sequential(
                nn.Linear(d, h), nn.ReLU(), nn.Linear(h, pixels), nn.Unflatten(1, self.image_shape)
            )
        else:
            if s % 4:
                raise ValueError(f"architecture='conv' needs image_size divisible by 4, got {s}")
            q = s // 4
            self.encoder = nn.Sequential(
                nn.Conv2d(c, h, 4, 2, 1), nn.ReLU(), nn.Conv2d(h, 2 * h, 4, 2, 1), nn.ReLU(), nn.Flatten()
            )
            self.to_mu, self.to_log_sigma2 = nn.Linear(2 * h * q * q, d), nn.Linear(2 * h * q * q, d)
            self.decoder = nn.Sequential(
                nn.Linear(d, 2 * h * q * q), nn.ReLU(), nn.Unflatten(1, (2 * h, q, q)),
                nn.ConvTranspose2d(2 * h, h, 4, 2, 1), nn.ReLU(), nn.ConvTranspose2d(h, c, 4, 2, 1),
            )
        if config.likelihood == "gaussian":
            # log sigma_x^2 of p(x|z) = N(decoder(z), sigma_x^2 I); learned, starting at sigma_x = 0.1
            self.log_sigma2_x = nn.Parameter(torch.tensor(math.log(0.01)))

    # -- the paper's pieces -------------------------------------------------------------------

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """q_phi(z|x): returns (mu, log sigma^2), each (N, latent_dim)."""
        hidden = self.encoder(x)
        return self.to_mu(hidden), self.to_log_sigma2(hidden)

    def decode_logits(self, z: torch.Tensor) -> torch.Tensor:
        """The decoder's raw output: Bernoulli logits, or the Gaussian mean."""
        return self.decoder(z)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """The mean of p_theta(x|z), as images in [0, 1]."""
        out = self.decode_logits(z)
        return torch.sigmoid(out) if self.config.likelihood == "bernoulli" else out.clamp(0, 1)

    @staticmethod
    def reparameterize(mu: torch.Tensor, log_sigma2: torch.Tensor, eps: Optional[torch.Tensor] = None) -> torch.Tensor:
        """z = mu + sigma * eps, eps ~ N(0, I)."""
        if eps is None:
            eps = torch.randn_like(mu)
        return mu + torch.exp(0.5 * log_sigma2) * eps

    def log_likelihood(self, x: torch.Tensor, decoded: torch.Tensor) -> torch.Tensor:
        """log p_theta(x|z) per image, summed over pixels (nats)."""
        if self.config.likelihood == "bernoulli":
            return -F.binary_cross_entropy_with_logits(decoded, x, reduction="none").flatten(1).sum(1)
        log_sigma2 = self.log_sigma2_x
        return -0.5 * (LOG_2PI + log_sigma2 + (x - decoded).pow(2) / log_sigma2.exp()).flatten(1).sum(1)

    def elbo(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """One-sample ELBO per image: {"elbo", "reconstruction" (E log p(x|z)), "kl"}, each (N,)."""
        mu, log_sigma2 = self.encode(x)
        z = self.reparameterize(mu, log_sigma2)
        reconstruction = self.log_likelihood(x, self.decode_logits(z))
        kl = gaussian_kl(mu, log_sigma2)
        return {"elbo": reconstruction - kl, "reconstruction": reconstruction, "kl": kl}

    @torch.no_grad()
    def importance_log_likelihood(self, x: torch.Tensor, num_samples: int = 100) -> torch.Tensor:
        """log p(x) ~= log 1/K sum_k p(x|z_k) p(z_k) / q(z_k|x), z_k ~ q(z|x) (Burda et al. 2015), per image.

        A lower bound in expectation that tightens as K grows; K = 1 is the ELBO.
        """
        mu, log_sigma2 = self.encode(x)
        log_weights = []
        for _ in range(num_samples):
            z = self.reparameterize(mu, log_sigma2)
            log_p_x_given_z = self.log_likelihood(x, self.decode_logits(z))
            log_p_z = gaussian_log_density(z, torch.zeros_like(z), torch.zeros_like(z))
            log_q_z = gaussian_log_density(z, mu, log_sigma2)
            log_weights.append(log_p_x_given_z + log_p_z - log_q_z)
        return torch.logsumexp(torch.stack(log_weights), dim=0) - math.log(num_samples)

    # -- the Generator interface --------------------------------------------------------------

    def training_step(self, batch, *, optimizer: str = "main") -> dict[str, torch.Tensor]:
        """Minimize the negative ELBO, averaged over the batch (nats per image)."""
        x = batch[0] if isinstance(batch, (list, tuple)) else batch
        terms = self.elbo(x)
        return {
            "loss": -terms["elbo"].mean(),
            "reconstruction": -terms["reconstruction"].mean().detach(),
            "kl": terms["kl"].mean().detach(),
        }

    sampler_options = {"temperature": "scale of the prior's standard deviation, z ~ N(0, T^2 I) (default 1.0)"}

    @torch.no_grad()
    def sample(self, n: int, *, generator: GeneratorArg = None, **options: Any) -> torch.Tensor:
        """z ~ N(0, I) -> the decoder's mean, (n, C, H, W) in [0, 1]. ``generator``: a
        torch.Generator on any device, or a list of n (one per sample)."""
        self.check_sampler_options(options)
        z = randn_tensor((n, self.config.latent_dim), generator=generator, device=self.device, dtype=self.dtype)
        return self.decode(float(options.get("temperature", 1.0)) * z).float()

    def example_batch(self, batch_size: int, *, generator: Optional[torch.Generator] = None) -> torch.Tensor:
        return torch.rand(batch_size, *self.image_shape, generator=generator)
