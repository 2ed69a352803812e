"""The noise predictor eps_theta(x_t, t): a small UNet in the style of Ho et al. (2020), Appendix B
(sinusoidal time embedding, residual blocks with group norm, self-attention at low resolutions)."""

from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn


def timestep_embedding(t: torch.Tensor, dim: int, frequency_shift: int = 0) -> torch.Tensor:
    """The Transformer's sinusoidal position embedding of the timestep index, (N,) -> (N, dim):
    [sin(t w_i), cos(t w_i)] with w_i = 10000^(-i / (dim/2 - frequency_shift)), i = 0..dim/2-1.

    Ho et al.'s code divides by dim/2 - 1 (``frequency_shift=1``, so the last frequency is 1/10000).
    """
    half = dim // 2
    # (-ln(10000) i) / (half - shift), in this order and in float32: the rounding of Ho et al.'s port
    exponent = -math.log(10000) * torch.arange(half, device=t.device, dtype=torch.float32) / (half - frequency_shift)
    angles = t.float()[:, None] * torch.exp(exponent)[None]
    return torch.cat([torch.sin(angles), torch.cos(angles)], dim=1)


class ResBlock(nn.Module):
    """GroupNorm -> SiLU -> conv, plus the projected time embedding, -> GroupNorm -> SiLU -> dropout -> conv, + skip."""

    def __init__(self, in_channels: int, out_channels: int, time_dim: int, groups: int, dropout: float, eps: float = 1e-5):
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, in_channels, eps=eps)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.time_proj = nn.Linear(time_dim, out_channels)
        self.norm2, self.dropout = nn.GroupNorm(groups, out_channels, eps=eps), nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        nn.init.zeros_(self.conv2.weight)
        nn.init.zeros_(self.conv2.bias)
        self.skip = nn.Conv2d(in_channels, out_channels, 1) if in_channels != out_channels else nn.Identity()

    def forward(self, x: torch.Tensor, time: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.time_proj(F.silu(time))[:, :, None, None]
        h = self.conv2(self.dropout(F.silu(self.norm2(h))))
        return self.skip(x) + h


class AttentionBlock(nn.Module):
    """Single-head self-attention over the H*W positions, with a residual connection."""

    def __init__(self, channels: int, groups: int, eps: float = 1e-5):
        super().__init__()
        self.norm = nn.GroupNorm(groups, channels, eps=eps)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.out = nn.Conv2d(channels, channels, 1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(n, 3, c, h * w).transpose(-1, -2).unbind(1)  # (n, hw, c) each
        attended = F.scaled_dot_product_attention(q, k, v)
        return x + self.out(attended.transpose(-1, -2).reshape(n, c, h, w))


class Downsample(nn.Conv2d):
    """A stride-2 3x3 convolution. ``same_padding``: pad one row and column at the bottom and right
    only, then convolve unpadded (TensorFlow's 'SAME', as in Ho et al.'s code); else pad 1 on every side."""

    def __init__(self, channels: int, same_padding: bool):
        super().__init__(channels, channels, 3, stride=2, padding=0 if same_padding else 1)
        self.same_padding = same_padding

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(F.pad(x, (0, 1, 0, 1)) if self.same_padding else x)


class UNet(nn.Module):
    """eps_theta(x_t, t) for square images; the resolution halves after every level but the last."""

    def __init__(self, image_channels: int, image_size: int, base_channels: int, channel_mults: Sequence[int],
                 num_res_blocks: int, attention_resolutions: Sequence[int], dropout: float, groups: int,
                 norm_eps: float = 1e-5, frequency_shift: int = 0, same_padding_downsample: bool = False):
        super().__init__()
        self.base_channels, self.frequency_shift = base_channels, frequency_shift
        time_dim = 4 * base_channels
        res = lambda cin, cout: ResBlock(cin, cout, time_dim, groups, dropout, norm_eps)  # noqa: E731
        attention = lambda c: AttentionBlock(c, groups, norm_eps)  # noqa: E731
        self.time_mlp = nn.Sequential(nn.Linear(base_channels, time_dim), nn.SiLU(), nn.Linear(time_dim, time_dim))
        self.conv_in = nn.Conv2d(image_channels, base_channels, 3, padding=1)

        self.down = nn.ModuleList()
        skip_channels, channels, resolution = [base_channels], base_channels, image_size
        for level, mult in enumerate(channel_mults):
            for _ in range(num_res_blocks):
                block = nn.ModuleList([res(channels, base_channels * mult)])
                channels = base_channels * mult
                if resolution in attention_resolutions:
                    block.append(attention(channels))
                self.down.append(block)
                skip_channels.append(channels)
            if level != len(channel_mults) - 1:
                self.down.append(nn.ModuleList([Downsample(channels, same_padding_downsample)]))
                skip_channels.append(channels)
                resolution //= 2

        self.mid = nn.ModuleList([res(channels, channels), attention(channels), res(channels, channels)])

        self.up = nn.ModuleList()
        for level, mult in reversed(list(enumerate(channel_mults))):
            for _ in range(num_res_blocks + 1):
                block = nn.ModuleList([res(channels + skip_channels.pop(), base_channels * mult)])
                channels = base_channels * mult
                if resolution in attention_resolutions:
                    block.append(attention(channels))
                self.up.append(block)
            if level != 0:
                self.up.append(nn.ModuleList([nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(channels, channels, 3, padding=1)]))
                resolution *= 2
        self.norm_out = nn.GroupNorm(groups, channels, eps=norm_eps)
        self.conv_out = nn.Conv2d(channels, image_channels, 3, padding=1)
        nn.init.zeros_(self.conv_out.weight)
        nn.init.zeros_(self.conv_out.bias)

    @staticmethod
    def _run(block: nn.ModuleList, h: torch.Tensor, time: torch.Tensor) -> torch.Tensor:
        for layer in block:
            h = layer(h, time) if isinstance(layer, ResBlock) else layer(h)
        return h

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        time = self.time_mlp(timestep_embedding(t, self.base_channels, self.frequency_shift).to(self.conv_in.weight.dtype))
        h = self.conv_in(x)
        skips = [h]
        for block in self.down:
            h = self._run(block, h, time)
            skips.append(h)
        h = self._run(self.mid, h, time)
        for block in self.up:
            if isinstance(block[0], ResBlock):
                h = torch.cat([h, skips.pop()], dim=1)
            h = self._run(block, h, time)
        return self.conv_out(F.silu(self.norm_out(h)))
