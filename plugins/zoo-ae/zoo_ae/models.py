"""Autoencoders: the deep autoencoder of Hinton & Salakhutdinov (2006), the sparse autoencoder and the
contractive autoencoder of Rifai et al. (2011).

An encoder g_phi maps an image x to a code h = g_phi(x); a decoder f_theta maps it back,
x' = f_theta(h). Training minimizes a reconstruction loss per image (summed over pixels, averaged
over the batch), plus, for the sparse and contractive variants, a penalty on the code:

    plain:        L = rec(x, x')
    sparse:       L = rec(x, x') + beta * sum_j KL(rho || rho_hat_j)      (or beta * mean_i ||h_i||_1)
    contractive:  L = rec(x, x') + lambda * ||J_f(x)||_F^2,  J_f(x) = d h / d x

The models are generators too: after training, a Gaussian N(mu, Sigma) is fitted to the codes of the
training images (``on_fit_end``; mu and Sigma are saved as the buffers ``code_mean`` and
``code_cov``), and ``sample(n)`` decodes n codes drawn from it.
"""

from __future__ import annotations

from typing import Any, Iterable, Literal, Optional

import torch
import torch.nn.functional as F
from pydantic import Field, model_validator
from torch import nn

from zoo_core.config import ZooConfig
from zoo_core.generator import Generator
from zoo_core.noise import GeneratorArg, randn_tensor

Activation = Literal["sigmoid", "relu", "gelu", "tanh", "linear"]
_ACTIVATIONS = {"sigmoid": nn.Sigmoid, "relu": nn.ReLU, "gelu": nn.GELU, "tanh": nn.Tanh, "linear": nn.Identity}


class AEConfigError(ValueError):
    """An autoencoder config whose options do not fit together."""


# -- configs -----------------------------------------------------------------------------------


class AEConfig(ZooConfig):
    """A plain autoencoder. The default is the paper's 784-1000-500-250-30 MNIST autoencoder."""

    architecture: Literal["mlp", "conv"] = Field(
        "mlp", description="'mlp': fully connected layers of hidden_widths; 'conv': strided convolutions of conv_channels."
    )
    image_channels: int = Field(1, ge=1, description="Channels of the input images.")
    image_size: int = Field(28, ge=4, description="Height and width of the (square) input images.")
    hidden_widths: tuple[int, ...] = Field(
        (1000, 500, 250), description="Widths of the encoder's hidden layers (the decoder mirrors them); () for one layer."
    )
    conv_channels: tuple[int, ...] = Field(
        (32, 64), description="'conv' only: channels of the stride-2 convolutions (each halves the size)."
    )
    code_dim: int = Field(30, ge=1, description="Dimension of the code h (the paper: 30).")
    activation: Activation = Field("gelu", description="Activation of the hidden layers (the paper: sigmoid).")
    code_activation: Activation = Field(
        "linear", description="Activation of the code layer (the paper: linear; sigmoid for sparse/contractive codes)."
    )
    output: Literal["sigmoid", "linear"] = Field(
        "sigmoid", description="Output activation of the decoder: 'sigmoid' for data in [0, 1], 'linear' otherwise."
    )
    loss: Literal["bce", "mse"] = Field(
        "bce", description="Reconstruction loss per image, summed over pixels: binary cross-entropy (data in [0, 1]) or squared error."
    )

    @model_validator(mode="after")
    def _check(self):
        if self.loss == "bce" and self.output != "sigmoid":
            raise AEConfigError(f"loss='bce' needs output='sigmoid' (targets and outputs in [0, 1]); got output={self.output!r}")
        if self.architecture == "conv":
            if not self.conv_channels:
                raise AEConfigError("architecture='conv' needs at least one entry in conv_channels")
            if self.image_size % (2 ** len(self.conv_channels)):
                raise AEConfigError(
                    f"image_size {self.image_size} must be divisible by 2**len(conv_channels) = {2 ** len(self.conv_channels)}"
                )
        return self


class SparseAEConfig(AEConfig):
    """A sparse autoencoder: one over-complete sigmoid code layer by default (784-1000)."""

    hidden_widths: tuple[int, ...] = Field((), description="Widths of the encoder's hidden layers before the code.")
    code_dim: int = Field(1000, ge=1, description="Code units; may exceed the input size (over-complete).")
    code_activation: Activation = Field("sigmoid", description="Activation of the code layer; 'kl' needs sigmoid.")
    sparsity: Literal["kl", "l1"] = Field(
        "kl", description="'kl': beta * sum_j KL(rho || rho_hat_j) on the mean activations; 'l1': beta * mean ||h||_1."
    )
    sparsity_weight: float = Field(3.0, ge=0, description="beta, the weight of the sparsity penalty.")
    sparsity_target: float = Field(0.05, gt=0, lt=1, description="rho, the target mean activation of each unit ('kl').")

    @model_validator(mode="after")
    def _check_sparsity(self):
        if self.sparsity == "kl" and self.code_activation != "sigmoid":
            raise AEConfigError(
                f"sparsity='kl' compares mean activations with rho in (0, 1), so code_activation must be 'sigmoid', "
                f"got {self.code_activation!r}"
            )
        return self


class ContractiveAEConfig(AEConfig):
    """A contractive autoencoder (Rifai et al. 2011): one sigmoid code layer by default (784-1000)."""

    hidden_widths: tuple[int, ...] = Field((), description="Widths of the encoder's hidden layers before the code.")
    code_dim: int = Field(1000, ge=1, description="Code units.")
    code_activation: Activation = Field("sigmoid", description="Activation of the code layer.")
    contractive_weight: float = Field(0.1, ge=0, description="lambda, the weight of ||J_f(x)||_F^2.")
    jacobian: Literal["auto", "closed_form", "autograd", "forward"] = Field(
        "auto",
        description="How ||J_f(x)||_F^2 is computed: 'closed_form' (one sigmoid layer only), 'autograd' "
        "(exact, reverse mode), 'forward' (exact, forward mode); 'auto' picks closed_form when it applies.",
    )

    @model_validator(mode="after")
    def _check_jacobian(self):
        if self.jacobian == "closed_form" and not _single_sigmoid_layer(self):
            raise AEConfigError(
                "jacobian='closed_form' needs a single sigmoid layer encoder (architecture='mlp', hidden_widths=(), "
                f"code_activation='sigmoid'); got architecture={self.architecture!r}, hidden_widths={self.hidden_widths}, "
                f"code_activation={self.code_activation!r}. Use jacobian='autograd'."
            )
        return self


def _single_sigmoid_layer(config: AEConfig) -> bool:
    return config.architecture == "mlp" and not config.hidden_widths and config.code_activation == "sigmoid"


# -- penalties -----------------------------------------------------------------------------------


def kl_sparsity(h: torch.Tensor, rho: float, eps: float = 1e-6) -> torch.Tensor:
    """sum_j KL(rho || rho_hat_j), rho_hat_j = mean activation of unit j over the batch (h in (0, 1))."""
    rho_hat = h.mean(dim=0).clamp(eps, 1 - eps)
    return (rho * torch.log(rho / rho_hat) + (1 - rho) * torch.log((1 - rho) / (1 - rho_hat))).sum()


def l1_sparsity(h: torch.Tensor) -> torch.Tensor:
    """mean_i ||h_i||_1."""
    return h.abs().sum(dim=1).mean()


def sigmoid_jacobian_frobenius_sq(h: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Closed form of ||J_f(x)||_F^2 for h = sigmoid(W x + b) (Rifai et al. 2011, eq. 3):
    dh_j/dx_i = h_j (1 - h_j) W_ji, so ||J||_F^2 = sum_j (h_j (1 - h_j))^2 sum_i W_ji^2. Returns (batch,)."""
    return ((h * (1 - h)) ** 2) @ (weight**2).sum(dim=1)


def encoder_jacobian(encoder: nn.Module, x: torch.Tensor, *, mode: Literal["autograd", "forward"] = "autograd") -> torch.Tensor:
    """The exact Jacobian d h / d x of ``encoder`` at each input: (batch, code_dim, *x.shape[1:]).

    Per-sample with torch.func (vmap over jacrev, or jacfwd for forward mode); differentiable with
    respect to the encoder's parameters, so it can be trained through."""
    from torch.func import jacfwd, jacrev, vmap

    transform = jacrev if mode == "autograd" else jacfwd
    return vmap(transform(lambda xi: encoder(xi.unsqueeze(0)).squeeze(0)))(x)


def jacobian_frobenius_sq(encoder: nn.Module, x: torch.Tensor, *, mode: Literal["autograd", "forward"] = "autograd") -> torch.Tensor:
    """||J_f(x)||_F^2 = sum_ij (dh_j / dx_i)^2 for each input, computed exactly. Returns (batch,)."""
    return encoder_jacobian(encoder, x, mode=mode).flatten(1).pow(2).sum(dim=1)


# -- networks -----------------------------------------------------------------------------------


def _mlp(widths: list[int], activation: str, last_activation: str) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (width_in, width_out) in enumerate(zip(widths[:-1], widths[1:])):
        layers.append(nn.Linear(width_in, width_out))
        layers.append(_ACTIVATIONS[last_activation if i == len(widths) - 2 else activation]())
    return nn.Sequential(*layers)


def _build_mlp(config: AEConfig) -> tuple[nn.Module, nn.Module]:
    pixels = config.image_channels * config.image_size**2
    widths = [pixels, *config.hidden_widths, config.code_dim]
    encoder = nn.Sequential(nn.Flatten(), _mlp(widths, config.activation, config.code_activation))
    decoder = nn.Sequential(
        _mlp(widths[::-1], config.activation, "linear"),
        nn.Unflatten(1, (config.image_channels, config.image_size, config.image_size)),
    )
    return encoder, decoder


def _build_conv(config: AEConfig) -> tuple[nn.Module, nn.Module]:
    act = _ACTIVATIONS[config.activation]
    channels = [config.image_channels, *config.conv_channels]
    size = config.image_size // 2 ** len(config.conv_channels)
    down: list[nn.Module] = []
    for c_in, c_out in zip(channels[:-1], channels[1:]):
        down += [nn.Conv2d(c_in, c_out, 4, stride=2, padding=1), act()]
    encoder = nn.Sequential(
        *down, nn.Flatten(), nn.Linear(channels[-1] * size * size, config.code_dim), _ACTIVATIONS[config.code_activation]()
    )
    up: list[nn.Module] = [nn.Linear(config.code_dim, channels[-1] * size * size), act(), nn.Unflatten(1, (channels[-1], size, size))]
    reversed_channels = channels[::-1]
    for i, (c_in, c_out) in enumerate(zip(reversed_channels[:-1], reversed_channels[1:])):
        up.append(nn.ConvTranspose2d(c_in, c_out, 4, stride=2, padding=1))
        if i < len(reversed_channels) - 2:
            up.append(act())
    return encoder, nn.Sequential(*up)


def _init_weights(module: nn.Module) -> None:
    """He (Kaiming) normal weights and zero biases: keeps the signal's scale through the deep
    encoder/decoder, which trains from random init with Adam much faster than PyTorch's default
    (Hinton & Salakhutdinov used RBM pre-training instead)."""
    if isinstance(module, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)):
        nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
        nn.init.zeros_(module.bias)


# -- models -------------------------------------------------------------------------------------


class AutoEncoder(Generator):
    """x' = f_theta(g_phi(x)), trained to reconstruct x (Hinton & Salakhutdinov 2006).

    ``encode``/``decode``/``reconstruct`` work on images (N, C, H, W) in [0, 1]; ``sample(n)``
    decodes codes drawn from N(code_mean, code_cov), the Gaussian fitted to the training codes.
    """

    family = "ae"
    config_class = AEConfig

    def __init__(self, config: AEConfig):
        super().__init__(config)
        build = _build_mlp if config.architecture == "mlp" else _build_conv
        self.encoder, self.decoder = build(config)
        self.apply(_init_weights)
        # the Gaussian fitted to the training codes (on_fit_end); saved with the weights
        self.register_buffer("code_mean", torch.zeros(config.code_dim))
        self.register_buffer("code_cov", torch.eye(config.code_dim))

    # -- the autoencoder --

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """h = g_phi(x): (N, C, H, W) -> (N, code_dim)."""
        return self.encoder(x)

    def decode_logits(self, h: torch.Tensor) -> torch.Tensor:
        """The decoder before its output activation."""
        return self.decoder(h)

    def decode(self, h: torch.Tensor) -> torch.Tensor:
        """x' = f_theta(h): (N, code_dim) -> (N, C, H, W)."""
        logits = self.decode_logits(h)
        return torch.sigmoid(logits) if self.config.output == "sigmoid" else logits

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """x' = f_theta(g_phi(x))."""
        return self.decode(self.encode(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.reconstruct(x)

    def reconstruction_loss(self, x: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        """Per image, summed over pixels, averaged over the batch."""
        if self.config.loss == "bce":
            per_pixel = F.binary_cross_entropy_with_logits(logits, x, reduction="none")
        else:
            output = torch.sigmoid(logits) if self.config.output == "sigmoid" else logits
            per_pixel = (output - x) ** 2
        return per_pixel.flatten(1).sum(dim=1).mean()

    def configure_optimizers(self, train) -> dict[str, torch.optim.Optimizer]:
        """AdamW with the multi-tensor (foreach) update, also on the CPU, where PyTorch's default is
        a per-parameter loop; the same update rule, fewer kernel launches."""
        return {"main": torch.optim.AdamW(self.parameters(), lr=train.lr, betas=train.betas,
                                          weight_decay=train.weight_decay, foreach=True)}

    def penalty(self, x: torch.Tensor, h: torch.Tensor) -> dict[str, torch.Tensor]:
        """Extra loss terms on the code; none for the plain autoencoder."""
        return {}

    def training_step(self, batch, *, optimizer: str = "main") -> dict[str, torch.Tensor]:
        x = batch[0] if isinstance(batch, (list, tuple)) else batch
        h = self.encode(x)
        logits = self.decode_logits(h)
        rec = self.reconstruction_loss(x, logits)
        terms = self.penalty(x, h)
        loss = rec + sum(terms.values()) if terms else rec
        if self.config.loss == "mse":
            squared_error = rec.detach()
        else:
            with torch.no_grad():
                squared_error = (torch.sigmoid(logits) - x).pow(2).flatten(1).sum(dim=1).mean()
        return {"loss": loss, "rec": rec.detach(), "squared_error": squared_error, **{k: v.detach() for k, v in terms.items()}}

    def example_batch(self, batch_size: int, *, generator: Optional[torch.Generator] = None) -> torch.Tensor:
        c, s = self.config.image_channels, self.config.image_size
        return torch.rand(batch_size, c, s, s, generator=generator, device=self.device)

    # -- the generator --

    @torch.no_grad()
    def fit_code_gaussian(self, batches: Iterable) -> None:
        """Fit N(mu, Sigma) to the codes of ``batches`` (float64 sums), into code_mean and code_cov."""
        total, count, outer = None, 0, None
        for batch in batches:
            x = batch[0] if isinstance(batch, (list, tuple)) else batch
            h = self.encode(x.to(self.device, self.dtype)).double()
            total = h.sum(0) if total is None else total + h.sum(0)
            outer = h.T @ h if outer is None else outer + h.T @ h
            count += h.shape[0]
        if not count:
            raise ValueError("fit_code_gaussian got no batches")
        mean = total / count
        cov = (outer - count * torch.outer(mean, mean)) / max(count - 1, 1)
        self.code_mean.copy_(mean.to(self.code_mean.dtype))
        self.code_cov.copy_(cov.to(self.code_cov.dtype))

    def on_fit_end(self, batches: Iterable) -> None:
        self.fit_code_gaussian(batches)

    @torch.no_grad()
    def sample_codes(self, n: int, *, generator: GeneratorArg = None, temperature: float = 1.0) -> torch.Tensor:
        """n codes from N(code_mean, T^2 code_cov): mu + T L eps with L L^T = Sigma (jitter added if needed)."""
        cov = self.code_cov.double().cpu()
        cov = 0.5 * (cov + cov.T)
        jitter = 1e-6 * cov.diagonal().mean().clamp_min(1e-12)
        for _ in range(8):
            cholesky, info = torch.linalg.cholesky_ex(cov + jitter * torch.eye(cov.shape[0], dtype=cov.dtype))
            if info == 0:
                break
            jitter *= 10
        else:
            raise ValueError("code_cov is not positive definite even with jitter; refit the Gaussian (on_fit_end)")
        eps = randn_tensor((n, cov.shape[0]), generator=generator, device=self.code_mean.device, dtype=self.code_mean.dtype)
        return self.code_mean + temperature * (eps @ cholesky.to(eps).T)

    sampler_options = {"temperature": "scale of the code Gaussian's standard deviation (default 1.0, as fitted)"}

    @torch.no_grad()
    def sample(self, n: int, *, generator: GeneratorArg = None, **options: Any) -> torch.Tensor:
        """Decode n codes drawn from the Gaussian fitted to the training codes: (n, C, H, W) in [0, 1].
        ``generator``: a torch.Generator on any device, or a list of n (one per sample)."""
        self.check_sampler_options(options)
        images = self.decode(self.sample_codes(n, generator=generator, temperature=float(options.get("temperature", 1.0))))
        return images.clamp(0, 1)


class SparseAutoEncoder(AutoEncoder):
    """An autoencoder whose code is made sparse by a penalty: beta * sum_j KL(rho || rho_hat_j)
    on the batch-mean activation rho_hat_j of each unit, or beta * mean ||h||_1."""

    family = "sparse-ae"
    config_class = SparseAEConfig

    def penalty(self, x: torch.Tensor, h: torch.Tensor) -> dict[str, torch.Tensor]:
        beta = self.config.sparsity_weight
        if self.config.sparsity == "kl":
            return {"sparsity": beta * kl_sparsity(h, self.config.sparsity_target)}
        return {"sparsity": beta * l1_sparsity(h)}


class ContractiveAutoEncoder(AutoEncoder):
    """An autoencoder with the contractive penalty lambda * ||J_f(x)||_F^2 (Rifai et al. 2011)."""

    family = "contractive-ae"
    config_class = ContractiveAEConfig

    def jacobian_frobenius_sq(self, x: torch.Tensor, h: Optional[torch.Tensor] = None, *, method: Optional[str] = None) -> torch.Tensor:
        """||J_f(x)||_F^2 per input, (batch,): the closed form for one sigmoid layer, else exact torch.func."""
        method = method or self.config.jacobian
        if method == "auto":
            method = "closed_form" if _single_sigmoid_layer(self.config) else "autograd"
        if method == "closed_form":
            if not _single_sigmoid_layer(self.config):
                raise AEConfigError("the closed form applies only to a single sigmoid layer encoder; use method='autograd'")
            h = self.encode(x) if h is None else h
            return sigmoid_jacobian_frobenius_sq(h, self.encoder[1][0].weight)
        return jacobian_frobenius_sq(self.encoder, x, mode=method)

    def penalty(self, x: torch.Tensor, h: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"contractive": self.config.contractive_weight * self.jacobian_frobenius_sq(x, h).mean()}


def squared_error_per_image(x: torch.Tensor, x_rec: torch.Tensor) -> torch.Tensor:
    """sum over pixels of (x - x')^2, per image: (batch,)."""
    return (x - x_rec).pow(2).flatten(1).sum(dim=1)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


__all__ = [
    "AEConfig", "SparseAEConfig", "ContractiveAEConfig", "AEConfigError", "AutoEncoder", "SparseAutoEncoder",
    "ContractiveAutoEncoder", "kl_sparsity", "l1_sparsity", "sigmoid_jacobian_frobenius_sq", "encoder_jacobian",
    "jacobian_frobenius_sq", "squared_error_per_image",
]
