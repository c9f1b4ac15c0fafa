"""BigGAN-style discriminator with the InvGAN latent head."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from invgan.nn.biggan.discriminator_block import DiscriminatorBlock
from invgan.nn.biggan.resolution import (
    BASE_SIZE,
    attention_index,
    check_widths,
    num_resamplings,
)
from invgan.nn.biggan.self_attention import SelfAttention
from invgan.nn.biggan.spectral_norm import sn_linear
from invgan.nn.discriminator_output import DiscriminatorOutput


def _pool(features: torch.Tensor) -> torch.Tensor:
    """BigGAN's head input: ReLU, then a sum (not a mean) over positions."""
    return F.relu(features).sum(dim=(2, 3))


class BigGANDiscriminator(nn.Module):
    """Image -> (real/fake logit, inferred w, features): residual down-blocks, two heads.

    Blocks halve the image down to 4x4 and one last block keeps 4x4, so a resolution of
    4 * 2**k needs k + 1 `width_multipliers` (`[1, 2, 4, 8, 16, 16]` with base width 64 is
    BigGAN's 128-px discriminator). `features` holds each block's output (after the attention
    block where there is one); both heads read `features[-1]` through ReLU and sum pooling.
    The real/fake head is one spectrally normalised linear layer, as in BigGAN. The latent
    head is a plain MLP: it regresses codes, for which a 1-Lipschitz bound buys nothing and
    limits how sharply codes can vary between images. Both heads branch from the shared trunk
    rather than one being derived from the other (InvGAN paper, Section 3.2).
    State-dict names: `blocks.<i>`, `attention`, `adversarial_head`, `latent_head`.
    """

    def __init__(
        self,
        w_dim: int,
        resolution: int,
        channels: int,
        base_width: int = 64,
        width_multipliers: Sequence[int] = (4, 4, 4, 4),
        attention_resolution: int | None = None,
        latent_hidden_dim: int = 512,
    ) -> None:
        super().__init__()
        self.w_dim = w_dim
        num_downsamplings = num_resamplings(resolution)
        check_widths(
            width_multipliers,
            num_downsamplings + 1,
            "discriminator",
            f"one per down-block from {resolution}x{resolution} to 4x4 and one for the last "
            "4x4 block",
        )
        widths = [base_width * int(m) for m in width_multipliers]
        self.blocks = nn.ModuleList(
            DiscriminatorBlock(
                in_width, out_width, downsample=i < num_downsamplings, preactivation=i > 0
            )
            for i, (in_width, out_width) in enumerate(
                zip([channels, *widths[:-1]], widths, strict=True)
            )
        )
        block_resolutions = [
            max(BASE_SIZE, resolution >> (i + 1)) for i in range(num_downsamplings + 1)
        ]
        self.attention_index = attention_index(
            block_resolutions, attention_resolution, "discriminator"
        )
        if self.attention_index is not None:
            self.attention = SelfAttention(widths[self.attention_index])
        self.adversarial_head = sn_linear(widths[-1], 1)
        self.latent_head = nn.Sequential(
            nn.Linear(widths[-1], latent_hidden_dim),
            nn.ReLU(),
            nn.Linear(latent_hidden_dim, w_dim),
        )

    def _trunk(self, x: torch.Tensor) -> list[torch.Tensor]:
        features = []
        for i, block in enumerate(self.blocks):
            x = block(x)
            if i == self.attention_index:
                x = self.attention(x)
            features.append(x)
        return features

    def forward(self, x: torch.Tensor) -> DiscriminatorOutput:
        """Return logits (N,), inferred latents (N, w_dim) and each trunk block's output."""
        features = self._trunk(x)
        pooled = _pool(features[-1])
        return DiscriminatorOutput(
            self.adversarial_head(pooled).squeeze(1), self.latent_head(pooled), features
        )

    def latents_from_features(self, features: list[torch.Tensor]) -> torch.Tensor:
        """Apply the latent head to trunk features returned by `forward`."""
        return self.latent_head(_pool(features[-1]))

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Infer latent codes only (the model-based inversion path)."""
        return self.latents_from_features(self._trunk(x))
