"""The simplest image generator there is: every pixel an independent Gaussian."""

import math

import torch
from pydantic import Field
from torch import nn

from zoo_core.config import ZooConfig
from zoo_core.generator import Generator


class PixelGaussianConfig(ZooConfig):
    channels: int = Field(1, ge=1, description="Image channels.")
    size: int = Field(28, ge=1, description="Image height and width.")


class PixelGaussian(Generator):
    """p(x) = prod_i N(x_i; mu_i, sigma_i^2), trained by minimizing the negative log-likelihood."""

    family = "pixel-gaussian"
    config_class = PixelGaussianConfig

    def __init__(self, config: PixelGaussianConfig):
        super().__init__(config)
        shape = (config.channels, config.size, config.size)
        self.mu = nn.Parameter(torch.full(shape, 0.5))
        self.log_sigma = nn.Parameter(torch.zeros(shape))

    def training_step(self, batch, *, optimizer="main"):
        nll = self.log_sigma + 0.5 * ((batch - self.mu) / self.log_sigma.exp()) ** 2 + 0.5 * math.log(2 * math.pi)
        return {"loss": nll.sum(dim=(1, 2, 3)).mean()}

    def sample(self, n, *, generator=None, **options):
        self.check_sampler_options(options)  # it takes none: a misspelt option is an error, not ignored
        noise = torch.randn((n, *self.mu.shape), generator=generator, device=self.mu.device)
        return (self.mu + self.log_sigma.exp() * noise).clamp(0, 1)

    def example_batch(self, batch_size, *, generator=None):
        return torch.rand((batch_size, *self.mu.shape), generator=generator)
