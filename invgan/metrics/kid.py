"""Kernel Inception Distance (Binkowski et al. 2018) from two feature matrices."""

from __future__ import annotations

import torch
from torch import Tensor


def _polynomial_kernel(a: Tensor, b: Tensor) -> Tensor:
    return (a @ b.T / a.shape[1] + 1.0) ** 3


def _unbiased_mmd2(real: Tensor, fake: Tensor) -> Tensor:
    """Unbiased MMD^2 of two equally sized samples under the cubic polynomial kernel."""
    m = real.shape[0]
    k_real = _polynomial_kernel(real, real)
    k_fake = _polynomial_kernel(fake, fake)
    # Within-set terms leave out k(x_i, x_i): those pairs are not independent draws.
    within = (k_real.sum() - k_real.diagonal().sum() + k_fake.sum() - k_fake.diagonal().sum()) / (
        m * (m - 1)
    )
    return within - 2 * _polynomial_kernel(real, fake).sum() / (m * m)


def kernel_inception_distance(
    real_features: Tensor,
    fake_features: Tensor,
    subsets: int = 100,
    subset_size: int = 1000,
    seed: int = 0,
) -> tuple[float, float]:
    """Mean and standard deviation over random subsets of the unbiased MMD^2 (KID).

    The kernel is k(x, y) = (x.y / d + 1)^3 with d the feature dimension, as in Binkowski et al.
    2018 and torchmetrics' `KernelInceptionDistance`. Each subset draws rows from each set
    without replacement, from a generator seeded with `seed`, so results are reproducible.
    Subsets hold min(subset_size, len(real), len(fake)) rows: where torchmetrics raises on
    sets smaller than `subset_size`, this still scores small evaluation runs (report the count
    alongside). The standard deviation is the population one (divides by `subsets`), as in
    torchmetrics. Computed in float64.
    """
    if (
        real_features.ndim != 2
        or fake_features.ndim != 2
        or real_features.shape[1] != fake_features.shape[1]
        or min(real_features.shape[0], fake_features.shape[0]) < 2
    ):
        raise ValueError(
            "KID needs 2-D feature matrices with the same feature dimension and at least 2 rows "
            f"each, got real {tuple(real_features.shape)} and fake {tuple(fake_features.shape)}"
        )
    if subsets < 1 or subset_size < 2:
        raise ValueError(f"need subsets >= 1 and subset_size >= 2, got {subsets}, {subset_size}")
    real = real_features.detach().double()
    fake = fake_features.detach().double()
    size = min(subset_size, real.shape[0], fake.shape[0])
    generator = torch.Generator().manual_seed(seed)
    scores = []
    for _ in range(subsets):
        # Indices are drawn on the CPU so that the same seed picks the same rows on any device.
        real_rows = torch.randperm(real.shape[0], generator=generator)[:size].to(real.device)
        fake_rows = torch.randperm(fake.shape[0], generator=generator)[:size].to(fake.device)
        scores.append(_unbiased_mmd2(real[real_rows], fake[fake_rows]))
    values = torch.stack(scores)
    return float(values.mean()), float(values.std(correction=0))
