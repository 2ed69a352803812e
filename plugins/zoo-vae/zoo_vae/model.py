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

With ``latent_dims=(d1, d2)`` the model has Burda et al.'s two stochastic layers h1 (d1 units) and h2
(d2 units), each Gaussian layer an MLP of ``hidden_layers`` deterministic layers:

    q(h1, h2|x) = q(h1|x) q(h2|h1),        p(x, h1, h2) = p(x|h1) p(h1|h2) p(h2),   p(h2) = N(0, I),

    log w = log p(x|h1) + log p(h1|h2) + log p(h2) - log q(h1|x) - log q(h2|h1),
    h1 ~ q(h1|x), h2 ~ q(h2|h1), both reparameterized.

The KL of that model has no closed form: its ELBO (``objective="elbo"``) is the one-sample log w, i.e.
the k = 1 bound, whose KL term is the Monte-Carlo estimate log q(h1|x) + log q(h2|h1) - log p(h1|h2) - log p(h2).
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal, Optional, Union

import torch
import torch.nn.functional as F
from pydantic import Field, model_validator
from torch import nn

from zoo_core.config import ZooConfig
from zoo_core.generator import Generator
from zoo_core.noise import GeneratorArg, randn_tensor

LOG_2PI = math.log(2 * math.pi)
PositiveInt = Annotated[int, Field(ge=1)]
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
    latent_dim: int = Field(
        20, ge=1, description="Dimension of z (the paper shows 2 to 200 for MNIST); with latent_dims, the top "
        "layer's (h2's, the one sampled from N(0, I)): taken from latent_dims when left out.",
    )
    latent_dims: Optional[tuple[PositiveInt, ...]] = Field(
        None, description="Two stochastic layers (Burda et al.): the dimensions of h1 (next to x) and h2 (the top, "
        "p(h2) = N(0, I)), e.g. [100, 50]. None: one stochastic layer z of latent_dim. MLP only.",
    )
    latent_hidden_dims: Optional[tuple[PositiveInt, ...]] = Field(
        None, description="With latent_dims: the units of the hidden_layers deterministic layers below each "
        "stochastic layer, on both sides (x <-> h1, then h1 <-> h2), e.g. [200, 100] (Burda et al.). The first is "
        "hidden_dim (taken from here when hidden_dim is left out); left out: hidden_dim for every layer.",
    )
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

    @model_validator(mode="before")
    @classmethod
    def _fill_from_latent_dims(cls, data: Any) -> Any:
        """With latent_dims given, a left-out latent_dim is its last entry (h2), a left-out hidden_dim the
        first of latent_hidden_dims, and left-out latent_hidden_dims hidden_dim for every layer, so that the
        dumped config (config.json) names them all consistently. Given values are checked in ``_check``."""
        if not isinstance(data, dict) or data.get("latent_dims") is None:
            return data
        data = dict(data)
        dims, widths = data["latent_dims"], data.get("latent_hidden_dims")

        def positive(values, i):  # a bad entry is reported under its own field, not under the one it fills
            return isinstance(values, (list, tuple)) and values and isinstance(values[i], int) and values[i] >= 1

        if positive(dims, -1) and "latent_dim" not in data:
            data["latent_dim"] = dims[-1]
        if positive(widths, 0) and "hidden_dim" not in data:
            data["hidden_dim"] = widths[0]
        if widths is None and isinstance(dims, (list, tuple)):
            data["latent_hidden_dims"] = [data.get("hidden_dim", cls.model_fields["hidden_dim"].default)] * len(dims)
        return data

    @model_validator(mode="after")
    def _check(self):
        if self.latent_dims is None:
            if self.latent_hidden_dims is not None:
                raise ValueError("latent_hidden_dims sets the widths of the layers of latent_dims (two stochastic "
                                 "layers): give latent_dims too, or leave latent_hidden_dims out and use hidden_dim")
        else:
            dims, widths = self.latent_dims, self.latent_hidden_dims
            if self.architecture != "mlp":
                raise ValueError(f"latent_dims (two stochastic layers) needs architecture='mlp', got {self.architecture!r}")
            if len(dims) != 2:
                raise ValueError(f"latent_dims lists the two stochastic layers h1, h2, e.g. [100, 50] (Burda et al.); got "
                                 f"{list(dims)}. For one stochastic layer leave latent_dims out and set latent_dim")
            if len(widths) != len(dims):
                raise ValueError(f"latent_hidden_dims needs one width per stochastic layer, like latent_dims {list(dims)}; "
                                 f"got {list(widths)}")
            if self.latent_dim != dims[-1]:
                raise ValueError(f"latent_dim={self.latent_dim} but latent_dims={list(dims)}: latent_dim is the top layer "
                                 f"h2's dimension, {dims[-1]}; leave latent_dim out")
            if self.hidden_dim != widths[0]:
                raise ValueError(f"hidden_dim={self.hidden_dim} but latent_hidden_dims={list(widths)}: hidden_dim is the "
                                 f"width of the layers next to x, {widths[0]}; leave hidden_dim out")
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


class GaussianLayer(nn.Module):
    """A diagonal Gaussian conditional N(mu(u), diag sigma(u)^2) computed by an MLP: u -> ``layers`` hidden
    layers of ``width`` units -> (mu, sigma), each of ``out_dim``. ``forward(u)`` returns (mu, log sigma^2);
    ``encoder_sigma="exp"``: the sigma layer outputs a with sigma = exp(a), i.e. log sigma^2 = 2a."""

    def __init__(self, in_dim: int, width: int, layers: int, out_dim: int, activation: type[nn.Module], encoder_sigma: str):
        super().__init__()
        hidden: list[nn.Module] = []
        for i in range(layers):
            hidden += [nn.Linear(in_dim if i == 0 else width, width), activation()]
        self.hidden = nn.Sequential(*hidden)
        self.to_mu, self.to_log_sigma2 = nn.Linear(width, out_dim), nn.Linear(width, out_dim)
        self.encoder_sigma = encoder_sigma

    def forward(self, u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        hidden = self.hidden(u)
        out = self.to_log_sigma2(hidden)
        return self.to_mu(hidden), 2 * out if self.encoder_sigma == "exp" else out


class VAE(Generator):
    """A VAE with an MLP or a small convolutional encoder/decoder (see ``VAEConfig``).

    One stochastic layer z: ``encoder``/``to_mu``/``to_log_sigma2`` compute q(z|x), ``decoder`` p(x|z).
    Two (``latent_dims=(d1, d2)``, Burda et al.): the same modules compute q(h1|x) and p(x|h1), and
    ``q_h2_given_h1`` and ``p_h1_given_h2`` (``GaussianLayer``) the second layer; p(h2) = N(0, I).
    """

    family = "vae"
    config_class = VAEConfig

    def __init__(self, config: VAEConfig):
        super().__init__(config)
        c, s, h, d = config.image_channels, config.image_size, config.hidden_dim, config.latent_dim
        self.image_shape = (c, s, s)
        act = ACTIVATIONS[config.activation]
        self.two_layers = config.latent_dims is not None
        if self.two_layers:  # x <-> h1 is the one-layer MLP (hidden_dim = latent_hidden_dims[0]) with z = h1
            d = config.latent_dims[0]
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
        if self.two_layers:  # h1 -> 100 -> 100 -> h2 and back in Burda et al.'s MNIST model
            d2, width2 = config.latent_dims[1], config.latent_hidden_dims[1]
            self.q_h2_given_h1 = GaussianLayer(d, width2, config.hidden_layers, d2, act, config.encoder_sigma)
            self.p_h1_given_h2 = GaussianLayer(d2, width2, config.hidden_layers, d, act, config.encoder_sigma)
        if config.likelihood == "gaussian":
            # log sigma_x^2 of p(x|z) = N(decoder(z), sigma_x^2 I); learned, starting at sigma_x = 0.1
            self.log_sigma2_x = nn.Parameter(torch.tensor(math.log(0.01)))

    # -- the paper's pieces -------------------------------------------------------------------

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """q_phi(z|x): returns (mu, log sigma^2), each (N, latent_dim). Two stochastic layers: q(h1|x), each
        (N, latent_dims[0]) (q(h2|h1) depends on the sample h1: ``q_h2_given_h1``)."""
        hidden = self.encoder(x)
        out = self.to_log_sigma2(hidden)
        # Burda et al.'s sigma = exp(a) is log sigma^2 = 2a
        return self.to_mu(hidden), 2 * out if self.config.encoder_sigma == "exp" else out

    def decode_logits(self, z: torch.Tensor) -> torch.Tensor:
        """The decoder's raw output: Bernoulli logits, or the Gaussian mean (of p(x|z), or p(x|h1))."""
        return self.decoder(z)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """The mean of p_theta(x|z) (two stochastic layers: of p(x|h1), z = h1), as images in [0, 1]."""
        out = self.decode_logits(z)
        return torch.sigmoid(out) if self.config.likelihood == "bernoulli" else out.clamp(0, 1)

    def decode_top(self, h: torch.Tensor) -> torch.Tensor:
        """The image of a top-layer latent, as the sampler shows it: one layer, ``decode(z)``; two layers
        (h = h2), ``decode(h1)`` with h1 the mean of p(h1|h2) (not a draw), images in [0, 1]."""
        if self.two_layers:
            h, _ = self.p_h1_given_h2(h)
        return self.decode(h)

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
        """One-sample ELBO per image: {"elbo", "reconstruction" (E log p(x|z)), "kl"}, each (N,).

        Two stochastic layers: no closed-form KL; for one sample h1 ~ q(h1|x), h2 ~ q(h2|h1),
        "reconstruction" is log p(x|h1), "kl" the Monte-Carlo KL(q(h1, h2|x) || p(h1, h2)) estimate
        log q(h1|x) + log q(h2|h1) - log p(h1|h2) - log p(h2), and "elbo" their difference (= log w)."""
        if self.two_layers:
            log = {name: value[0] for name, value in self.log_densities(x, 1).items()}
            kl = log["log_q_h1_given_x"] + log["log_q_h2_given_h1"] - log["log_p_h1_given_h2"] - log["log_p_h2"]
            reconstruction = log["log_p_x_given_h1"]
            return {"elbo": reconstruction - kl, "reconstruction": reconstruction, "kl": kl}
        mu, log_sigma2 = self.encode(x)
        z = self.reparameterize(mu, log_sigma2)
        reconstruction = self.log_likelihood(x, self.decode_logits(z))
        kl = gaussian_kl(mu, log_sigma2)
        return {"elbo": reconstruction - kl, "reconstruction": reconstruction, "kl": kl}

    def log_densities(self, x: torch.Tensor, k: int, *, encoded: Optional[tuple[torch.Tensor, torch.Tensor]] = None,
                      eps: Union[torch.Tensor, tuple[torch.Tensor, torch.Tensor], None] = None) -> dict[str, torch.Tensor]:
        """The terms of the log importance weights of k samples per image, each (k, N):

        * one stochastic layer, z ~ q(z|x): ``log_p_x_given_z``, ``log_p_z``, ``log_q_z_given_x``;
        * two, h1 ~ q(h1|x), h2 ~ q(h2|h1): ``log_p_x_given_h1``, ``log_p_h1_given_h2``, ``log_p_h2``,
          ``log_q_h1_given_x``, ``log_q_h2_given_h1``.

        ``encoded``: ``encode(x)`` if already computed (q(z|x)'s, or q(h1|x)'s, mu and log sigma^2; q(h2|h1)'s
        are computed per sample). ``eps``: the N(0, I) noise of the reparameterization, (k, N, latent_dim) for
        one layer, a pair (eps_h1 (k, N, d1), eps_h2 (k, N, d2)) for two; by default drawn from torch's global
        generator, eps_h1 first. The k samples of every image go through the decoder as one batch of k * N.
        """
        if not self.two_layers:
            mu, log_sigma2 = self.encode(x) if encoded is None else encoded
            if eps is None:
                eps = torch.randn((k, *mu.shape), device=mu.device, dtype=mu.dtype)
            z = self.reparameterize(mu, log_sigma2, eps)  # (k, N, d)
            decoded = self.decode_logits(z.reshape(k * x.shape[0], -1))
            return {
                "log_p_x_given_z": self.log_likelihood(x, decoded.view(k, *x.shape)),
                "log_p_z": gaussian_log_density(z, torch.zeros_like(z), torch.zeros_like(z)),
                "log_q_z_given_x": gaussian_log_density(z, mu, log_sigma2),
            }
        mu_h1, log_sigma2_h1 = self.encode(x) if encoded is None else encoded  # q(h1|x)
        if eps is None:
            eps = (torch.randn((k, *mu_h1.shape), device=mu_h1.device, dtype=mu_h1.dtype),
                   torch.randn((k, x.shape[0], self.config.latent_dims[1]), device=mu_h1.device, dtype=mu_h1.dtype))
        eps_h1, eps_h2 = eps
        h1 = self.reparameterize(mu_h1, log_sigma2_h1, eps_h1)  # (k, N, d1)
        mu_h2, log_sigma2_h2 = self.q_h2_given_h1(h1)  # q(h2|h1)
        h2 = self.reparameterize(mu_h2, log_sigma2_h2, eps_h2)  # (k, N, d2)
        prior_mu_h1, prior_log_sigma2_h1 = self.p_h1_given_h2(h2)  # p(h1|h2)
        decoded = self.decode_logits(h1.reshape(k * x.shape[0], -1))  # p(x|h1)
        return {
            "log_p_x_given_h1": self.log_likelihood(x, decoded.view(k, *x.shape)),
            "log_p_h1_given_h2": gaussian_log_density(h1, prior_mu_h1, prior_log_sigma2_h1),
            "log_p_h2": gaussian_log_density(h2, torch.zeros_like(h2), torch.zeros_like(h2)),
            "log_q_h1_given_x": gaussian_log_density(h1, mu_h1, log_sigma2_h1),
            "log_q_h2_given_h1": gaussian_log_density(h2, mu_h2, log_sigma2_h2),
        }

    def log_weights(self, x: torch.Tensor, k: int, *, encoded: Optional[tuple[torch.Tensor, torch.Tensor]] = None,
                    eps: Union[torch.Tensor, tuple[torch.Tensor, torch.Tensor], None] = None,
                    with_reconstruction: bool = False) -> Union[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """log w_i = log p(x|z_i) + log p(z_i) - log q(z_i|x) for z_1..z_k ~ q(z|x), shape (k, N); two stochastic
        layers: log w_i = log p(x|h1_i) + log p(h1_i|h2_i) + log p(h2_i) - log q(h1_i|x) - log q(h2_i|h1_i).
        ``encoded``, ``eps``: as in ``log_densities``. ``with_reconstruction``: return (log w, log p(x|z)) (two
        layers: log p(x|h1)) of the same samples."""
        log = self.log_densities(x, k, encoded=encoded, eps=eps)
        if self.two_layers:
            reconstruction = log["log_p_x_given_h1"]
            log_w = (reconstruction + log["log_p_h1_given_h2"] + log["log_p_h2"]
                     - log["log_q_h1_given_x"] - log["log_q_h2_given_h1"])
        else:
            reconstruction = log["log_p_x_given_z"]
            log_w = reconstruction + log["log_p_z"] - log["log_q_z_given_x"]
        return (log_w, reconstruction) if with_reconstruction else log_w

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
        """Minimize the negative ELBO (``objective="iwae"``: the negative k-sample bound), averaged over the
        batch (nats per image). Two stochastic layers: the ELBO is the one-sample log w (Monte-Carlo KL)."""
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
        """``output_bias_init="data_mean"``: the decoder's last bias (of p(x|z), or p(x|h1)) = logit of the training
        images' mean (Burda et al.'s initialization), the mean clipped to [1e-3, 1 - 1e-3] for pixels that are always 0."""
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

    sampler_options = {"temperature": "scale of the prior's standard deviation, z ~ N(0, T^2 I) (two stochastic "
                                      "layers: h2 ~ N(0, T^2 I)) (default 1.0)"}

    @torch.no_grad()
    def sample(self, n: int, *, generator: GeneratorArg = None, **options: Any) -> torch.Tensor:
        """z ~ N(0, T^2 I) -> the decoder's mean, (n, C, H, W) in [0, 1]. Two stochastic layers: h2 ~ N(0, T^2 I),
        h1 = the mean of p(h1|h2) (not a draw), the image the mean of p(x|h1) (``decode_top``). ``generator``: a
        torch.Generator on any device, or a list of n (one per sample)."""
        self.check_sampler_options(options)
        z = randn_tensor((n, self.config.latent_dim), generator=generator, device=self.device, dtype=self.dtype)
        return self.decode_top(float(options.get("temperature", 1.0)) * z).float()

    @torch.no_grad()
    def interpolate(self, rows: int = 6, steps: int = 10, *, seed: int = 0) -> torch.Tensor:
        """Decoded walks through the latent space, (rows * steps, C, H, W): row r decodes
        z = slerp(z_a, z_b, t) for t = 0 .. 1 between two draws z_a, z_b ~ N(0, I) (spherical, so that
        every z has a typical norm under the prior). Images are the decoder's means. Two stochastic layers: the
        walk is in h2, decoded through the mean of p(h1|h2) (``decode_top``)."""
        generator = torch.Generator().manual_seed(seed)
        ends = torch.randn(2, rows, 1, self.config.latent_dim, generator=generator, dtype=torch.float64)
        t = torch.linspace(0, 1, steps, dtype=torch.float64)[None, :, None]
        cos = (ends[0] * ends[1]).sum(-1, keepdim=True) / (ends[0].norm(dim=-1, keepdim=True) * ends[1].norm(dim=-1, keepdim=True))
        angle = torch.arccos(cos.clamp(-1, 1))
        z = (torch.sin((1 - t) * angle) * ends[0] + torch.sin(t * angle) * ends[1]) / torch.sin(angle)
        return self.decode_top(z.reshape(rows * steps, -1).to(self.device, self.dtype)).float()

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
        if self.two_layers:
            return [(INTERPOLATION_IMAGE, f"Latent interpolations (`{INTERPOLATION_IMAGE}`): each row decodes h2 = slerp("
                                          f"h2_a, h2_b, t), t = 0 .. 1 in 10 steps, between two draws from the prior p(h2) "
                                          f"(seed 0), through h1 = the mean of p(h1|h2). These images and the samples above "
                                          f"are {mean} of p(x|h1), not binary draws.")]
        return [(INTERPOLATION_IMAGE, f"Latent interpolations (`{INTERPOLATION_IMAGE}`): each row decodes z = slerp(z_a, "
                                      f"z_b, t), t = 0 .. 1 in 10 steps, between two draws from the prior (seed 0). These "
                                      f"images and the samples above are {mean} of p(x|z), not binary draws.")]

    def example_batch(self, batch_size: int, *, generator: Optional[torch.Generator] = None) -> torch.Tensor:
        return torch.rand(batch_size, *self.image_shape, generator=generator)


@torch.no_grad()
def log_mean_exp_chunks(model: VAE, x: torch.Tensor, k: int, *, chunk: Optional[int] = None,
                        with_reconstruction: bool = False) -> tuple[torch.Tensor, ...]:
    """(log 1/k sum_i w_i, 1/k sum_i log w_i) per image, drawing the k importance samples ``chunk`` at a time:
    the importance-sampled log p(x) and the k-sample average of the one-sample ELBO. x is encoded once
    (q(z|x), or q(h1|x) for two stochastic layers; q(h2|h1) is per sample). ``with_reconstruction``: a third
    tensor, the k-sample average of log p(x|z) (log p(x|h1)) of the same samples; the same random draws."""
    encoded = model.encode(x)
    chunk = min(k, chunk or k)
    running_lse, sum_log_w = None, torch.zeros(x.shape[0], dtype=torch.float64, device=x.device)
    sum_reconstruction = torch.zeros_like(sum_log_w)
    for start in range(0, k, chunk):
        log_w, reconstruction = model.log_weights(x, min(chunk, k - start), encoded=encoded, with_reconstruction=True)
        log_w = log_w.double()
        lse = torch.logsumexp(log_w, dim=0)
        running_lse = lse if running_lse is None else torch.logaddexp(running_lse, lse)
        sum_log_w += log_w.sum(0)
        sum_reconstruction += reconstruction.double().sum(0)
    if with_reconstruction:
        return running_lse - math.log(k), sum_log_w / k, sum_reconstruction / k
    return running_lse - math.log(k), sum_log_w / k
