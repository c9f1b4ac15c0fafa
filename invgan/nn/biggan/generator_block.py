"""BigGAN residual up-block: conditional BN, ReLU, 2x nearest upsampling, two 3x3 convs."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from invgan.nn.biggan.conditional_batch_norm import ConditionalBatchNorm2d
from invgan.nn.biggan.spectral_norm import sn_conv2d


def _upsample(x: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, scale_factor=2, mode="nearest")


class GeneratorBlock(nn.Module):
    """(N, in_width, H, W), w -> (N, out_width, 2H, 2W) with a learned 1x1 shortcut."""

    def __init__(self, in_width: int, out_width: int, w_dim: int) -> None:
        super().__init__()
        self.norm1 = ConditionalBatchNorm2d(in_width, w_dim)
        self.conv1 = sn_conv2d(in_width, out_width, 3)
        self.norm2 = ConditionalBatchNorm2d(out_width, w_dim)
        self.conv2 = sn_conv2d(out_width, out_width, 3)
        self.shortcut = sn_conv2d(in_width, out_width, 1)

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        """Upsample x twofold, with both batch norms modulated by the codes w (N, w_dim)."""
        h = self.conv1(_upsample(F.relu(self.norm1(x, w))))
        h = self.conv2(F.relu(self.norm2(h, w)))
        # A 1x1 conv commutes with nearest upsampling, so it runs on the 4x smaller grid.
        return h + _upsample(self.shortcut(x))
