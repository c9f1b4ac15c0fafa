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


def scaled_leaky_relu(x: torch.Tensor, gain: float = ACTIVATION_GAIN) -> torch.Tensor:
    """gain * leaky_relu(x, 0.2); a gain of exactly 1 costs no multiplication."""
    out = F.leaky_relu(x, NEGATIVE_SLOPE)
    return out if gain == 1.0 else out * gain


def bias_leaky_relu(
    x: torch.Tensor, bias: torch.Tensor, gain: float = ACTIVATION_GAIN
) -> torch.Tensor:
    """gain * leaky_relu(x + bias, 0.2) with the bias broadcast over dim 1 (channels)."""
    return scaled_leaky_relu(x + bias.view(1, -1, *([1] * (x.ndim - 2))), gain)


class BiasLeakyReLU(nn.Module):
    """Learned per-channel bias followed by the scaled leaky ReLU (state dict: `bias`).

    `gain` defaults to sqrt(2); a layer whose output is scaled by a constant c > 0 folds it in
    as sqrt(2) * c, since leaky ReLU commutes with positive scaling.
    """

    def __init__(self, channels: int, gain: float = ACTIVATION_GAIN) -> None:
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(channels))
        self.gain = gain

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Add the bias and activate."""
        return bias_leaky_relu(x, self.bias, self.gain)


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

    def effective_weight(self) -> torch.Tensor:
        """The weight applied at run time (stored weight times its scale)."""
        return self.weight * self.scale

    def forward(self, x: torch.Tensor, gain: float = 1.0) -> torch.Tensor:
        """Map x of shape (N, in_dim) to (N, out_dim), times `gain` (before any activation)."""
        # One addmm: alpha and beta apply the run-time scales (and the gain), so neither the
        # weight nor the bias is copied and scaled at every call.
        out = torch.addmm(
            self.bias, x, self.weight.t(), beta=self.lr_mul * gain, alpha=self.scale * gain
        )
        return scaled_leaky_relu(out) if self.activate else out


class EqualConv2d(nn.Module):
    """Bias-free 2-D convolution with equalized learning rate (a bias, if any, follows it).

    A constant `gain` on the output is folded into the run-time weight scale.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int,
        padding: int,
        gain: float = 1.0,
    ) -> None:
        super().__init__()
        self.weight = nn.Parameter(
            torch.randn(out_channels, in_channels, kernel_size, kernel_size)
        )
        self.scale = gain / math.sqrt(in_channels * kernel_size**2)
        self.stride = stride
        self.padding = padding

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Convolve x of shape (N, in_channels, H, W)."""
        return F.conv2d(x, self.weight * self.scale, stride=self.stride, padding=self.padding)
