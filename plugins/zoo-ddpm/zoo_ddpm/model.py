"""DDPM: Ho et al. (2020), "Denoising Diffusion Probabilistic Models".

Training minimizes L_simple = E_{t, x_0, eps} ||eps - eps_theta(sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps, t)||^2
(Algorithm 1). Sampling (Algorithm 2) starts at x_T ~ N(0, I) and applies
x_{t-1} = 1/sqrt(alpha_t) (x_t - beta_t / sqrt(1 - alpha_bar_t) eps_theta(x_t, t)) + sigma_t z down to x_0;
``num_inference_steps`` < T walks an evenly strided subsequence of timesteps instead (Nichol & Dhariwal
2021; DDIM of Song et al. 2021 with eta = 0). Images are in [-1, 1] inside the model; ``sample``
returns [0, 1].
"""

from __future__ import annotations

from typing import Literal, Optional

import torch
import torch.nn.functional as F
from pydantic import Field, field_validator

from zoo_core.config import ZooConfig
from zoo_core.generator import Generator

from .scheduler import DDPMScheduler
from .unet import UNet


class DDPMConfig(ZooConfig):
    """Hyperparameters of a DDPM: the image, the noise schedule, and the UNet."""

    image_channels: int = Field(3, ge=1, description="Channels of the images (3 for CIFAR-10, 1 for MNIST).")
    image_size: int = Field(32, ge=4, description="Height and width; divisible by 2^(len(channel_mults) - 1).")
    num_train_timesteps: int = Field(1000, ge=2, description="T, the length of the forward process (paper: 1000).")
    beta_schedule: Literal["linear", "cosine"] = Field(
        "linear", description="'linear' from beta_start to beta_end (Ho et al.); 'cosine' (Nichol & Dhariwal 2021)."
    )
    beta_start: float = Field(1e-4, gt=0, lt=1, description="beta_1 of the linear schedule (paper: 1e-4).")
    beta_end: float = Field(0.02, gt=0, lt=1, description="beta_T of the linear schedule (paper: 0.02).")
    variance: Literal["beta", "beta_tilde"] = Field(
        "beta", description="sigma_t^2 of the reverse step: beta_t or the posterior variance beta_tilde_t (both in the paper)."
    )
    base_channels: int = Field(32, ge=1, description="UNet width at full resolution (paper: 128).")
    channel_mults: tuple[int, ...] = Field((1, 2, 2), min_length=1, description="Width multiplier of each UNet level.")
    num_res_blocks: int = Field(1, ge=1, description="Residual blocks per level (paper: 2).")
    attention_resolutions: tuple[int, ...] = Field((8,), description="Resolutions that get self-attention (paper: 16).")
    dropout: float = Field(0.0, ge=0, lt=1, description="Dropout in the residual blocks (paper: 0.1 on CIFAR-10).")
    norm_groups: int = Field(8, ge=1, description="Groups of every GroupNorm (paper: 32); must divide every width.")

    @field_validator("channel_mults")
    @classmethod
    def _positive(cls, value):
        if any(m < 1 for m in value):
            raise ValueError(f"channel_mults must be positive, got {value}")
        return value


class DDPM(Generator):
    """eps_theta (a UNet) plus the fixed noise schedule (``DDPMScheduler``, non-persistent buffers)."""

    family = "ddpm"
    config_class = DDPMConfig

    def __init__(self, config: DDPMConfig):
        super().__init__(config)
        levels = len(config.channel_mults)
        if config.image_size % 2 ** (levels - 1):
            raise ValueError(f"image_size {config.image_size} must be divisible by 2^{levels - 1} for {levels} UNet levels")
        widths = {config.base_channels * m for m in config.channel_mults}
        if any(w % config.norm_groups for w in widths):
            raise ValueError(f"norm_groups {config.norm_groups} must divide every UNet width {sorted(widths)}")
        self.scheduler = DDPMScheduler(config.num_train_timesteps, config.beta_schedule, config.beta_start,
                                       config.beta_end, config.variance)
        self.unet = UNet(config.image_channels, config.image_size, config.base_channels, config.channel_mults,
                         config.num_res_blocks, config.attention_resolutions, config.dropout, config.norm_groups)
        self.image_shape = (config.image_channels, config.image_size, config.image_size)

    def eps_theta(self, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """The predicted noise."""
        return self.unet(x_t, t)

    def training_step(self, batch, *, optimizer: str = "main") -> dict[str, torch.Tensor]:
        """L_simple (Algorithm 1): t ~ U{1..T}, eps ~ N(0, I), ||eps - eps_theta(x_t, t)||^2 averaged."""
        x0 = batch[0] if isinstance(batch, (list, tuple)) else batch
        x0 = x0 * 2 - 1  # [0, 1] -> [-1, 1]
        t = torch.randint(0, self.config.num_train_timesteps, (x0.shape[0],), device=x0.device)
        eps = torch.randn_like(x0)
        x_t = self.scheduler.add_noise(x0, eps, t)
        return {"loss": F.mse_loss(self.eps_theta(x_t, t), eps)}

    @torch.no_grad()
    def sample(self, n: int, *, generator: Optional[torch.Generator] = None, num_inference_steps: Optional[int] = None,
               eta: float = 1.0, clip_denoised: bool = True, return_trajectory: bool = False, **_) -> torch.Tensor:
        """Algorithm 2, returning (n, C, H, W) in [0, 1].

        num_inference_steps: None or T: ancestral sampling over all T steps. Fewer: an evenly strided
            subsequence of timesteps with ``scheduler.step_strided`` (eta = 1: stochastic, eta = 0: DDIM).
        clip_denoised: clip the implied x_0 to [-1, 1] at each step (Ho et al.'s sampler does).
        return_trajectory: also return the intermediate x_t in [0, 1], as (steps + 1, n, C, H, W).
        """
        T = self.config.num_train_timesteps
        steps = T if num_inference_steps is None else int(num_inference_steps)
        if not 1 <= steps <= T:
            raise ValueError(f"num_inference_steps must be between 1 and T={T}, got {num_inference_steps}")
        # 1. x_T ~ N(0, I)
        x = torch.randn(n, *self.image_shape, generator=generator, device=self.device, dtype=self.dtype)
        trajectory = [x]
        # 2. the timesteps to visit, from T-1 down to 0 (0-indexed)
        timesteps = list(range(T - 1, -1, -1)) if steps == T else \
            torch.linspace(T - 1, 0, steps).round().long().tolist()
        for i, t in enumerate(timesteps):
            # 3. predict the noise in x_t
            eps = self.eps_theta(x, torch.full((n,), t, device=self.device, dtype=torch.long))
            # 4. x_t -> x_{t-1} (or to the next timestep of the subsequence)
            if steps == T:
                x = self.scheduler.step(eps, t, x, generator=generator, clip_denoised=clip_denoised)
            else:
                t_prev = timesteps[i + 1] if i + 1 < len(timesteps) else -1
                x = self.scheduler.step_strided(eps, t, t_prev, x, eta=eta, generator=generator, clip_denoised=clip_denoised)
            if return_trajectory:
                trajectory.append(x)
        # 5. [-1, 1] -> [0, 1]
        images = ((x.float() + 1) / 2).clamp(0, 1)
        if return_trajectory:
            return images, ((torch.stack(trajectory).float() + 1) / 2).clamp(0, 1)
        return images

    def example_batch(self, batch_size: int, *, generator: Optional[torch.Generator] = None) -> torch.Tensor:
        return torch.rand(batch_size, *self.image_shape, generator=generator)
