"""StyleGAN2 noise maps as optimisation variables (Karras et al. 2020, Appendix D): a
regulariser that keeps them noise-like, and the renormalisation applied after each step.

Without both, the optimiser hides image content in the per-pixel noise inputs, which then
reconstruct the target but no longer behave like the noise the generator was trained with.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

# The pyramid stops here: at 8x8 and below there is too little area for a meaningful
# autocorrelation estimate (the projector's choice).
SMALLEST_SIDE = 8


def noise_regularization(noises: list[torch.Tensor]) -> torch.Tensor:
    """Per-image penalty (N,) on the spatial autocorrelation of noise maps (N, 1, H, W).

    For each map and each level of its 2x average-pooling pyramid down to 8x8, the squared
    mean products of the map with itself shifted by one pixel horizontally and vertically
    (wrapping around). White unit-variance noise gives about 1 / (H W) per term; smooth maps
    give terms near 1.
    """
    if not noises:
        raise ValueError("no noise maps to regularise")
    penalty = torch.zeros(noises[0].shape[0], device=noises[0].device)
    for noise in noises:
        while True:
            for dim in (2, 3):
                correlation = (noise * noise.roll(1, dims=dim)).mean(dim=(1, 2, 3))
                penalty = penalty + correlation.square()
            if noise.shape[-1] <= SMALLEST_SIDE:
                break
            # The paper's pyramid: 2x2 block means times 2, which keeps white noise at unit
            # variance on every level so that all levels weigh alike.
            noise = F.avg_pool2d(noise, 2) * 2
    return penalty


@torch.no_grad()
def normalize_noise_(noises: list[torch.Tensor]) -> None:
    """Shift and scale each image's noise map in place to zero mean and unit variance."""
    for noise in noises:
        mean = noise.mean(dim=(1, 2, 3), keepdim=True)
        std = noise.std(dim=(1, 2, 3), keepdim=True, unbiased=False)
        noise.sub_(mean).div_(std.clamp_min(1e-8))
