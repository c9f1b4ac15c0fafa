"""Reconstruction losses in latent, feature and pixel space."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

DISTANCES = ("l1", "l2")


def latent_distance(
    w: torch.Tensor, w_hat: torch.Tensor, mask: torch.Tensor | None = None
) -> torch.Tensor:
    """Squared L2 distance ||w - w_hat||^2 divided by the latent size, averaged over the batch.

    Dividing by the latent size keeps loss weights comparable across latent dimensions. With a
    boolean `mask` (N,) only the selected samples are averaged (0 when none is selected).
    """
    if mask is None:
        return F.mse_loss(w_hat, w)
    per_sample = (w_hat - w).pow(2).mean(dim=1)
    return (per_sample * mask).sum() / mask.sum().clamp(min=1)


def pixel_distance(x: torch.Tensor, x_hat: torch.Tensor, kind: str = "l1") -> torch.Tensor:
    """Mean absolute (l1) or mean squared (l2) error per pixel and channel."""
    if kind not in DISTANCES:
        raise ValueError(f"unknown pixel distance {kind!r}; choose one of {DISTANCES}")
    return F.l1_loss(x_hat, x) if kind == "l1" else F.mse_loss(x_hat, x)


def feature_matching_distance(
    real_features: Sequence[torch.Tensor],
    reconstruction_features: Sequence[torch.Tensor],
    kind: str = "l1",
) -> torch.Tensor:
    """Sum over feature layers of the per-element distance between paired features.

    The InvGAN paper's Eq. 2 writes the expectation inside the norm, but its text describes a
    reconstruction loss between each real image and its own reconstruction G(D(x)). Only the
    per-pair form carries that pairing (the in-norm form is first-moment matching, which the
    paper says it improves on), so each pair is compared here and the result averaged.
    """
    if len(real_features) != len(reconstruction_features):
        raise ValueError(
            f"got {len(real_features)} real and {len(reconstruction_features)} "
            "reconstruction feature maps"
        )
    return sum(
        pixel_distance(real, rec, kind)
        for real, rec in zip(real_features, reconstruction_features, strict=True)
    )
