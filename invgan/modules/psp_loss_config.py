"""pSp's loss weights (`model.l2_weight`, `model.lpips_weight`, `model.id_weight`,
`model.w_norm_weight`), validated on construction; their defaults are conf/model/psp.yaml's,
which e4e and ReStyle inherit (a test keeps the two the same)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from invgan.modules.validated_config import ValidatedConfig

# pSp's loss terms, each weighted by `model.<name>_weight`.
LOSSES = ("l2", "lpips", "id", "w_norm")


@dataclass(frozen=True)
class PSPLossConfig(ValidatedConfig):
    """pSp's loss weights; an unusable value fails at construction, naming its key."""

    l2_weight: float = 1.0
    lpips_weight: float = 0.8
    id_weight: float = 0.0  # pSp: 0.1 for faces, with the ArcFace weights
    w_norm_weight: float = 0.0  # pSp's image-to-image tasks; off for inversion

    @classmethod
    def options(cls, arguments: Mapping[str, Any]) -> dict[str, Any]:
        """Those of a recipe's `arguments` that are this config's fields."""
        names = {field.name for field in fields(cls)}
        return {name: value for name, value in arguments.items() if name in names}

    def weights(self) -> dict[str, float]:
        """Each pSp term's weight, by loss name (`LOSSES`)."""
        return {name: getattr(self, f"{name}_weight") for name in LOSSES}

    def check(self) -> None:
        """At least one term ties the codes to the images."""
        if self.l2_weight + self.lpips_weight + self.id_weight == 0:
            keys = [self.key(f"{name}_weight") for name in ("l2", "lpips", "id")]
            self.refuse(
                f"{keys[0]}, {keys[1]} and {keys[2]} are all 0: no loss ties the codes to the "
                "images; set one of them > 0"
            )
