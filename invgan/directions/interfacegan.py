"""InterFaceGAN (Shen et al., "Interpreting the Latent Space of GANs for Semantic Face
Editing", CVPR 2020): the codes of images with and without an attribute are separated by a
hyperplane; its unit normal, towards the attribute, is the editing direction.

Here the codes are those of real labelled images, found by the configured inversion method
(the paper labels generated images with a classifier; inverted real images need no
classifier and give codes where the edited images will come from). The boundary is fitted on
a class-stratified part of them and its accuracy measured on the rest (the paper holds out
30%, as we do by default). With a `condition`, the direction is made orthogonal to the
condition attribute's boundary normal (the paper's conditional manipulation).
"""

from __future__ import annotations

import logging
from typing import Any

import torch

from invgan.directions.labels import LabelledImages
from invgan.directions.latent_directions import LatentDirections
from invgan.directions.linear_boundary import (
    LinearBoundary,
    accuracy,
    fit_linear_boundary,
    project_out,
)
from invgan.inversion.protocols import InversionMethod

log = logging.getLogger(__name__)


def stratified_holdout(
    labels: torch.Tensor, fraction: float, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """(fit, held-out) index sets with `fraction` of each class held out (at least one)."""
    if not 0 < fraction < 1:
        raise ValueError(f"holdout_fraction must be in (0, 1), got {fraction}")
    rng = torch.Generator().manual_seed(seed)
    fit, held_out = [], []
    for cls in (True, False):
        members = torch.nonzero(labels == cls).flatten()
        members = members[torch.randperm(len(members), generator=rng)]
        count = min(max(1, round(fraction * len(members))), len(members) - 1)
        held_out.append(members[:count])
        fit.append(members[count:])
    return torch.cat(fit).sort().values, torch.cat(held_out).sort().values


def encode_in_batches(
    method: InversionMethod, images: torch.Tensor, batch_size: int
) -> torch.Tensor:
    """The method's codes of images (moved to its generator's device), batch by batch."""
    device = method.frozen_generator().latent_avg.device
    return torch.cat(
        [
            method.encode(images[start : start + batch_size].to(device)).detach()
            for start in range(0, images.shape[0], batch_size)
        ]
    )


class InterFaceGAN:
    """Directions builder (`conf/application/direction/interfacegan.yaml`): the boundary
    normal of `labels`' attribute, optionally made orthogonal to `condition`'s."""

    def __init__(
        self,
        labels: Any,
        condition: Any | None = None,
        holdout_fraction: float = 0.3,
        l2: float = 1e-3,
        batch_size: int = 256,
        seed: int = 0,
    ) -> None:
        self.labels = labels
        self.condition = condition
        self.holdout_fraction = holdout_fraction
        self.l2 = l2
        self.batch_size = batch_size
        self.seed = seed

    def boundary(
        self, method: InversionMethod, labelled: LabelledImages
    ) -> tuple[LinearBoundary, dict[str, Any], torch.Size]:
        """The boundary fitted on part of the labelled codes, its accuracies (fit and
        held-out) and the shape of one code."""
        codes = encode_in_batches(method, labelled.images, self.batch_size).cpu()
        fit, held_out = stratified_holdout(labelled.labels, self.holdout_fraction, self.seed)
        boundary = fit_linear_boundary(codes[fit], labelled.labels[fit], self.l2)
        report: dict[str, Any] = {
            "attribute": labelled.attribute,
            "positives": int(labelled.labels.sum()),
            "negatives": int((~labelled.labels).sum()),
            "fit": accuracy(boundary, codes[fit], labelled.labels[fit]),
            "held_out": accuracy(boundary, codes[held_out], labelled.labels[held_out]),
        }
        log.info(
            "boundary of %r: held-out accuracy %.3f on %d codes (fit %.3f)",
            labelled.attribute,
            report["held_out"]["accuracy"],
            report["held_out"]["count"],
            report["fit"]["accuracy"],
        )
        return boundary, report, codes.shape[1:]

    def find(self, method: InversionMethod, channels: int, resolution: int) -> LatentDirections:
        """Invert the labelled images, fit the boundary, return its (conditional) normal."""
        primary = self.labels.load(channels, resolution)
        boundary, report, code_shape = self.boundary(method, primary)
        normal = boundary.normal.reshape(code_shape)
        info: dict[str, Any] = {**report, "l2": self.l2, "holdout_fraction": self.holdout_fraction}
        name = primary.attribute
        if self.condition is not None:
            condition = self.condition.load(channels, resolution)
            other, other_report, _ = self.boundary(method, condition)
            info["condition"] = other_report
            info["cosine_to_condition"] = float(boundary.normal @ other.normal)
            normal = project_out(normal, other.normal.reshape(code_shape)[None])
            name = f"{name} | {condition.attribute} fixed"
        return LatentDirections(normal[None].float(), [name], "interfacegan", info=info)
