"""e4e's latent discriminator (Tov et al., "Designing an Encoder for StyleGAN Image
Manipulation", 2021): an MLP on single codes w that tells the mapping network's codes M(z)
from an encoder's.

`num_layers` linear layers, each but the last of width `hidden_width` followed by a
LeakyReLU(0.2), the last to one logit; e4e uses four layers of width w_dim (512). State-dict
names follow e4e's `LatentCodesDiscriminator` (`mlp.0`, `mlp.2`, ...).
"""

from __future__ import annotations

import torch
from torch import nn

from invgan.utils.config_checks import check_arguments


class LatentDiscriminator(nn.Module):
    """Codes w (N, w_dim) -> logits (N,); `hidden_width` null means w_dim."""

    def __init__(self, w_dim: int, hidden_width: int | None = None, num_layers: int = 4) -> None:
        check_arguments(
            "model.discriminator",
            LatentDiscriminator,
            {"w_dim": w_dim, "hidden_width": hidden_width, "num_layers": num_layers},
        )
        super().__init__()
        width = hidden_width or w_dim
        widths = [w_dim] + [width] * (num_layers - 1)
        layers: list[nn.Module] = []
        for n_in, n_out in zip(widths[:-1], widths[1:], strict=True):
            layers += [nn.Linear(n_in, n_out), nn.LeakyReLU(0.2)]
        layers.append(nn.Linear(widths[-1], 1))
        self.mlp = nn.Sequential(*layers)

    def forward(self, codes: torch.Tensor) -> torch.Tensor:
        """One logit per code: positive for codes that look like M(z)."""
        return self.mlp(codes).squeeze(-1)
