"""Reconstruction losses in latent, feature and pixel space."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from invgan.utils.device_constants import filled_segments

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
    _check_distance(kind, "pixel")
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
    _check_distance(kind, "feature")
    if len(real_features) != len(reconstruction_features) or not real_features:
        raise ValueError(
            f"got {len(real_features)} real and {len(reconstruction_features)} "
            "reconstruction feature maps; need the same number, at least one"
        )
    # A fixed handful of kernels whatever the number of layers (a small model's GPU step is
    # bound by kernel launches): all differences in one foreach kernel, then one flat vector
    # whose elements are weighted by 1 / (their layer's size) and summed. (torch.dot would save
    # a kernel, but the CPU's BLAS accumulates it sequentially: 1.5e-6 off on 7e5 elements.)
    differences = torch._foreach_sub(list(reconstruction_features), list(real_features))
    flat = torch.cat([d.flatten() for d in differences])
    # Summed in float32 whatever the features' dtype (bf16 under autocast), like the
    # adversarial losses; only the differences round to bf16 (each by 2^-9 at most, as often up
    # as down, which moves the loss by ~1e-5 relative).
    flat = flat.to(torch.promote_types(flat.dtype, torch.float32))
    errors = flat.abs() if kind == "l1" else flat.square()
    sizes = [d.numel() for d in differences]
    return (errors * filled_segments([1.0 / size for size in sizes], errors, sizes)).sum()


def distance_problem(key: str, kind: object, name: str) -> str | None:
    """Why `kind` cannot be the `name` (pixel, feature) distance set at `key`, or None when it
    can: the one rule for it, which the recipes' loss configs report as config errors."""
    if kind in DISTANCES:
        return None
    allowed = ", ".join(DISTANCES)
    return f"{key}={kind!r}: unknown {name} distance; allowed: {allowed}; set one of them"


def _check_distance(kind: str, name: str) -> None:
    """Reject a distance kind other than l1 and l2, naming what it was meant for."""
    problem = distance_problem("kind", kind, name)
    if problem:
        raise ValueError(problem)
