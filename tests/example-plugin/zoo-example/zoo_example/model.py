"""The simplest image generator there is: every pixel an independent Gaussian."""

import math
from typing import Any

import torch
from pydantic import Field
from torch import nn

from zoo_core.config import ZooConfig
from zoo_core.generator import Generator
from zoo_core.noise import GeneratorArg, randn_tensor


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

    # Every keyword option of ``sample`` is declared here, with one line of help: ``zoo sample
    # --option`` lists them, and check_sampler_options refuses any other name (with a suggestion).
    sampler_options = {"temperature": "scale of every pixel's standard deviation (default 1.0)"}

    def sample(self, n: int, *, generator: GeneratorArg = None, **options: Any) -> torch.Tensor:
        self.check_sampler_options(options)
        # randn_tensor draws on the generator's device, then moves: a seeded CPU generator gives the
        # same samples on any device; a list of n generators gives one per sample.
        noise = randn_tensor((n, *self.mu.shape), generator=generator, device=self.mu.device, dtype=self.mu.dtype)
        sigma = float(options.get("temperature", 1.0)) * self.log_sigma.exp()
        return (self.mu + sigma * noise).clamp(0, 1)

    def example_batch(self, batch_size, *, generator=None):
        return torch.rand((batch_size, *self.mu.shape), generator=generator)
