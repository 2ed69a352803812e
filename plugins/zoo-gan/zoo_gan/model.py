"""Generative adversarial nets: Goodfellow et al. (2014).

A generator G maps noise z ~ p_z to images; a discriminator D outputs the logit of the probability
that its input is real. They play (Eq. 1)

    min_G max_D V(D, G) = E_{x ~ p_r}[log D(x)] + E_{z ~ p_z}[log(1 - D(G(z)))].

For a fixed G the best discriminator is D*(x) = p_r(x) / (p_r(x) + p_g(x)) (Proposition 1), where
V(D*, G) = 2 JS(p_r || p_g) - 2 log 2 (Theorem 1). Each training step takes k discriminator steps
(Algorithm 1; ``discriminator_steps``, each on its own batch) and then one generator step. The
generator minimizes either the non-saturating loss -log D(G(z)) (the paper's practical choice, the
default) or the minimax loss log(1 - D(G(z))). Losses go through binary cross-entropy on logits.

Architectures: an MLP (the paper's MNIST model: ReLU G with a sigmoid output, a maxout D with
dropout) or a DCGAN-style convolutional pair (Radford et al. 2016). Stabilizers: spectral
normalization of D (Miyato et al. 2018) or the R1 gradient penalty on real data (Mescheder et al.
2018). ``sample`` returns images in [0, 1].
"""

from __future__ import annotations

import math
from typing import Any, Literal, Mapping, Optional

import torch
import torch.nn.functional as F
from pydantic import Field, model_validator
from torch import nn

from zoo_core.config import TrainConfig, ZooConfig
from zoo_core.generator import Generator
from zoo_core.noise import GeneratorArg, randn_tensor
from zoo_core.optim import build_optimizer


class GANConfig(ZooConfig):
    """Hyperparameters of a GAN. Every field added after the first release defaults to the old behaviour."""

    image_channels: int = Field(1, ge=1, description="Channels of the images (1 for MNIST).")
    image_size: int = Field(28, ge=4, description="Height and width of the (square) images; a multiple of 4 for 'dcgan'.")
    architecture: Literal["mlp", "dcgan"] = Field(
        "mlp", description="'mlp': fully connected G and D; 'dcgan': transposed-conv G, strided-conv D."
    )
    latent_dim: int = Field(100, ge=1, description="Dimension of the noise z.")
    noise: Literal["normal", "uniform"] = Field(
        "normal", description="p_z: 'normal' N(0, I), or 'uniform' U(-sqrt 3, sqrt 3)^d (unit variance, as pylearn2's)."
    )
    hidden_dim: int = Field(
        256, ge=1, description="Width: the MLP's first hidden layer (the next is twice as wide), or the DCGAN's base channels."
    )
    generator_widths: Optional[tuple[int, ...]] = Field(
        None, description="Hidden widths of the MLP generator (default: hidden_dim x (1, 2, 4))."
    )
    generator_activation: Literal["leaky_relu", "relu"] = Field("leaky_relu", description="Hidden activation of the MLP G.")
    generator_batch_norm: bool = Field(
        True, description="Batch norm in G: after every hidden layer but the first (MLP), after every layer but the last (DCGAN)."
    )
    output_activation: Literal["tanh", "sigmoid"] = Field(
        "tanh", description="G's output: 'tanh' (images in [-1, 1] inside the model) or 'sigmoid' (in [0, 1], as in the paper)."
    )
    generator_init_range: Optional[float] = Field(
        None, gt=0, description="Initialize G's weights from U(-r, r), biases 0 (pylearn2's irange; default: PyTorch's)."
    )
    discriminator_widths: Optional[tuple[int, ...]] = Field(
        None, description="Hidden widths (units) of the MLP discriminator (default: hidden_dim x (4, 2))."
    )
    discriminator_activation: Literal["leaky_relu", "maxout"] = Field(
        "leaky_relu", description="Hidden units of the MLP D: LeakyReLU(0.2), or maxout over maxout_pieces linear pieces."
    )
    maxout_pieces: int = Field(5, ge=1, description="Linear pieces per maxout unit (Goodfellow et al. 2013).")
    discriminator_input_dropout: float = Field(0.0, ge=0, lt=1, description="Dropout on the MLP D's input (the paper: 0.2).")
    discriminator_dropout: float = Field(0.3, ge=0, lt=1, description="Dropout on the inputs of the MLP D's later layers.")
    discriminator_norm: Optional[Literal["none", "batch_norm", "spectral_norm"]] = Field(
        None, description="Normalization in D; default: none for 'mlp', batch norm for 'dcgan'. 'spectral_norm' "
                          "divides every weight of D by its largest singular value (Miyato et al. 2018).",
    )
    discriminator_extra_convs: int = Field(
        0, ge=0, description="DCGAN D: extra 3x3 stride-1 convolutions (2 x hidden_dim channels) at the lowest resolution."
    )
    discriminator_init_range: Optional[float] = Field(
        None, gt=0, description="Initialize D's weights from U(-r, r), biases 0 (default: PyTorch's)."
    )
    r1_gamma: float = Field(
        0.0, ge=0, description="R1 penalty gamma/2 E_x~p_r ||grad_x D(x)||^2 added to D's loss (Mescheder et al. 2018); 0: off."
    )
    generator_loss: Literal["non_saturating", "minimax"] = Field(
        "non_saturating",
        description="'non_saturating': G minimizes -log D(G(z)); 'minimax': G minimizes log(1 - D(G(z))) (saturates early on).",
    )
    discriminator_loss_scale: Optional[float] = Field(
        None, gt=0, description="Multiplies D's loss; pylearn2's GAN (AdversaryCost2) used 0.5, the mean of its real and "
                                "fake terms. None: 1 (the sum, Eq. 1).",
    )
    discriminator_steps: int = Field(1, ge=1, description="k: discriminator steps (each on its own batch) per generator step.")
    final_momentum: Optional[float] = Field(
        None, ge=0, lt=1, description="SGD momentum ramp: from the TrainConfig's momentum to this, linearly over "
                                      "momentum_ramp_steps optimizer steps (pylearn2's MomentumAdjustor); None: off.",
    )
    momentum_ramp_steps: int = Field(0, ge=0, description="Steps of the momentum ramp (the paper: 250 epochs).")
    with_discriminator: bool = Field(
        True, description="False for a generator-only export (what ships: G samples; D only matters for training)."
    )

    @model_validator(mode="after")
    def _check(self) -> "GANConfig":
        if self.architecture == "dcgan" and self.image_size % 4:
            raise ValueError(f"architecture='dcgan' needs image_size divisible by 4, got {self.image_size}")
        for name in ("generator_widths", "discriminator_widths"):
            widths = getattr(self, name)
            if widths is not None and (not widths or min(widths) < 1):
                raise ValueError(f"{name} must be positive widths, got {widths}")
        if self.final_momentum is not None and self.momentum_ramp_steps < 1:
            raise ValueError("final_momentum needs momentum_ramp_steps >= 1")
        return self

    @property
    def norm(self) -> str:
        return self.discriminator_norm or ("batch_norm" if self.architecture == "dcgan" else "none")


def discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """-(E[log D(x)] + E[log(1 - D(G(z)))]) = -V from logits; its minimum over D is 2 log 2 - 2 JS(p_r || p_g)."""
    return F.binary_cross_entropy_with_logits(real_logits, torch.ones_like(real_logits)) + \
        F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits))


def generator_loss(fake_logits: torch.Tensor, kind: str = "non_saturating") -> torch.Tensor:
    """Non-saturating: -E[log D(G(z))]; minimax: E[log(1 - D(G(z)))]."""
    if kind == "non_saturating":
        return F.binary_cross_entropy_with_logits(fake_logits, torch.ones_like(fake_logits))
    if kind == "minimax":
        return -F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits))
    raise ValueError(f"generator_loss must be 'non_saturating' or 'minimax', got {kind!r}")


def r1_penalty(real_logits: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """E ||grad_x D(x)||^2 on real data (Mescheder et al. 2018, Eq. 9 without gamma/2)."""
    (grad,) = torch.autograd.grad(real_logits.sum(), real, create_graph=True)
    return grad.pow(2).flatten(1).sum(1).mean()


class Maxout(nn.Module):
    """h_i = max_j (x W_ij + b_ij), j over ``pieces`` linear pieces (Goodfellow et al. 2013)."""

    def __init__(self, in_features: int, units: int, pieces: int):
        super().__init__()
        self.pieces = pieces
        self.linear = nn.Linear(in_features, units * pieces)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x).unflatten(-1, (-1, self.pieces)).amax(-1)


def _activation(name: str) -> nn.Module:
    return nn.ReLU() if name == "relu" else nn.LeakyReLU(0.2)


def _mlp_generator(c: GANConfig) -> nn.Module:
    h, pixels = c.hidden_dim, c.image_channels * c.image_size**2
    widths = c.generator_widths or (h, 2 * h, 4 * h)
    layers: list[nn.Module] = []
    for i, (fan_in, width) in enumerate(zip((c.latent_dim, *widths), widths)):
        layers.append(nn.Linear(fan_in, width))
        if c.generator_batch_norm and i > 0:
            layers.append(nn.BatchNorm1d(width))  # batch norm in G steadies training
        layers.append(_activation(c.generator_activation))
    layers += [nn.Linear(widths[-1], pixels), nn.Tanh() if c.output_activation == "tanh" else nn.Sigmoid(),
               nn.Unflatten(1, (c.image_channels, c.image_size, c.image_size))]
    return nn.Sequential(*layers)


def _mlp_discriminator(c: GANConfig) -> nn.Module:
    h, pixels = c.hidden_dim, c.image_channels * c.image_size**2
    widths = c.discriminator_widths or (4 * h, 2 * h)
    sn = _spectral_norm(c)
    layers: list[nn.Module] = [nn.Flatten()]
    if c.discriminator_input_dropout:
        layers.append(nn.Dropout(c.discriminator_input_dropout))
    for i, (fan_in, width) in enumerate(zip((pixels, *widths), widths)):
        if c.discriminator_activation == "maxout":
            maxout = Maxout(fan_in, width, c.maxout_pieces)
            maxout.linear = sn(maxout.linear)
            layers.append(maxout)
        else:
            layers.append(sn(nn.Linear(fan_in, width)))
        if c.norm == "batch_norm" and i > 0:
            layers.append(nn.BatchNorm1d(width))
        if c.discriminator_activation != "maxout":
            layers.append(nn.LeakyReLU(0.2))
        if c.discriminator_dropout:
            layers.append(nn.Dropout(c.discriminator_dropout))
    layers.append(sn(nn.Linear(widths[-1], 1)))
    return nn.Sequential(*layers)


def _dcgan_generator(c: GANConfig) -> nn.Module:
    h, q = c.hidden_dim, c.image_size // 4

    def norm(channels: int) -> nn.Module:
        return nn.BatchNorm2d(channels) if c.generator_batch_norm else nn.Identity()

    return nn.Sequential(
        nn.Linear(c.latent_dim, 2 * h * q * q), nn.Unflatten(1, (2 * h, q, q)), norm(2 * h), nn.ReLU(),
        nn.ConvTranspose2d(2 * h, h, 4, 2, 1, bias=not c.generator_batch_norm), norm(h), nn.ReLU(),
        nn.ConvTranspose2d(h, c.image_channels, 4, 2, 1), nn.Tanh() if c.output_activation == "tanh" else nn.Sigmoid(),
    )


def _dcgan_discriminator(c: GANConfig) -> nn.Module:
    h, q, sn, batch_norm = c.hidden_dim, c.image_size // 4, _spectral_norm(c), c.norm == "batch_norm"
    return nn.Sequential(
        sn(nn.Conv2d(c.image_channels, h, 4, 2, 1)), nn.LeakyReLU(0.2),
        sn(nn.Conv2d(h, 2 * h, 4, 2, 1, bias=not batch_norm)), nn.BatchNorm2d(2 * h) if batch_norm else nn.Identity(),
        nn.LeakyReLU(0.2),
        *[layer for _ in range(c.discriminator_extra_convs) for layer in (sn(nn.Conv2d(2 * h, 2 * h, 3, 1, 1)), nn.LeakyReLU(0.2))],
        nn.Flatten(), sn(nn.Linear(2 * h * q * q, 1)),
    )


def _spectral_norm(c: GANConfig):
    if c.norm == "spectral_norm":
        return nn.utils.parametrizations.spectral_norm
    return lambda module: module


def _uniform_init(module: nn.Module, bound: Optional[float]) -> None:
    """pylearn2's ``irange``: weights ~ U(-bound, bound), biases 0."""
    if bound is None:
        return
    for layer in module.modules():
        if isinstance(layer, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.uniform_(layer.weight, -bound, bound)
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)


class GAN(Generator):
    """Generator G and discriminator D, trained with two optimizers (see ``configure_optimizers``)."""

    family = "gan"
    config_class = GANConfig

    def __init__(self, config: GANConfig):
        super().__init__(config)
        build = {"mlp": (_mlp_generator, _mlp_discriminator), "dcgan": (_dcgan_generator, _dcgan_discriminator)}
        make_g, make_d = build[config.architecture]
        self.generator = make_g(config)
        _uniform_init(self.generator, config.generator_init_range)
        self.discriminator = make_d(config) if config.with_discriminator else None
        if self.discriminator is not None:
            _uniform_init(self.discriminator, config.discriminator_init_range)
        self.image_shape = (config.image_channels, config.image_size, config.image_size)

    def noise(self, n: int, generator: GeneratorArg = None) -> torch.Tensor:
        """z ~ p_z: N(0, I), or U(-sqrt 3, sqrt 3)^d."""
        z = randn_tensor((n, self.config.latent_dim), generator=generator, device=self.device, dtype=self.dtype)
        if self.config.noise == "uniform":
            # the normal CDF maps N(0, 1) to U(0, 1); drawn this way, one seed gives one z in either noise
            z = (torch.special.ndtr(z) * 2 - 1) * math.sqrt(3)
        return z

    def to_model_range(self, x: torch.Tensor) -> torch.Tensor:
        """Images in [0, 1] -> the range of G's output ([-1, 1] for tanh)."""
        return x * 2 - 1 if self.config.output_activation == "tanh" else x

    #: D neither samples nor exports: the Trainer's EMA averages G only (D's copy follows the live D)
    ema_exclude = ("discriminator.",)

    def on_fit_end(self, batches) -> None:
        """Export the generator only (``with_discriminator=False``): G is all that samples; D, needed
        only to train on, stays in the run's checkpoints, which ``--resume`` continues."""
        self.discriminator = None
        self.config = self.config.model_copy(update={"with_discriminator": False})

    # -- training ---------------------------------------------------------------------------

    def steps_per_optimizer(self) -> Mapping[str, int]:
        """k discriminator steps, each on its own batch, then one generator step (Algorithm 1)."""
        return {"discriminator": self.config.discriminator_steps}

    def configure_optimizers(self, train: TrainConfig) -> dict[str, torch.optim.Optimizer]:
        """One optimizer for D, then one for G, as ``train`` names it (``zoo_core.optim.build_optimizer``;
        DCGAN: Adam with betas (0.5, 0.999); the paper: SGD with momentum). With ``final_momentum``
        the momentum of both ramps up."""
        self._require_discriminator()
        optimizers = {"discriminator": build_optimizer(self.discriminator.parameters(), train),
                      "generator": build_optimizer(self.generator.parameters(), train)}
        if self.config.final_momentum is not None:
            for optimizer in optimizers.values():
                ramp_momentum(optimizer, self.config.final_momentum, self.config.momentum_ramp_steps)
        return optimizers

    def training_step(self, batch, *, optimizer: str = "discriminator") -> dict[str, torch.Tensor]:
        """``optimizer="discriminator"``: descend -V in D (plus the R1 penalty); ``"generator"``: the generator loss."""
        self._require_discriminator()
        x = batch[0] if isinstance(batch, (list, tuple)) else batch
        x = self.to_model_range(x)
        z = self.noise(x.shape[0])
        if optimizer == "discriminator":
            gamma = self.config.r1_gamma
            if gamma:
                x = x.detach().requires_grad_(True)
            real_logits = self.discriminator(x)
            fake_logits = self.discriminator(self.generator(z).detach())
            out = {"loss": discriminator_loss(real_logits, fake_logits) * (self.config.discriminator_loss_scale or 1.0)}
            if gamma:
                out["r1"] = r1_penalty(real_logits, x)
                out["loss"] = out["loss"] + gamma / 2 * out["r1"]
                out["r1"] = out["r1"].detach()
            out["d_real"] = torch.sigmoid(real_logits).mean().detach()
            out["d_fake"] = torch.sigmoid(fake_logits).mean().detach()
            return out
        if optimizer == "generator":
            return {"loss": generator_loss(self.discriminator(self.generator(z)), self.config.generator_loss)}
        raise ValueError(f"optimizer must be 'discriminator' or 'generator', got {optimizer!r}")

    def _require_discriminator(self) -> None:
        if self.discriminator is None:
            raise ValueError(
                "this GAN was saved without its discriminator (a generator-only export, with_discriminator=false): "
                "it samples but cannot train; resume from the training run's checkpoints, or train a new one"
            )

    # -- sampling ---------------------------------------------------------------------------

    sampler_options = {"temperature": "scale of the noise z (default 1.0; lower: less varied, cleaner)"}

    @torch.no_grad()
    def sample(self, n: int, *, generator: GeneratorArg = None, **options: Any) -> torch.Tensor:
        """x = G(z), z ~ p_z; (n, C, H, W) in [0, 1]. ``generator``: a torch.Generator on any
        device, or a list of n (one per sample)."""
        self.check_sampler_options(options)
        z = float(options.get("temperature", 1.0)) * self.noise(n, generator)
        x = self.generator(z).float()
        return ((x + 1) / 2 if self.config.output_activation == "tanh" else x).clamp(0, 1)

    def example_batch(self, batch_size: int, *, generator: Optional[torch.Generator] = None) -> torch.Tensor:
        return torch.rand(batch_size, *self.image_shape, generator=generator)


def ramp_momentum(optimizer: torch.optim.Optimizer, final: float, steps: int) -> None:
    """Raise every param group's momentum linearly from its initial value to ``final`` over ``steps``
    optimizer steps (pylearn2's MomentumAdjustor, per step instead of per epoch). The count lives in
    the param groups, so it is saved and restored with the optimizer's state (checkpoints resume it)."""
    for group in optimizer.param_groups:
        if "momentum" not in group:
            raise ValueError(f"final_momentum needs an optimizer with momentum (SGD), got {type(optimizer).__name__}")
        group.setdefault("initial_momentum", group["momentum"])
        group.setdefault("momentum_step", 0)

    def before_step(optimizer, args, kwargs):
        for group in optimizer.param_groups:
            progress = min(1.0, group["momentum_step"] / steps)
            group["momentum"] = group["initial_momentum"] + progress * (final - group["initial_momentum"])
            group["momentum_step"] += 1

    optimizer.register_step_pre_hook(before_step)
