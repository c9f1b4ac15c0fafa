"""Convolution layers and residual blocks of the StyleGAN2 discriminator."""

from __future__ import annotations

import math

import torch
from torch import nn

from invgan.nn.stylegan2.equalized import BiasLeakyReLU, EqualConv2d
from invgan.nn.stylegan2.fir import BLUR_TAPS, Blur


class ConvLayer(nn.Sequential):
    """[blur ->] equalized conv [-> bias + scaled leaky ReLU].

    With `downsample` the blur low-passes before a stride-2 conv (anti-aliasing). A sequential
    container so that the state-dict names are the official ones: `0.weight`, `1.bias`, or with
    downsampling `0.kernel`, `1.weight`, `2.bias`.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        downsample: bool = False,
        activate: bool = True,
    ) -> None:
        layers: list[nn.Module] = []
        if downsample:
            # Pad so that the blurred map, convolved with stride 2, has exactly half the side.
            total = len(BLUR_TAPS) - 2 + kernel_size - 1
            layers.append(Blur(pad=((total + 1) // 2, total // 2)))
            layers.append(EqualConv2d(in_channels, out_channels, kernel_size, 2, 0))
        else:
            layers.append(EqualConv2d(in_channels, out_channels, kernel_size, 1, kernel_size // 2))
        if activate:
            layers.append(BiasLeakyReLU(out_channels))
        super().__init__(*layers)


class ResBlock(nn.Module):
    """Two 3x3 convs (the second halves the side) plus a 1x1 downsampling skip, over sqrt(2).

    State dict: `conv1.*`, `conv2.*`, `skip.*`.
    """

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv1 = ConvLayer(in_channels, in_channels, 3)
        self.conv2 = ConvLayer(in_channels, out_channels, 3, downsample=True)
        self.skip = ConvLayer(in_channels, out_channels, 1, downsample=True, activate=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Halve the side of x (N, in, H, W); dividing by sqrt(2) keeps the sum's variance."""
        return (self.conv2(self.conv1(x)) + self.skip(x)) / math.sqrt(2.0)
