"""Samplers: how the reverse process walks from x_T ~ N(0, I) down to x_0, as swappable objects.

A sampler chooses the timesteps to visit (``timesteps``) and takes one step from t to the next,
earlier timestep t' of that list (``step``; t' = -1 is the end, alpha_bar_{-1} = 1). Both work on
any subsequence of 0..T-1 (0-indexed: index t is the paper's t + 1):

* ``DDPMSampler``: ancestral sampling, Ho et al. (2020) Algorithm 2. Over all T steps it is the
  paper's sampler; over a subsequence it uses the same posterior q(x_t' | x_t, x_0) with
  beta = 1 - alpha_bar_t / alpha_bar_t' (as diffusers' DDPMScheduler does).
* ``DDIMSampler``: Song et al. (2021), eq. 12, with eta = 0 deterministic and eta = 1 the
  ancestral step with sigma^2 = beta_tilde.

Timestep spacings (names as in diffusers): ``linspace`` rounds an even grid from T-1 down to 0;
``leading`` is (0, k, 2k, ...) reversed with k = T // n; ``trailing`` is T-1, T-1-T/n, ... rounded.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, Mapping, Optional

import torch

SPACINGS = ("linspace", "leading", "trailing")


def inference_timesteps(num_train_timesteps: int, num_inference_steps: int, spacing: str) -> list[int]:
    """The timesteps a sampler visits, from the noisiest down, each in 0..T-1."""
    T, n = num_train_timesteps, num_inference_steps
    if not 1 <= n <= T:
        raise ValueError(f"num_inference_steps must be between 1 and T={T}, got {n}")
    if spacing == "linspace":
        steps = torch.linspace(0, T - 1, n, dtype=torch.float64).round().long().tolist()
    elif spacing == "leading":
        steps = [i * (T // n) for i in range(n)]
    elif spacing == "trailing":
        steps = [int(round(T - i * T / n)) - 1 for i in range(n)][::-1]
    else:
        raise ValueError(f"timestep_spacing must be one of {SPACINGS}, got {spacing!r}")
    return steps[::-1]


def _alpha_bars(scheduler, t: int, t_prev: int) -> tuple[float, float]:
    """alpha_bar_t and alpha_bar_t' in float64 (alpha_bar_{-1} = 1)."""
    alpha_bars = scheduler.alpha_bars64
    return float(alpha_bars[t]), float(alpha_bars[t_prev]) if t_prev >= 0 else 1.0


def _x0_from_eps(x_t: torch.Tensor, eps: torch.Tensor, alpha_bar: float) -> torch.Tensor:
    """x_0 = (x_t - sqrt(1 - alpha_bar_t) eps) / sqrt(alpha_bar_t) (eq. 4 solved for x_0)."""
    return (x_t - math.sqrt(1 - alpha_bar) * eps) / math.sqrt(alpha_bar)


@dataclass(frozen=True)
class Sampler:
    """Common options: how many steps, their spacing, and whether the implied x_0 is clipped to [-1, 1]."""

    name: ClassVar[str]
    num_inference_steps: Optional[int] = None
    timestep_spacing: Literal["linspace", "leading", "trailing"] = "leading"
    clip_denoised: bool = True

    def timesteps(self, num_train_timesteps: int) -> list[int]:
        n = num_train_timesteps if self.num_inference_steps is None else int(self.num_inference_steps)
        return inference_timesteps(num_train_timesteps, n, self.timestep_spacing)

    def adds_noise(self, scheduler, t: int, t_prev: int) -> bool:
        """Whether ``step`` from t to t_prev needs a noise tensor z ~ N(0, I)."""
        raise NotImplementedError

    def step(self, scheduler, eps: torch.Tensor, t: int, t_prev: int, x_t: torch.Tensor,
             noise: Optional[torch.Tensor] = None) -> torch.Tensor:
        """x_t -> x_t' given the predicted noise eps_theta(x_t, t) (and z when ``adds_noise``)."""
        raise NotImplementedError

    @classmethod
    def options(cls) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(cls))


@dataclass(frozen=True)
class DDPMSampler(Sampler):
    """Ancestral sampling (Ho et al. 2020, Algorithm 2): x_t' = mu_tilde(x_0_hat, x_t) + sigma z.

    variance: sigma^2 = beta ('beta', the paper's sigma_t^2 = beta_t) or the posterior variance
    beta_tilde ('beta_tilde'); None takes the model's configured choice.
    """

    name: ClassVar[str] = "ddpm"
    variance: Optional[Literal["beta", "beta_tilde"]] = None

    def adds_noise(self, scheduler, t: int, t_prev: int) -> bool:
        return t_prev >= 0

    def step(self, scheduler, eps, t, t_prev, x_t, noise=None):
        alpha_bar, alpha_bar_prev = _alpha_bars(scheduler, t, t_prev)
        beta = 1 - alpha_bar / alpha_bar_prev  # beta_t when t' = t - 1
        x0 = _x0_from_eps(x_t, eps, alpha_bar)
        if self.clip_denoised:
            x0 = x0.clamp(-1, 1)
        # mu_tilde(x_0, x_t), eq. 7
        mean = (math.sqrt(alpha_bar_prev) * beta / (1 - alpha_bar)) * x0 \
            + (math.sqrt(1 - beta) * (1 - alpha_bar_prev) / (1 - alpha_bar)) * x_t
        if t_prev < 0:
            return mean
        beta_tilde = (1 - alpha_bar_prev) / (1 - alpha_bar) * beta
        variance = beta if (self.variance or scheduler.variance) == "beta" else beta_tilde
        return mean + math.sqrt(variance) * noise


@dataclass(frozen=True)
class DDIMSampler(Sampler):
    """DDIM (Song et al. 2021, eq. 12):
    x_t' = sqrt(alpha_bar_t') x_0_hat + sqrt(1 - alpha_bar_t' - s^2) eps + s z,
    s^2 = eta^2 (1 - alpha_bar_t') / (1 - alpha_bar_t) (1 - alpha_bar_t / alpha_bar_t').

    use_clipped_model_output: after clipping x_0_hat, recompute eps from it (off by default, as in
    diffusers' DDIMPipeline).
    """

    name: ClassVar[str] = "ddim"
    num_inference_steps: Optional[int] = 50
    eta: float = 0.0
    use_clipped_model_output: bool = False

    def _s2(self, alpha_bar: float, alpha_bar_prev: float) -> float:
        return self.eta ** 2 * (1 - alpha_bar_prev) / (1 - alpha_bar) * (1 - alpha_bar / alpha_bar_prev)

    def adds_noise(self, scheduler, t: int, t_prev: int) -> bool:
        return self.eta > 0 and self._s2(*_alpha_bars(scheduler, t, t_prev)) > 0

    def step(self, scheduler, eps, t, t_prev, x_t, noise=None):
        alpha_bar, alpha_bar_prev = _alpha_bars(scheduler, t, t_prev)
        x0 = _x0_from_eps(x_t, eps, alpha_bar)
        if self.clip_denoised:
            x0 = x0.clamp(-1, 1)
            if self.use_clipped_model_output:
                eps = (x_t - math.sqrt(alpha_bar) * x0) / math.sqrt(1 - alpha_bar)
        s2 = self._s2(alpha_bar, alpha_bar_prev)
        x_prev = math.sqrt(alpha_bar_prev) * x0 + math.sqrt(max(1 - alpha_bar_prev - s2, 0.0)) * eps
        if s2 > 0 and self.eta > 0:
            x_prev = x_prev + math.sqrt(s2) * noise
        return x_prev


SAMPLERS: dict[str, type[Sampler]] = {"ddpm": DDPMSampler, "ddim": DDIMSampler}


def make_sampler(sampler: Any, options: Mapping[str, Any]) -> Sampler:
    """A sampler object from a name ('ddpm', 'ddim') and options, or a Sampler instance (then no options)."""
    from zoo_core.errors import UnknownOptionError

    if isinstance(sampler, Sampler):
        if options:
            raise TypeError(f"options {sorted(options)} were given with a {type(sampler).__name__} object; "
                            "set them on the object instead")
        return sampler
    if sampler not in SAMPLERS:
        raise ValueError(f"unknown sampler {sampler!r}; choose one of {', '.join(SAMPLERS)} or pass a Sampler object")
    cls = SAMPLERS[sampler]
    unknown = [name for name in options if name not in cls.options()]
    if unknown:
        raise UnknownOptionError(
            f"the {sampler} sampler takes no option {', '.join(map(repr, unknown))}; its options: {', '.join(cls.options())}"
        )
    instance = cls(**options)
    if instance.timestep_spacing not in SPACINGS:
        raise ValueError(f"timestep_spacing must be one of {SPACINGS}, got {instance.timestep_spacing!r}")
    if isinstance(instance, DDIMSampler) and not 0 <= instance.eta:
        raise ValueError(f"eta must be >= 0, got {instance.eta}")
    if isinstance(instance, DDPMSampler) and instance.variance not in (None, "beta", "beta_tilde"):
        raise ValueError(f"variance must be 'beta' or 'beta_tilde', got {instance.variance!r}")
    return instance


def gaussian(shape: tuple[int, ...], generator: Any, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """N(0, I) noise of ``shape``, drawn on the generator's device and moved to ``device`` (so a CPU
    generator works for a model on any device); a list of generators draws one sample from each."""
    if isinstance(generator, (list, tuple)):
        if len(generator) != shape[0]:
            raise ValueError(f"got {len(generator)} generators for {shape[0]} samples; pass one per sample")
        return torch.cat([gaussian((1, *shape[1:]), g, device, dtype) for g in generator])
    draw_device = generator.device if generator is not None else device
    return torch.randn(shape, generator=generator, device=draw_device, dtype=dtype).to(device)
