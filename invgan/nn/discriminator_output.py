"""The result of a discriminator with a latent head."""

from __future__ import annotations

from typing import NamedTuple

import torch


class DiscriminatorOutput(NamedTuple):
    """Real/fake logits (N,), inferred latents (N, w_dim) and intermediate trunk features."""

    logits: torch.Tensor
    latents: torch.Tensor
    features: list[torch.Tensor]
