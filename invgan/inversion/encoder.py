"""The model's own inversion: E(x) for encoder recipes, D's latent head for InvGAN."""

from __future__ import annotations

from typing import Any

import torch


class EncoderInversion:
    """Inversion method interface (`encode`, `decode`, `reconstruct`) with one network pass.

    Every inversion method (this one, `invgan.inversion.optimization`) is built from
    `conf/inversion/` with the model it inverts, and evaluation only talks to the method.
    """

    def __init__(self, model: Any) -> None:
        self.model = model

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """Latent codes of images in [-1, 1]."""
        return self.model.encode(images)

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """Images in [-1, 1] from latent codes."""
        return self.model.decode(codes)

    def reconstruct(self, images: torch.Tensor) -> torch.Tensor:
        """decode(encode(x))."""
        return self.decode(self.encode(images))
