"""The in-domain encoder's loss weights and R1 schedule (`model.pixel_weight`,
`model.perceptual_weight`, `model.adversarial_weight`, `model.r1_gamma`, `model.r1_interval`),
validated on construction; the defaults are conf/model/indomain.yaml's."""

from __future__ import annotations

from dataclasses import dataclass

from invgan.modules.validated_config import ValidatedConfig


@dataclass(frozen=True)
class InDomainLossConfig(ValidatedConfig):
    """IDInvert's encoder and discriminator losses; an unusable value fails at construction,
    naming its key."""

    pixel_weight: float = 1.0
    perceptual_weight: float = 0.8  # LPIPS-VGG in place of IDInvert's VGG16 conv4_3 distance
    adversarial_weight: float = 0.1
    r1_gamma: float = 10.0  # IDInvert's R1 gamma, applied lazily here
    r1_interval: int = 16
