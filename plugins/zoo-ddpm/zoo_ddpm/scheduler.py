"""The forward process of DDPM and one reverse step: Ho et al. (2020), "Denoising Diffusion
Probabilistic Models"; cosine schedule from Nichol & Dhariwal (2021), "Improved DDPM".

Timesteps are 0-indexed here: index t = 0..T-1 is the paper's t = 1..T. With alpha_t = 1 - beta_t
and alpha_bar_t = prod_{s<=t} alpha_s:

    q(x_t | x_0)          = N(sqrt(alpha_bar_t) x_0, (1 - alpha_bar_t) I)
    q(x_{t-1} | x_t, x_0) = N(mu_tilde_t, beta_tilde_t I),
        beta_tilde_t = (1 - alpha_bar_{t-1}) / (1 - alpha_bar_t) beta_t,
        mu_tilde_t   = sqrt(alpha_bar_{t-1}) beta_t / (1 - alpha_bar_t) x_0
                       + sqrt(alpha_t) (1 - alpha_bar_{t-1}) / (1 - alpha_bar_t) x_t.

The schedule is held in non-persistent buffers: it is recomputed from the config, never saved.
"""

from __future__ import annotations

import math
from typing import Optional

import torch
from torch import nn

BETA_SCHEDULES = ("linear", "cosine")
VARIANCES = ("beta", "beta_tilde")


class ScheduleError(ValueError):
    """An unknown beta schedule or variance choice."""


def make_beta_schedule(kind: str, num_timesteps: int, beta_start: float = 1e-4, beta_end: float = 0.02,
                       cosine_s: float = 0.008) -> torch.Tensor:
    """beta_1..beta_T (float64). 'linear': evenly spaced from beta_start to beta_end (Ho et al.);
    'cosine': alpha_bar(t) = f(t)/f(0), f(t) = cos^2(((t/T + s)/(1 + s)) pi/2), beta_t clipped at 0.999."""
    if kind == "linear":
        return torch.linspace(beta_start, beta_end, num_timesteps, dtype=torch.float64)
    if kind == "cosine":
        steps = torch.arange(num_timesteps + 1, dtype=torch.float64) / num_timesteps
        f = torch.cos((steps + cosine_s) / (1 + cosine_s) * math.pi / 2) ** 2
        alpha_bar = f / f[0]
        return (1 - alpha_bar[1:] / alpha_bar[:-1]).clamp(max=0.999)
    raise ScheduleError(f"beta_schedule must be one of {BETA_SCHEDULES}, got {kind!r}")


def _gather(values: torch.Tensor, t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """values[t], shaped to broadcast against x: (N, 1, 1, ...)."""
    return values[t].to(x.dtype).reshape(-1, *([1] * (x.ndim - 1)))


class DDPMScheduler(nn.Module):
    """The noise schedule (alpha, alpha_bar, beta_tilde, posterior coefficients), q(x_t|x_0) and p(x_{t-1}|x_t) steps."""

    def __init__(self, num_timesteps: int = 1000, beta_schedule: str = "linear", beta_start: float = 1e-4,
                 beta_end: float = 0.02, variance: str = "beta"):
        super().__init__()
        if variance not in VARIANCES:
            raise ScheduleError(f"variance must be one of {VARIANCES}, got {variance!r}")
        self.num_timesteps, self.variance = num_timesteps, variance
        betas = make_beta_schedule(beta_schedule, num_timesteps, beta_start, beta_end)
        alphas = 1 - betas
        alpha_bars = torch.cumprod(alphas, 0)
        alpha_bars_prev = torch.cat([torch.ones(1, dtype=torch.float64), alpha_bars[:-1]])
        posterior_variance = (1 - alpha_bars_prev) / (1 - alpha_bars) * betas  # beta_tilde_t
        schedule = {
            "betas": betas,
            "alphas": alphas,
            "alpha_bars": alpha_bars,
            "alpha_bars_prev": alpha_bars_prev,
            "posterior_variance": posterior_variance,
            # log beta_tilde with beta_tilde_1 = 0 replaced by beta_tilde_2, as in Ho et al.'s code
            "posterior_log_variance_clipped": torch.log(torch.cat([posterior_variance[1:2], posterior_variance[1:]])),
            "posterior_mean_coef1": alpha_bars_prev.sqrt() * betas / (1 - alpha_bars),
            "posterior_mean_coef2": alphas.sqrt() * (1 - alpha_bars_prev) / (1 - alpha_bars),
            # sigma_t^2 of the reverse step; 'beta' uses beta_tilde_1 at t = 1 so the log stays finite (Ho et al.)
            "model_variance": torch.cat([posterior_variance[1:2], betas[1:]]) if variance == "beta" else posterior_variance,
        }
        for name, value in schedule.items():
            self.register_buffer(name, value.float(), persistent=False)
        #: alpha_bar_t in float64 on the CPU, for the samplers' scalar coefficients (see samplers.py)
        self.alpha_bars64 = alpha_bars

    # -- forward process ----------------------------------------------------------------------

    def add_noise(self, x0: torch.Tensor, eps: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """x_t = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps, a sample of q(x_t | x_0)."""
        alpha_bar = _gather(self.alpha_bars, t, x0)
        return alpha_bar.sqrt() * x0 + (1 - alpha_bar).sqrt() * eps

    def posterior(self, x0: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean mu_tilde_t and variance beta_tilde_t of q(x_{t-1} | x_t, x_0)."""
        mean = _gather(self.posterior_mean_coef1, t, x_t) * x0 + _gather(self.posterior_mean_coef2, t, x_t) * x_t
        return mean, _gather(self.posterior_variance, t, x_t)

    def predict_x0(self, x_t: torch.Tensor, t: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        """x_0 = (x_t - sqrt(1 - alpha_bar_t) eps) / sqrt(alpha_bar_t)."""
        alpha_bar = _gather(self.alpha_bars, t, x_t)
        return (x_t - (1 - alpha_bar).sqrt() * eps) / alpha_bar.sqrt()

    # -- reverse process ----------------------------------------------------------------------

    def model_mean(self, eps_pred: torch.Tensor, t: torch.Tensor, x_t: torch.Tensor, clip_denoised: bool = False) -> torch.Tensor:
        """mu_theta(x_t, t) = 1/sqrt(alpha_t) (x_t - beta_t / sqrt(1 - alpha_bar_t) eps_theta).

        With ``clip_denoised`` the implied x_0 is clipped to [-1, 1] first and mu_tilde(x_0, x_t) is used
        (the same value when no clipping happens), as in Ho et al.'s sampler.
        """
        if clip_denoised:
            return self.posterior(self.predict_x0(x_t, t, eps_pred).clamp(-1, 1), x_t, t)[0]
        beta, alpha_bar = _gather(self.betas, t, x_t), _gather(self.alpha_bars, t, x_t)
        return (x_t - beta / (1 - alpha_bar).sqrt() * eps_pred) / _gather(self.alphas, t, x_t).sqrt()

    def step(self, eps_pred: torch.Tensor, t: int, x_t: torch.Tensor, *, generator: Optional[torch.Generator] = None,
             noise: Optional[torch.Tensor] = None, clip_denoised: bool = False) -> torch.Tensor:
        """One ancestral step x_t -> x_{t-1} = mu_theta(x_t, t) + sigma_t z, z ~ N(0, I) (no noise at t = 0).

        sigma_t^2 is beta_t or beta_tilde_t (``variance``).
        """
        t_batch = torch.full((x_t.shape[0],), t, device=x_t.device, dtype=torch.long)
        mean = self.model_mean(eps_pred, t_batch, x_t, clip_denoised)
        if t == 0:
            return mean
        if noise is None:
            noise = torch.randn(x_t.shape, generator=generator, device=x_t.device, dtype=x_t.dtype)
        return mean + _gather(self.model_variance, t_batch, x_t).sqrt() * noise


# -- the variational bound (Ho et al. 2020, eq. 5) --------------------------------------------


def normal_kl(mean1, log_var1, mean2, log_var2):
    """KL(N(mean1, exp(log_var1)) || N(mean2, exp(log_var2))), elementwise, in nats."""
    return 0.5 * (-1.0 + log_var2 - log_var1 + torch.exp(log_var1 - log_var2) + (mean1 - mean2) ** 2 * torch.exp(-log_var2))


def _standard_normal_cdf(x):
    return 0.5 * (1.0 + torch.erf(x / math.sqrt(2.0)))


def discretized_gaussian_log_likelihood(x, mean, log_scale):
    """log p(x) of the L_0 decoder: a Gaussian integrated over the bin of width 2/255 around each pixel of x in [-1, 1]
    (the edge bins extend to -inf and +inf), elementwise, in nats."""
    centred = x - mean
    inv_std = torch.exp(-log_scale)
    cdf_plus = _standard_normal_cdf(inv_std * (centred + 1.0 / 255))
    cdf_min = _standard_normal_cdf(inv_std * (centred - 1.0 / 255))
    log_cdf_plus = torch.log(cdf_plus.clamp(min=1e-12))
    log_one_minus_cdf_min = torch.log((1.0 - cdf_min).clamp(min=1e-12))
    log_delta = torch.log((cdf_plus - cdf_min).clamp(min=1e-12))
    return torch.where(x < -0.999, log_cdf_plus, torch.where(x > 0.999, log_one_minus_cdf_min, log_delta))
