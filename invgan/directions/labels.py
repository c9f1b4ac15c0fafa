"""Labelled images for InterFaceGAN: a binary attribute per image, balanced and checked.

Sources (`conf/application/direction/labels/`): the checkpoint's own dataset
(`invgan.directions.dataset_labels`), a CSV beside a folder of images or CelebA's
`list_attr_celeba.txt` (`invgan.directions.label_files`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import torch

# Fewer images of a class leave too few for both the boundary and its held-out accuracy.
MIN_PER_CLASS = 5
ON_MISSING = ("fail", "skip")


class LabelledImages(NamedTuple):
    """Images in [-1, 1] (N, C, H, W), a boolean attribute (N,) and what it means."""

    images: torch.Tensor
    labels: torch.Tensor
    attribute: str


def binary_labels(
    values: Sequence[str], positive: Sequence[str] | None, attribute: str, source: str
) -> torch.Tensor:
    """True where the value is one of `positive`; without `positive` the column must be
    binary: 1 / true is positive, 0 / -1 / false negative (CelebA's attributes are +1 / -1)."""
    if positive is not None:
        wanted = {str(value) for value in positive}
        return torch.tensor([str(value) in wanted for value in values], dtype=torch.bool)
    truth = {"1": True, "true": True, "0": False, "-1": False, "false": False}
    unknown = sorted({str(v) for v in values if str(v).strip().lower() not in truth})
    if unknown:
        raise ValueError(
            f"attribute {attribute!r} in {source} is not binary (values such as "
            f"{', '.join(unknown[:5])}): set positive=[<value>, ...] to say which values count "
            "as the attribute being present"
        )
    return torch.tensor([truth[str(v).strip().lower()] for v in values], dtype=torch.bool)


def balanced_subset(
    labels: torch.Tensor, max_per_class: int | None, attribute: str, source: str, seed: int = 0
) -> torch.Tensor:
    """Sorted indices of at most `max_per_class` images of each class, drawn with `seed`.

    Raises when a class has fewer than MIN_PER_CLASS images.
    """
    counts = {
        name: int((labels == cls).sum()) for name, cls in (("with", True), ("without", False))
    }
    if min(counts.values()) < MIN_PER_CLASS:
        raise ValueError(
            f"attribute {attribute!r} in {source}: {counts['with']} image(s) with it and "
            f"{counts['without']} without; InterFaceGAN needs at least {MIN_PER_CLASS} of each "
            "(to fit the boundary and measure its held-out accuracy): label more images or "
            "choose another attribute or positive values"
        )
    rng = torch.Generator().manual_seed(seed)
    chosen = []
    for cls in (True, False):
        members = torch.nonzero(labels == cls).flatten()
        members = members[torch.randperm(len(members), generator=rng)]
        chosen.append(members[:max_per_class] if max_per_class is not None else members)
    return torch.cat(chosen).sort().values


def check_on_missing(on_missing: str) -> None:
    """Refuse an unknown on_missing policy."""
    if on_missing not in ON_MISSING:
        raise ValueError(f"on_missing={on_missing!r}; choose one of {', '.join(ON_MISSING)}")
