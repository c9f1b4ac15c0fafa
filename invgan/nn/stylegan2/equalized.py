"""Layers with equalized learning rate: weights stored as N(0, 1) and scaled at run time.

Scaling by the He constant in the forward pass rather than at initialisation gives every weight
the same effective learning rate under Adam (Karras et al., Progressive GANs, Section 4.1).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

# Leaky ReLU with slope 0.2, times sqrt(2) so that activations keep unit variance.
NEGATIVE_SLOPE = 0.2
ACTIVATION_GAIN = math.sqrt(2.0)


def bias_leaky_relu(x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """sqrt(2) * leaky_relu(x + bias, 0.2) with the bias broadcast over dim 1 (channels)."""
    bias = bias.view(1, -1, *([1] * (x.ndim - 2)))
    return F.leaky_relu(x + bias, NEGATIVE_SLOPE) * ACTIVATION_GAIN


class BiasLeakyReLU(nn.Module):
    """Learned per-channel bias followed by the scaled leaky ReLU (state dict: `bias`)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Add the bias and activate."""
        return bias_leaky_relu(x, self.bias)


class EqualLinear(nn.Module):
    """Linear layer with equalized learning rate, optionally fused with bias + leaky ReLU.

    `lr_mul` scales the effective learning rate: parameters are stored divided by it and
    multiplied back at run time (the mapping network uses 0.01).
    """

    def __init__(
        self,
        in_dim: int,
        out_dim: int,
        bias_init: float = 0.0,
        lr_mul: float = 1.0,
        activate: bool = False,
    ) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_dim, in_dim) / lr_mul)
        self.bias = nn.Parameter(torch.full((out_dim,), float(bias_init)))
        self.scale = lr_mul / math.sqrt(in_dim)
        self.lr_mul = lr_mul
        self.activate = activate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map x of shape (N, in_dim) to (N, out_dim)."""
        bias = self.bias * self.lr_mul
        if self.activate:
            return bias_leaky_relu(F.linear(x, self.weight * self.scale), bias)
        return F.linear(x, self.weight * self.scale, bias)


class EqualConv2d(nn.Module):
    """Bias-free 2-D convolution with equalized learning rate (a bias, if any, follows it)."""

    def __init__(
        self, in_channels: int, out_channels: int, kernel_size: int, stride: int, padding: int
    ) -> None:
        super().__init__()
        self.weight = nn.Parameter(
            torch.randn(out_channels, in_channels, kernel_size, kernel_size)
        )
        self.scale = 1.0 / math.sqrt(in_channels * kernel_size**2)
        self.stride = stride
        self.padding = padding

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Convolve x of shape (N, in_channels, H, W)."""
        return F.conv2d(x, self.weight * self.scale, stride=self.stride, padding=self.padding)
