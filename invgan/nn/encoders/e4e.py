"""e4e's encoder (Tov et al., "Designing an Encoder for StyleGAN Image Manipulation", 2021).

The network is pSp's `GradualStyleEncoder` (same trunk, pyramid and heads, same state-dict
names, so `Encoder4Editing` checkpoints load into it), read differently: the first head's code
w0 is the code of every layer, and each later head adds an offset to its own layer,

    codes[:, 0] = head_0(coarsest),    codes[:, i] = head_0(coarsest) + head_i(level_i),

which keeps the codes close to W (e4e's "Delta" design). This is e4e's inference stage, where
every offset is used.
"""

from __future__ import annotations

import torch

from invgan.nn.encoders.psp import GradualStyleEncoder


class E4EEncoder(GradualStyleEncoder):
    """Image (N, channels, R, R) in [-1, 1] -> W+ codes (N, n_latent, w_dim) as w0 + offsets;
    arguments as `GradualStyleEncoder`."""

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """W+ codes, before any average latent is added."""
        heads = super().forward(images)
        w0 = heads[:, :1]
        return torch.cat([w0, heads[:, 1:] + w0], dim=1)
