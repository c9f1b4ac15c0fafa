"""Mapping network M: z -> w."""

from __future__ import annotations

import torch
from torch import nn


class MappingMLP(nn.Module):
    """Multi-layer perceptron mapping a prior sample z to a latent code w.

    The InvGAN paper adds a 2-layer mapping network to DCGAN and BigGAN backbones (Section 3.1).
    """

    def __init__(self, z_dim: int, w_dim: int, hidden_dim: int = 256, num_layers: int = 2) -> None:
        super().__init__()
        if num_layers < 1:
            raise ValueError(f"num_layers must be >= 1, got {num_layers}")
        self.z_dim = z_dim
        self.w_dim = w_dim
        layers: list[nn.Module] = []
        in_dim = z_dim
        for _ in range(num_layers - 1):
            layers += [nn.Linear(in_dim, hidden_dim), nn.LeakyReLU(0.2)]
            in_dim = hidden_dim
        layers.append(nn.Linear(in_dim, w_dim))
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """Map z of shape (N, z_dim) to w of shape (N, w_dim)."""
        return self.net(z)
