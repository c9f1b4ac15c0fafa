"""Style mixing regularisation for generators that take one code per layer (W+)."""

from __future__ import annotations

import torch


def style_mixing(
    w: torch.Tensor, w_other: torch.Tensor, num_layers: int, prob: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """W+ codes (N, num_layers, w_dim) from two codes per sample, and which samples mix.

    With probability `prob` a sample takes w in layers [0, c) and w_other in layers
    [c, num_layers) for a crossover c uniform in [1, num_layers); otherwise w in every layer.
    Mixing keeps the generator from assuming that neighbouring layers share a code (StyleGAN,
    Section 3.1).
    """
    n = w.shape[0]
    mixed = torch.rand(n, device=w.device) < prob
    crossover = torch.randint(1, num_layers, (n,), device=w.device)
    crossover = torch.where(mixed, crossover, torch.full_like(crossover, num_layers))
    use_other = torch.arange(num_layers, device=w.device) >= crossover[:, None]
    return torch.where(use_other[..., None], w_other[:, None], w[:, None]), mixed
