"""Mean average precision over classes (InvGAN paper, Table 2: "mean average precision ...
averaged over 20 attributes", reported as mean +- standard deviation over the attributes).

Each class (a digit, an ImageNet class, a CelebA attribute) is scored one-against-the-rest:
AP = sum_n (R_n - R_{n-1}) P_n over the distinct score thresholds, as scikit-learn's
`average_precision_score` and torchmetrics (used here) compute it, without interpolation.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torchmetrics.functional.classification import (
    multiclass_average_precision,
    multilabel_average_precision,
)


class ClassAveragePrecision(NamedTuple):
    """Per-class AP (NaN for a class with no positive example), and the mean and population
    standard deviation over the classes that have one."""

    per_class: torch.Tensor
    mean: float
    std: float

    @property
    def scored(self) -> torch.Tensor:
        """Which classes have a positive example (and so an AP)."""
        return ~self.per_class.isnan()


def class_average_precision(scores: torch.Tensor, targets: torch.Tensor) -> ClassAveragePrecision:
    """AP of each class from `scores` (N, K): with `targets` (N,) class indices (multi-class:
    scores are class probabilities), or (N, K) 0 / 1 (multi-label: one score per attribute)."""
    scores = scores.detach().float().cpu()
    targets = targets.detach().cpu()
    if scores.ndim != 2:
        raise ValueError(f"scores must be (images, classes), got shape {tuple(scores.shape)}")
    num_classes = scores.shape[1]
    if targets.ndim == 1:
        if int(targets.min()) < 0 or int(targets.max()) >= num_classes:
            raise ValueError(f"class indices must lie in [0, {num_classes - 1}]")
        present = torch.bincount(targets.long(), minlength=num_classes) > 0
        per_class = multiclass_average_precision(
            scores, targets.long(), num_classes=num_classes, average=None, thresholds=None
        )
    else:
        if targets.shape != scores.shape:
            raise ValueError(
                f"multi-label targets {tuple(targets.shape)} and scores "
                f"{tuple(scores.shape)} must have the same shape"
            )
        present = targets.sum(0) > 0
        per_class = multilabel_average_precision(
            scores, targets.long(), num_labels=num_classes, average=None, thresholds=None
        )
    # AP is undefined without a positive example: such classes are left out of the mean
    # (as torchmetrics' macro average does) and reported as NaN, never as 0.
    per_class = torch.where(present, per_class.float(), torch.nan)
    if not bool(present.any()):
        raise ValueError("no class has a positive example among the evaluated images")
    kept = per_class[present].double()
    return ClassAveragePrecision(per_class, float(kept.mean()), float(kept.std(correction=0)))
