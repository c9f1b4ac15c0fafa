"""Spectrally normalised convolution and linear layers, orthogonally initialised as in BigGAN.

The weight is a `torch.nn.utils.parametrizations.spectral_norm` parametrization, so a layer's
state-dict names are `weight` -> `parametrizations.weight.original` (the raw weight, a
parameter) plus the power-iteration vectors `parametrizations.weight.0._u` and `._v` (buffers,
refined by one power iteration on every training-mode forward pass).
"""

from __future__ import annotations

from typing import cast

from torch import nn
from torch.nn.utils.parametrizations import spectral_norm


def sn_conv2d(
    in_channels: int, out_channels: int, kernel_size: int, *, bias: bool = True
) -> nn.Conv2d:
    """A stride-1, size-preserving conv whose weight (out, in*k*k) has spectral norm ~1."""
    conv = nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=bias)
    nn.init.orthogonal_(conv.weight)
    # The parametrization is added in place: the module returned is `conv` itself.
    return cast(nn.Conv2d, spectral_norm(conv))


def sn_linear(in_features: int, out_features: int, *, bias: bool = True) -> nn.Linear:
    """A linear layer whose weight has spectral norm ~1."""
    linear = nn.Linear(in_features, out_features, bias=bias)
    nn.init.orthogonal_(linear.weight)
    return cast(nn.Linear, spectral_norm(linear))
