"""Building blocks of the StyleGAN2 synthesis network: constant input, styled conv, to-image."""

from __future__ import annotations

import torch
from torch import nn

from invgan.nn.stylegan2.equalized import BiasLeakyReLU
from invgan.nn.stylegan2.fir import Upsample
from invgan.nn.stylegan2.modulated_conv import ModulatedConv2d


class ConstantInput(nn.Module):
    """The learned 4x4 input of the synthesis network (state dict: `input`)."""

    def __init__(self, channels: int, size: int = 4) -> None:
        super().__init__()
        self.input = nn.Parameter(torch.randn(1, channels, size, size))

    def forward(self, batch_size: int) -> torch.Tensor:
        """The constant repeated `batch_size` times."""
        return self.input.expand(batch_size, -1, -1, -1)


class NoiseInjection(nn.Module):
    """The learned strength of a layer's single-channel noise (state dict: `weight`, init 0)."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(1))

    def forward(self, noise: torch.Tensor) -> torch.Tensor:
        """weight * noise, the term the layer adds to its convolution's output."""
        return self.weight * noise


class StyledConv(nn.Module):
    """Modulated 3x3 conv (optionally 2x upsampling), noise, then bias + scaled leaky ReLU.

    State dict: `conv.*`, `noise.weight`, `activate.bias`.
    """

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, upsample: bool = False):
        super().__init__()
        self.conv = ModulatedConv2d(in_channels, out_channels, 3, w_dim, upsample=upsample)
        self.noise = NoiseInjection()
        self.activate = BiasLeakyReLU(out_channels)

    def forward(
        self, x: torch.Tensor, w: torch.Tensor, noise: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Apply the layer to x (N, in, H, W) with style w (N, w_dim) and a noise map
        broadcasting to (N, 1, H_out, W_out); fresh N(0, 1) noise per sample when None."""
        if noise is None:
            factor = 2 if self.conv.upsample else 1
            size = (x.shape[0], 1, x.shape[2] * factor, x.shape[3] * factor)
            noise = torch.randn(size, device=x.device, dtype=x.dtype)
        # The scaled noise rides in the conv's demodulation multiply-add.
        return self.activate(self.conv(x, w, self.noise(noise)))


class ToImage(nn.Module):
    """Modulated 1x1 conv to image channels without demodulation, plus bias; adds the skip.

    The skip (the image so far, at half resolution) is upsampled and added, so the output
    image is the sum of every resolution's contribution (StyleGAN2's skip generator).
    State dict: `conv.*`, `bias` (1, channels, 1, 1) and, if it upsamples, `upsample.kernel`.
    """

    def __init__(self, in_channels: int, w_dim: int, channels: int, upsample: bool = True):
        super().__init__()
        if upsample:
            self.upsample = Upsample(channels)
        self.conv = ModulatedConv2d(in_channels, channels, 1, w_dim, demodulate=False)
        self.bias = nn.Parameter(torch.zeros(1, channels, 1, 1))

    def forward(
        self, x: torch.Tensor, w: torch.Tensor, skip: torch.Tensor | None = None
    ) -> torch.Tensor:
        """This resolution's image contribution, plus the upsampled `skip` if given."""
        out = self.conv(x, w, self.bias)
        if skip is not None:
            out = out + self.upsample(skip)
        return out
