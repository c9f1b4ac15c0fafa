"""Batch norm whose per-channel gain and bias are linear functions of the latent code."""

from __future__ import annotations

import torch
from torch import nn

from invgan.nn.biggan.spectral_norm import sn_linear


class ConditionalBatchNorm2d(nn.Module):
    """x_hat * (1 + gain(w)) + bias(w), with x_hat batch-normalised without its own affine.

    BigGAN conditions every generator block this way (on the class embedding and a chunk of
    z); here the whole code w conditions every block. The gain is an offset from 1 so that
    a zero code leaves plain batch norm.
    """

    def __init__(self, width: int, w_dim: int) -> None:
        super().__init__()
        self.norm = nn.BatchNorm2d(width, affine=False)
        self.gain = sn_linear(w_dim, width)
        self.bias = sn_linear(w_dim, width)

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        """Normalise x (N, C, H, W); modulate each sample's channels by its code w (N, w_dim)."""
        gain = 1.0 + self.gain(w)[:, :, None, None]
        return self.norm(x) * gain + self.bias(w)[:, :, None, None]
