"""StyleGAN2's mapping network M: z -> w, pixel norm then equalized-lr MLP layers."""

from __future__ import annotations

import torch
from torch import nn

from invgan.nn.stylegan2.equalized import EqualLinear


class PixelNorm(nn.Module):
    """Normalise each sample to unit mean square over its features (no parameters)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x / sqrt(mean(x^2) + 1e-8) over dim 1."""
        return x * torch.rsqrt(x.pow(2).mean(dim=1, keepdim=True) + 1e-8)


class MappingNetwork(nn.Sequential):
    """Pixel norm followed by `n_mlp` square layers (equalized lr, bias + scaled leaky ReLU).

    A sequential container so that its state-dict names are `<i>.weight` and `<i>.bias` for
    i = 1..n_mlp (index 0 is the pixel norm), as in the official generators' `style` member.
    `lr_mul` = 0.01 slows the mapping down relative to the synthesis network, as in StyleGAN.
    """

    def __init__(self, w_dim: int, n_mlp: int = 8, lr_mul: float = 0.01) -> None:
        if n_mlp < 1:
            raise ValueError(f"n_mlp must be >= 1, got {n_mlp}")
        super().__init__(
            PixelNorm(),
            *(EqualLinear(w_dim, w_dim, lr_mul=lr_mul, activate=True) for _ in range(n_mlp)),
        )
        self.z_dim = w_dim
        self.w_dim = w_dim
