"""Maximum mean discrepancy with a sum of RBF kernels, unbiased estimator."""

from __future__ import annotations

from collections.abc import Sequence

import torch


def rbf_kernel(x: torch.Tensor, y: torch.Tensor, bandwidths: Sequence[float]) -> torch.Tensor:
    """Sum over bandwidths s of exp(-||x_i - y_j||^2 / (2 s^2 d)), d = dimension of the codes.

    Dividing by d keeps each bandwidth meaningful whatever the latent size: for standard
    normal codes E||x - y||^2 = 2d, so s = 1 sits at the typical pairwise distance.
    """
    dim = x.shape[1]
    sq_dist = torch.cdist(x, y).pow(2)
    return sum(torch.exp(-sq_dist / (2.0 * s**2 * dim)) for s in bandwidths)


def mmd_unbiased(
    x: torch.Tensor, y: torch.Tensor, bandwidths: Sequence[float] = (0.2, 0.5, 1.0, 2.0, 5.0)
) -> torch.Tensor:
    """Unbiased estimate of MMD^2 between samples x (m, d) and y (n, d); needs m, n >= 2."""
    m, n = x.shape[0], y.shape[0]
    if m < 2 or n < 2:
        raise ValueError(f"unbiased MMD needs at least 2 samples per set, got {m} and {n}")
    k_xx = rbf_kernel(x, x, bandwidths)
    k_yy = rbf_kernel(y, y, bandwidths)
    k_xy = rbf_kernel(x, y, bandwidths)
    sum_xx = k_xx.sum() - k_xx.diagonal().sum()
    sum_yy = k_yy.sum() - k_yy.diagonal().sum()
    return sum_xx / (m * (m - 1)) + sum_yy / (n * (n - 1)) - 2.0 * k_xy.mean()
