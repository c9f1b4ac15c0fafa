"""StyleGAN2's modulated convolution: per-sample weights scaled by a style, then demodulated."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from invgan.nn.stylegan2.equalized import EqualLinear
from invgan.nn.stylegan2.fir import BLUR_TAPS, Blur


class ModulatedConv2d(nn.Module):
    """Convolution whose input channels are scaled by an affine function of w (the style).

    Demodulation rescales each sample's weights so every output channel has unit expected
    variance, which replaces StyleGAN's instance norm (StyleGAN2 paper, Section 2.2). All
    samples run as one grouped convolution. With `upsample`, a stride-2 transposed convolution
    is followed by the blur filter. State dict: `weight` (1, out, in, k, k), `modulation.*`,
    and `blur.kernel` when upsampling.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        w_dim: int,
        demodulate: bool = True,
        upsample: bool = False,
    ) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.kernel_size = kernel_size
        self.demodulate = demodulate
        self.upsample = upsample
        self.weight = nn.Parameter(
            torch.randn(1, out_channels, in_channels, kernel_size, kernel_size)
        )
        self.scale = 1.0 / math.sqrt(in_channels * kernel_size**2)
        # Styles start at 1 so that a fresh network behaves like an unmodulated one.
        self.modulation = EqualLinear(w_dim, in_channels, bias_init=1.0)
        if upsample:
            # The transposed conv gives 2 * side + kernel_size - 2 pixels; this padding brings
            # the blurred result back to 2 * side. Gain 4 offsets the stride-2 zero insertion.
            total = len(BLUR_TAPS) + 1 - kernel_size
            self.blur = Blur(pad=((total + 1) // 2, total // 2), gain=4.0)

    def _modulated_weight(self, w: torch.Tensor) -> torch.Tensor:
        """Per-sample weights (N, out, in, k, k): scaled by the style, demodulated if enabled."""
        style = self.modulation(w).view(-1, 1, self.in_channels, 1, 1)
        weight = self.scale * self.weight * style
        if self.demodulate:
            weight = weight * torch.rsqrt(weight.pow(2).sum(dim=(2, 3, 4), keepdim=True) + 1e-8)
        return weight

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        """Convolve x (N, in, H, W) with weights modulated by w (N, w_dim)."""
        n, _, h, width = x.shape
        weight = self._modulated_weight(w)
        k = self.kernel_size
        # Samples become groups of one convolution over a batch of one.
        x = x.reshape(1, n * self.in_channels, h, width)
        if self.upsample:
            weight = weight.transpose(1, 2).reshape(n * self.in_channels, self.out_channels, k, k)
            out = F.conv_transpose2d(x, weight, stride=2, groups=n)
            return self.blur(out.view(n, self.out_channels, *out.shape[2:]))
        weight = weight.reshape(n * self.out_channels, self.in_channels, k, k)
        out = F.conv2d(x, weight, padding=k // 2, groups=n)
        return out.view(n, self.out_channels, h, width)
