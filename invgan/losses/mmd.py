"""Maximum mean discrepancy with a sum of RBF kernels, unbiased estimator.

On a GPU a small model's training step is bound by kernel launches, so the estimate takes a
fixed handful of kernels whatever the number of bandwidths: one Gram matrix of the stacked codes
[x; y], one exponential for all bandwidths at once, one weighted sum over the blocks. It reads
nothing back to the host and builds its constants on the device, so a CUDA graph can capture it.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from invgan.utils.device_constants import filled_segments


def rbf_kernels(z: torch.Tensor, bandwidths: Sequence[float]) -> torch.Tensor:
    """exp(-||z_i - z_j||^2 / (2 s^2 d)) for each bandwidth s and pair of rows, (B, N, N).

    d is the dimension of the codes: dividing by it keeps each bandwidth meaningful whatever the
    latent size, since for standard normal codes E||z_i - z_j||^2 = 2d, so s = 1 sits at the
    typical pairwise distance. Codes in half precision are promoted to float32.
    """
    z = z.to(torch.promote_types(z.dtype, torch.float32))
    # Under autocast the Gram matrix would run in half precision, where the cancellation in
    # |a|^2 + |b|^2 - 2ab swamps the distances of nearby codes.
    with torch.autocast(z.device.type, enabled=False):
        scales = filled_segments([-0.5 / (s * s * z.shape[1]) for s in bandwidths], z)
        return torch.exp(_squared_distances(z) * scales.view(-1, 1, 1))


def mmd_unbiased(
    x: torch.Tensor, y: torch.Tensor, bandwidths: Sequence[float] = (0.2, 0.5, 1.0, 2.0, 5.0)
) -> torch.Tensor:
    """Unbiased estimate of MMD^2 between samples x (m, d) and y (n, d); needs m, n >= 2."""
    m, n = x.shape[0], y.shape[0]
    if m < 2 or n < 2:
        raise ValueError(f"unbiased MMD needs at least 2 samples per set, got {m} and {n}")
    kernels = rbf_kernels(torch.cat([x, y]), bandwidths)
    return (kernels * _block_weights(m, n, kernels)).sum()


def _squared_distances(z: torch.Tensor) -> torch.Tensor:
    """All pairwise squared distances ||z_i - z_j||^2 of the rows of z, from one Gram matrix."""
    gram = z @ z.mT
    # The squared norms are the Gram matrix's own diagonal, so the diagonal distances come out
    # exactly 0; rounding can make near-equal pairs slightly negative, hence the clamp.
    sq_norms = gram.diagonal()
    return torch.sub(sq_norms.unsqueeze(1) + sq_norms, gram, alpha=2).clamp_min(0)


def _block_weights(m: int, n: int, like: torch.Tensor) -> torch.Tensor:
    """Weights that turn the kernel matrices of [x; y] into the unbiased MMD^2 when summed.

    1 / (m (m - 1)) on the x-x block, 1 / (n (n - 1)) on the y-y block, -1 / (m n) on both
    cross blocks (together -2 mean k(x, y)), and 0 on the diagonal: the unbiased estimator
    leaves out each sample's kernel with itself.
    """
    weights = like.new_full((m + n, m + n), -1.0 / (m * n))
    weights[:m, :m].fill_(1.0 / (m * (m - 1)))
    weights[m:, m:].fill_(1.0 / (n * (n - 1)))
    return weights.fill_diagonal_(0.0)
