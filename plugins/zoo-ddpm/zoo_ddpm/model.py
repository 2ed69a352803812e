"""DDPM: Ho et al. (2020), "Denoising Diffusion Probabilistic Models".

Training minimizes L_simple = E_{t, x_0, eps} ||eps - eps_theta(sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps, t)||^2
(Algorithm 1). Sampling (Algorithm 2) starts at x_T ~ N(0, I) and applies
x_{t-1} = 1/sqrt(alpha_t) (x_t - beta_t / sqrt(1 - alpha_bar_t) eps_theta(x_t, t)) + sigma_t z down to x_0.
``sample`` takes a sampler object or name (``samplers.py``): 'ddpm' (Algorithm 2, or its posterior step
over a subsequence of timesteps) or 'ddim' (Song et al. 2021, any eta). Images are in [-1, 1] inside
the model; ``sample`` returns [0, 1].
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal, Mapping, Optional

import torch
import torch.nn.functional as F
from pydantic import Field, field_validator

from zoo_core.config import ZooConfig
from zoo_core.generator import Generator

from zoo_core.progress import progress_bar

from .samplers import Sampler, gaussian, make_sampler
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
    # The three fields below default to the behaviour of the zoo's first DDPM weights (ddpm-mnist,
    # ddpm-cifar-tiny); Ho et al.'s code (and its diffusers port) uses the values named.
    norm_eps: float = Field(1e-5, gt=0, description="epsilon of every GroupNorm (Ho et al.'s code: 1e-6).")
    frequency_shift: int = Field(
        0, ge=0, le=1, description="Time-embedding frequencies 10000^(-i / (half - frequency_shift)) (Ho et al.: 1)."
    )
    same_padding_downsample: bool = Field(
        False, description="Stride-2 downsampling pads (0, 1, 0, 1) and convolves unpadded, TensorFlow's 'SAME' "
                           "(Ho et al.: true); false pads 1 on every side."
    )

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
                         config.num_res_blocks, config.attention_resolutions, config.dropout, config.norm_groups,
                         norm_eps=config.norm_eps, frequency_shift=config.frequency_shift,
                         same_padding_downsample=config.same_padding_downsample)
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

    sampler_options: ClassVar[Mapping[str, str]] = {
        "sampler": "'ddpm' (ancestral, Ho et al. Algorithm 2; default) or 'ddim' (Song et al. 2021), or a Sampler object",
        "num_inference_steps": "timesteps visited (ddpm: all T by default; ddim: 50)",
        "timestep_spacing": "'leading' (default), 'trailing' or 'linspace': which timesteps a shorter walk visits",
        "eta": "ddim only: 0 deterministic (default), 1 the ancestral beta_tilde step",
        "variance": "ddpm only: sigma^2 = 'beta' or 'beta_tilde' (default: the model's config)",
        "clip_denoised": "clip the implied x_0 to [-1, 1] at each step (default true, as Ho et al.'s sampler)",
        "use_clipped_model_output": "ddim only: recompute eps from the clipped x_0 (default false, as diffusers)",
        "return_trajectory": "also return every intermediate x_t in [0, 1], as (steps + 1, n, C, H, W)",
    }

    @torch.no_grad()
    def sample(self, n: int, *, generator: Any = None, sampler: str | Sampler = "ddpm",
               return_trajectory: bool = False, **options) -> torch.Tensor:
        """Draw n images, (n, C, H, W) in [0, 1]: x_T ~ N(0, I), then the sampler's steps down to x_0.

        sampler: 'ddpm' or 'ddim' with the options of ``sampler_options`` (e.g. ``sampler="ddim",
            num_inference_steps=50, eta=0.0``), or a ``DDPMSampler``/``DDIMSampler`` object.
        generator: a torch.Generator on any device (noise is drawn there and moved to the model), or
            a list of n generators, one per sample.
        """
        self.check_sampler_options(options)
        sampler = make_sampler(sampler, options)
        T = self.config.num_train_timesteps
        shape = (n, *self.image_shape)
        # 1. x_T ~ N(0, I)
        x = gaussian(shape, generator, self.device, self.dtype)
        trajectory = [x]
        # 2. the timesteps to visit, from the noisiest down
        timesteps = sampler.timesteps(T)
        for i, t in enumerate(progress_bar(timesteps, desc=f"{sampler.name} sampling", unit="step")):
            t_prev = timesteps[i + 1] if i + 1 < len(timesteps) else -1
            # 3. predict the noise in x_t
            eps = self.eps_theta(x, torch.full((n,), t, device=self.device, dtype=torch.long))
            # 4. x_t -> x_t' (z ~ N(0, I) where the step is stochastic)
            noise = gaussian(shape, generator, self.device, self.dtype) if sampler.adds_noise(self.scheduler, t, t_prev) else None
            x = sampler.step(self.scheduler, eps, t, t_prev, x, noise)
            if return_trajectory:
                trajectory.append(x)
        # 5. [-1, 1] -> [0, 1]
        images = ((x.float() + 1) / 2).clamp(0, 1)
        if return_trajectory:
            return images, ((torch.stack(trajectory).float() + 1) / 2).clamp(0, 1)
        return images

    def example_batch(self, batch_size: int, *, generator: Optional[torch.Generator] = None) -> torch.Tensor:
        return torch.rand(batch_size, *self.image_shape, generator=generator)
