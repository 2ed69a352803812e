"""Variational autoencoder: Kingma & Welling (2013), "Auto-Encoding Variational Bayes", and the
importance-weighted autoencoder bound of Burda, Grosse & Salakhutdinov (2015), "Importance Weighted
Autoencoders".

The encoder outputs the mean mu and the log-variance log sigma^2 of q_phi(z|x) = N(mu, diag sigma^2);
the prior is p(z) = N(0, I); the decoder outputs the parameters of p_theta(x|z) (Bernoulli logits,
or a Gaussian mean with one learned log-variance). Training maximizes

    ELBO = E_{z ~ q_phi(z|x)}[log p_theta(x|z)] - KL(q_phi(z|x) || p(z))

with z = mu + sigma * eps, eps ~ N(0, I) (the reparameterization trick) and the closed-form KL
between diagonal Gaussians (Appendix B of the paper). With ``objective="iwae"`` it maximizes the
k-sample bound of Burda et al. (Eq. 8)

    L_k = E_{z_1..z_k ~ q(z|x)}[log 1/k sum_i w_i],   w_i = p(x, z_i) / q(z_i|x),

which is the ELBO for k = 1 and tightens towards log p(x) as k grows; the same estimator with
k = 5000 is the test log-likelihood of the paper's tables (``zoo_vae.metrics.nll``).
"""

from __future__ import annotations

import math
from typing import Any, Literal, Optional

import torch
import torch.nn.functional as F
from pydantic import Field, model_validator
from torch import nn

from zoo_core.config import ZooConfig
from zoo_core.generator import Generator
from zoo_core.noise import GeneratorArg, randn_tensor

LOG_2PI = math.log(2 * math.pi)
INTERPOLATION_IMAGE = "interpolation.png"


class VAEConfig(ZooConfig):
    """Hyperparameters of a VAE."""

    image_channels: int = Field(1, ge=1, description="Channels of the images (1 for MNIST).")
    image_size: int = Field(28, ge=4, description="Height and width of the (square) images; a multiple of 4 for 'conv'.")
    architecture: Literal["mlp", "conv"] = Field(
        "mlp", description="'mlp': one hidden layer each way, as in the paper; 'conv': two stride-2 convolutions each way."
    )
    hidden_dim: int = Field(400, ge=1, description="Hidden units of the MLP (paper: 400 for MNIST), or the conv width of the first layer.")
    hidden_layers: int = Field(
        1, ge=1, description="'mlp': hidden layers of hidden_dim units on each side (Burda et al.: 2 of 200)."
    )
    activation: Literal["relu", "tanh", "softplus", "elu", "gelu"] = Field(
        "relu", description="Nonlinearity of the hidden layers (Burda et al.: tanh)."
    )
    latent_dim: int = Field(20, ge=1, description="Dimension of z (the paper shows 2 to 200 for MNIST).")
    likelihood: Literal["bernoulli", "gaussian"] = Field(
        "bernoulli",
        description="p(x|z): 'bernoulli' (binary cross-entropy on intensities in [0, 1]) or 'gaussian' "
        "(mean from the decoder, one learned log-variance).",
    )
    encoder_sigma: Literal["log_variance", "exp"] = Field(
        "log_variance", description="What the encoder's sigma layer outputs: 'log_variance' (log sigma^2, Kingma & "
        "Welling) or 'exp' (a, with sigma = exp(a), Burda et al.).",
    )
    output_bias_init: Literal["default", "data_mean"] = Field(
        "default", description="The decoder's last bias at the start of training: PyTorch's default, or 'data_mean': "
        "logit of the training images' mean, per pixel (Burda et al.; set before the first step, bernoulli only).",
    )
    objective: Literal["elbo", "iwae"] = Field(
        "elbo", description="Training objective: 'elbo' (one z per image, closed-form KL) or 'iwae' (the k-sample "
        "importance-weighted bound of Burda et al., Eq. 8).",
    )
    k: int = Field(1, ge=1, description="Importance samples per image of the 'iwae' objective (paper: 1, 5, 50).")

    @model_validator(mode="after")
    def _check(self):
        if self.objective == "elbo" and self.k != 1:
            raise ValueError(f"k={self.k} needs objective='iwae' (the 'elbo' objective draws one z per image)")
        if self.output_bias_init == "data_mean" and self.likelihood != "bernoulli":
            raise ValueError("output_bias_init='data_mean' sets Bernoulli logits: it needs likelihood='bernoulli'")
        if self.architecture == "conv" and self.hidden_layers != 1:
            raise ValueError("hidden_layers applies to architecture='mlp' only")
        return self


ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh, "softplus": nn.Softplus, "elu": nn.ELU, "gelu": nn.GELU}


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
        act = ACTIVATIONS[config.activation]
        if config.architecture == "mlp":
            pixels = c * s * s
            # pixels -> h (-> h ...) -> (mu, sigma); z -> h (-> h ...) -> pixels. One hidden layer and ReLU
            # give the parameter names of the first vae-mnist, so its weights keep loading.
            encoder: list[nn.Module] = [nn.Flatten()]
            decoder: list[nn.Module] = []
            for i in range(config.hidden_layers):
                encoder += [nn.Linear(pixels if i == 0 else h, h), act()]
                decoder += [nn.Linear(d if i == 0 else h, h), act()]
            self.encoder = nn.Sequential(*encoder)
            self.to_mu, self.to_log_sigma2 = nn.Linear(h, d), nn.Linear(h, d)
            self.decoder = nn.Sequential(*decoder, nn.Linear(h, pixels), nn.Unflatten(1, self.image_shape))
        else:
            if s % 4:
                raise ValueError(f"architecture='conv' needs image_size divisible by 4, got {s}")
            q = s // 4
            self.encoder = nn.Sequential(
                nn.Conv2d(c, h, 4, 2, 1), act(), nn.Conv2d(h, 2 * h, 4, 2, 1), act(), nn.Flatten()
            )
            self.to_mu, self.to_log_sigma2 = nn.Linear(2 * h * q * q, d), nn.Linear(2 * h * q * q, d)
            self.decoder = nn.Sequential(
                nn.Linear(d, 2 * h * q * q), act(), nn.Unflatten(1, (2 * h, q, q)),
                nn.ConvTranspose2d(2 * h, h, 4, 2, 1), act(), nn.ConvTranspose2d(h, c, 4, 2, 1),
            )
        if config.likelihood == "gaussian":
            # log sigma_x^2 of p(x|z) = N(decoder(z), sigma_x^2 I); learned, starting at sigma_x = 0.1
            self.log_sigma2_x = nn.Parameter(torch.tensor(math.log(0.01)))

    # -- the paper's pieces -------------------------------------------------------------------

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """q_phi(z|x): returns (mu, log sigma^2), each (N, latent_dim)."""
        hidden = self.encoder(x)
        out = self.to_log_sigma2(hidden)
        # Burda et al.'s sigma = exp(a) is log sigma^2 = 2a
        return self.to_mu(hidden), 2 * out if self.config.encoder_sigma == "exp" else out

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
        """log p_theta(x|z) per image, summed over pixels (nats); ``decoded`` may have extra leading
        dimensions (k samples per image), over which ``x`` is broadcast."""
        if self.config.likelihood == "bernoulli":
            # log Bern(x; sigmoid(l)) = x l - softplus(l): the same as -BCE-with-logits, in two cheaper passes
            return (x * decoded).flatten(-3).sum(-1) - F.softplus(decoded).flatten(-3).sum(-1)
        log_sigma2 = self.log_sigma2_x
        return -0.5 * (LOG_2PI + log_sigma2 + (x - decoded).pow(2) / log_sigma2.exp()).flatten(-3).sum(-1)

    def elbo(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """One-sample ELBO per image: {"elbo", "reconstruction" (E log p(x|z)), "kl"}, each (N,)."""
        mu, log_sigma2 = self.encode(x)
        z = self.reparameterize(mu, log_sigma2)
        reconstruction = self.log_likelihood(x, self.decode_logits(z))
        kl = gaussian_kl(mu, log_sigma2)
        return {"elbo": reconstruction - kl, "reconstruction": reconstruction, "kl": kl}

    def log_weights(self, x: torch.Tensor, k: int, *, encoded: Optional[tuple[torch.Tensor, torch.Tensor]] = None,
                    eps: Optional[torch.Tensor] = None) -> torch.Tensor:
        """log w_i = log p(x|z_i) + log p(z_i) - log q(z_i|x) for z_1..z_k ~ q(z|x), shape (k, N):
        the k samples of every image go through the decoder as one batch of k * N."""
        mu, log_sigma2 = self.encode(x) if encoded is None else encoded
        if eps is None:
            eps = torch.randn((k, *mu.shape), device=mu.device, dtype=mu.dtype)
        z = self.reparameterize(mu, log_sigma2, eps)  # (k, N, d)
        decoded = self.decode_logits(z.reshape(k * x.shape[0], -1))
        log_p_x_given_z = self.log_likelihood(x, decoded.view(k, *x.shape))
        log_p_z = gaussian_log_density(z, torch.zeros_like(z), torch.zeros_like(z))
        log_q_z = gaussian_log_density(z, mu, log_sigma2)
        return log_p_x_given_z + log_p_z - log_q_z

    def iwae_bound(self, x: torch.Tensor, k: int) -> torch.Tensor:
        """L_k = log 1/k sum_i w_i per image (Burda et al., Eq. 8), with gradients; k = 1 is a one-sample ELBO."""
        return torch.logsumexp(self.log_weights(x, k), dim=0) - math.log(k)

    @torch.no_grad()
    def importance_log_likelihood(self, x: torch.Tensor, num_samples: int = 100, *, chunk: Optional[int] = None) -> torch.Tensor:
        """log p(x) ~= log 1/K sum_k p(x|z_k) p(z_k) / q(z_k|x), z_k ~ q(z|x) (Burda et al. 2015), per image.

        A lower bound in expectation that tightens as K grows; K = 1 is the ELBO. The K samples are
        decoded ``chunk`` at a time (default: all at once), combined with a running log-sum-exp.
        """
        return log_mean_exp_chunks(self, x, num_samples, chunk=chunk)[0]

    # -- the Generator interface --------------------------------------------------------------

    def training_step(self, batch, *, optimizer: str = "main") -> dict[str, torch.Tensor]:
        """Minimize the negative ELBO, averaged over the batch (nats per image)."""
        x = batch[0] if isinstance(batch, (list, tuple)) else batch
        if self.config.objective == "iwae":
            return {"loss": -self.iwae_bound(x, self.config.k).mean()}
        terms = self.elbo(x)
        return {
            "loss": -terms["elbo"].mean(),
            "reconstruction": -terms["reconstruction"].mean().detach(),
            "kl": terms["kl"].mean().detach(),
        }

    def on_fit_start(self, batches) -> None:
        """``output_bias_init="data_mean"``: the decoder's last bias = logit of the training images' mean
        (Burda et al.'s initialization), the mean clipped to [1e-3, 1 - 1e-3] for pixels that are always 0."""
        if self.config.output_bias_init != "data_mean":
            return
        total, count = None, 0
        for batch in batches:
            x = (batch[0] if isinstance(batch, (list, tuple)) else batch).double()
            total = x.sum(0) if total is None else total + x.sum(0)
            count += x.shape[0]
        mean = (total / count).clamp(1e-3, 1 - 1e-3).flatten()
        last = [m for m in self.decoder if isinstance(m, (nn.Linear, nn.ConvTranspose2d))][-1]
        if isinstance(last, nn.ConvTranspose2d):  # one bias per channel
            mean = mean.view(self.image_shape[0], -1).mean(1)
        last.bias.copy_(torch.logit(mean).to(last.bias))

    sampler_options = {"temperature": "scale of the prior's standard deviation, z ~ N(0, T^2 I) (default 1.0)"}

    @torch.no_grad()
    def sample(self, n: int, *, generator: GeneratorArg = None, **options: Any) -> torch.Tensor:
        """z ~ N(0, I) -> the decoder's mean, (n, C, H, W) in [0, 1]. ``generator``: a
        torch.Generator on any device, or a list of n (one per sample)."""
        self.check_sampler_options(options)
        z = randn_tensor((n, self.config.latent_dim), generator=generator, device=self.device, dtype=self.dtype)
        return self.decode(float(options.get("temperature", 1.0)) * z).float()

    @torch.no_grad()
    def interpolate(self, rows: int = 6, steps: int = 10, *, seed: int = 0) -> torch.Tensor:
        """Decoded walks through the latent space, (rows * steps, C, H, W): row r decodes
        z = slerp(z_a, z_b, t) for t = 0 .. 1 between two draws z_a, z_b ~ N(0, I) (spherical, so that
        every z has a typical norm under the prior). Images are the decoder's means."""
        generator = torch.Generator().manual_seed(seed)
        ends = torch.randn(2, rows, 1, self.config.latent_dim, generator=generator, dtype=torch.float64)
        t = torch.linspace(0, 1, steps, dtype=torch.float64)[None, :, None]
        cos = (ends[0] * ends[1]).sum(-1, keepdim=True) / (ends[0].norm(dim=-1, keepdim=True) * ends[1].norm(dim=-1, keepdim=True))
        angle = torch.arccos(cos.clamp(-1, 1))
        z = (torch.sin((1 - t) * angle) * ends[0] + torch.sin(t * angle) * ends[1]) / torch.sin(angle)
        return self.decode(z.reshape(rows * steps, -1).to(self.device, self.dtype)).float()

    def write_card_figures(self, directory) -> list[tuple[str, str]]:
        from pathlib import Path

        from zoo_core.images import save_grid

        was_training = self.training
        self.eval()
        try:
            grid = self.interpolate(rows=6, steps=10)
        finally:
            self.train(was_training)
        save_grid(grid.cpu(), Path(directory) / INTERPOLATION_IMAGE, nrow=10)
        mean = "Bernoulli means (sigmoid of the decoder's logits)" if self.config.likelihood == "bernoulli" else "Gaussian means"
        return [(INTERPOLATION_IMAGE, f"Latent interpolations (`{INTERPOLATION_IMAGE}`): each row decodes z = slerp(z_a, "
                                      f"z_b, t), t = 0 .. 1 in 10 steps, between two draws from the prior (seed 0). These "
                                      f"images and the samples above are {mean} of p(x|z), not binary draws.")]

    def example_batch(self, batch_size: int, *, generator: Optional[torch.Generator] = None) -> torch.Tensor:
        return torch.rand(batch_size, *self.image_shape, generator=generator)


@torch.no_grad()
def log_mean_exp_chunks(model: VAE, x: torch.Tensor, k: int, *, chunk: Optional[int] = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(log 1/k sum_i w_i, 1/k sum_i log w_i) per image, drawing the k importance samples ``chunk`` at a time:
    the importance-sampled log p(x) and the k-sample average of the one-sample ELBO."""
    encoded = model.encode(x)
    chunk = min(k, chunk or k)
    running_lse, sum_log_w = None, torch.zeros(x.shape[0], dtype=torch.float64, device=x.device)
    for start in range(0, k, chunk):
        log_w = model.log_weights(x, min(chunk, k - start), encoded=encoded).double()
        lse = torch.logsumexp(log_w, dim=0)
        running_lse = lse if running_lse is None else torch.logaddexp(running_lse, lse)
        sum_log_w += log_w.sum(0)
    return running_lse - math.log(k), sum_log_w / k
