"""What a recipe's optimizer option is (`model.optimizer`, `model.optimizer_g`, ...): a Hydra
partial (`_partial_: true`) that the recipe completes with the parameters it trains."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

import torch
from torch import nn


class OptimizerFactory(Protocol):
    """A configured optimizer still missing its parameters, which the recipe passes as
    `params=` in `configure_optimizers`."""

    def __call__(self, params: Iterable[nn.Parameter]) -> torch.optim.Optimizer:
        """The optimizer over `params`."""
        ...
