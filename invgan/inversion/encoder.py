"""The model's own inversion: E(x) for encoder recipes, D's latent head for InvGAN."""

from __future__ import annotations

import torch

from invgan.inversion.protocols import GenerativeModel, InvertibleModel
from invgan.nn.frozen_generator import FrozenGenerator
from invgan.utils.config_checks import ConfigValueError


def own_encoder(model: GenerativeModel, needed_by: str) -> InvertibleModel:
    """`model` as an invertible model, or an error saying that `needed_by` (a method and its
    setting) needs the encoder that this model (e.g. a bare generator file) lacks."""
    if isinstance(model, InvertibleModel):
        return model
    raise ConfigValueError(
        f"{needed_by} needs the model's own encoder, and this model ({type(model).__name__}) "
        "has no encoder: use inversion=optimization, which starts from the mean code"
    )


class EncoderInversion:
    """Inversion method interface (`encode`, `decode`, `reconstruct`) with one network pass.

    Every inversion method (this one, `invgan.inversion.optimization`) is built from
    `conf/inversion/` with the model it inverts, and evaluation only talks to the method. A
    model without an encoder (a bare generator file) is refused when asked to encode, so that
    evaluation and the studio report it where the encoder's numbers would be.
    """

    def __init__(self, model: GenerativeModel) -> None:
        self.model = model

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """Latent codes of images in [-1, 1]."""
        return own_encoder(self.model, "inversion=encoder").encode(images)

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """Images in [-1, 1] from latent codes."""
        return self.model.decode(codes)

    def reconstruct(self, images: torch.Tensor) -> torch.Tensor:
        """decode(encode(x))."""
        return self.decode(self.encode(images))

    def frozen_generator(self) -> FrozenGenerator:
        """The model's generator, which `decode` runs."""
        return self.model.frozen_generator()
