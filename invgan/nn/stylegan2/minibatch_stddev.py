"""Minibatch standard deviation: lets the discriminator see the variety within a batch."""

from __future__ import annotations

import torch


def stddev_group_size(batch_size: int, group_size: int) -> int:
    """The largest divisor of `batch_size` not above `group_size`, so any batch splits evenly."""
    return next(g for g in range(min(group_size, batch_size), 0, -1) if batch_size % g == 0)


def minibatch_stddev(x: torch.Tensor, group_size: int = 4) -> torch.Tensor:
    """Append one channel: the feature std over a group of samples, averaged over C, H, W.

    Sample i belongs to group i mod (N / G), as in the official networks; a lone sample
    (G = 1) gets a constant 1e-4 channel.
    """
    n, c, h, w = x.shape
    group = stddev_group_size(n, group_size)
    grouped = x.view(group, n // group, c, h, w)
    std = torch.sqrt(grouped.var(dim=0, unbiased=False) + 1e-8).mean(dim=(1, 2, 3))
    # Laid out like x's channels (NCHW or NHWC), so that the concatenation keeps x's layout.
    std_map = torch.empty_like(x[:, :1])
    std_map.view(group, n // group, 1, h, w).copy_(
        std.view(1, -1, 1, 1, 1).expand(group, -1, 1, h, w)
    )
    return torch.cat([x, std_map], dim=1)
