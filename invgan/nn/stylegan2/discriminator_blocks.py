"""Convolution layers and residual blocks of the StyleGAN2 discriminator."""

from __future__ import annotations

import math

import torch
from torch import nn

from invgan.nn.stylegan2.equalized import ACTIVATION_GAIN, BiasLeakyReLU, EqualConv2d
from invgan.nn.stylegan2.fir import BLUR_TAPS, Blur


class ConvLayer(nn.Sequential):
    """[blur ->] equalized conv [-> bias + scaled leaky ReLU].

    With `downsample` the blur low-passes before a stride-2 conv (anti-aliasing); before a 1x1
    conv the blur itself takes the stride, which computes only the pixels the conv would keep.
    A constant `gain` on the output is folded into the activation's gain, or without an
    activation into the conv's weight scale. A sequential container so that the state-dict
    names are the official ones: `0.weight`, `1.bias`, or with downsampling `0.kernel`,
    `1.weight`, `2.bias`.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        downsample: bool = False,
        activate: bool = True,
        gain: float = 1.0,
    ) -> None:
        layers: list[nn.Module] = []
        conv_gain = 1.0 if activate else gain
        if downsample:
            # Pad so that the blurred map, convolved with stride 2, has exactly half the side.
            padding = (len(BLUR_TAPS) - 2 + kernel_size - 1) // 2
            if kernel_size == 1:
                layers.append(Blur(in_channels, padding, stride=2))
                layers.append(EqualConv2d(in_channels, out_channels, 1, 1, 0, conv_gain))
            else:
                layers.append(Blur(in_channels, padding))
                layers.append(EqualConv2d(in_channels, out_channels, kernel_size, 2, 0, conv_gain))
        else:
            padding = kernel_size // 2
            layers.append(
                EqualConv2d(in_channels, out_channels, kernel_size, 1, padding, conv_gain)
            )
        if activate:
            layers.append(BiasLeakyReLU(out_channels, ACTIVATION_GAIN * gain))
        super().__init__(*layers)


class ResBlock(nn.Module):
    """Two 3x3 convs (the second halves the side) plus a 1x1 downsampling skip, over sqrt(2).

    State dict: `conv1.*`, `conv2.*`, `skip.*`.
    """

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv1 = ConvLayer(in_channels, in_channels, 3)
        # Dividing the sum by sqrt(2) keeps its variance; both branches fold the division into
        # scales they apply anyway (for conv2 it cancels the activation gain sqrt(2)).
        branch_gain = 1.0 / math.sqrt(2.0)
        self.conv2 = ConvLayer(in_channels, out_channels, 3, downsample=True, gain=branch_gain)
        self.skip = ConvLayer(
            in_channels, out_channels, 1, downsample=True, activate=False, gain=branch_gain
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Halve the side of x (N, in, H, W): (conv2(conv1(x)) + skip(x)) / sqrt(2)."""
        return self.conv2(self.conv1(x)) + self.skip(x)
