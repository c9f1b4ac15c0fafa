"""SAGAN self-attention block, as used by BigGAN at one chosen resolution."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from invgan.nn.biggan.spectral_norm import sn_conv2d


class SelfAttention(nn.Module):
    """x + gain * attention(x): every position attends to a 2x max-pooled grid of keys.

    Queries and keys have width/8 channels and values width/2 (at least 1), as in SAGAN. The
    gain starts at 0 so that a new attention block begins as the identity.
    """

    def __init__(self, width: int) -> None:
        super().__init__()
        key_width, value_width = max(1, width // 8), max(1, width // 2)
        self.query = sn_conv2d(width, key_width, 1, bias=False)
        self.key = sn_conv2d(width, key_width, 1, bias=False)
        self.value = sn_conv2d(width, value_width, 1, bias=False)
        self.out = sn_conv2d(value_width, width, 1, bias=False)
        self.gain = nn.Parameter(torch.zeros(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Attend over all positions of x (N, C, H, W) with even H and W; same shape out."""
        n, _, height, width = x.shape
        query = self.query(x).flatten(2).transpose(1, 2)
        key = F.max_pool2d(self.key(x), 2).flatten(2).transpose(1, 2)
        value = F.max_pool2d(self.value(x), 2).flatten(2).transpose(1, 2)
        # SAGAN takes the softmax of raw dot products, without the 1/sqrt(d) scaling.
        attended = F.scaled_dot_product_attention(query, key, value, scale=1.0)
        attended = attended.transpose(1, 2).reshape(n, -1, height, width)
        return x + self.gain * self.out(attended)
