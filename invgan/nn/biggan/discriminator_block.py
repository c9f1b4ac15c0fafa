"""BigGAN residual down-block: ReLU, two 3x3 convs, optional 2x average pooling."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from invgan.nn.biggan.spectral_norm import sn_conv2d


class DiscriminatorBlock(nn.Module):
    """(N, in_width, H, W) -> (N, out_width, H/2 or H, W/2 or W), residual.

    The first block of a discriminator is built with `preactivation=False`: it reads images,
    whose negative values a leading ReLU would throw away. The shortcut is a 1x1 conv when the
    width or size changes and the identity otherwise.
    """

    def __init__(
        self, in_width: int, out_width: int, downsample: bool, preactivation: bool
    ) -> None:
        super().__init__()
        self.downsample = downsample
        self.preactivation = preactivation
        self.conv1 = sn_conv2d(in_width, out_width, 3)
        self.conv2 = sn_conv2d(out_width, out_width, 3)
        learned = in_width != out_width or downsample
        self.shortcut = sn_conv2d(in_width, out_width, 1) if learned else nn.Identity()

    def _pool(self, x: torch.Tensor) -> torch.Tensor:
        return F.avg_pool2d(x, 2) if self.downsample else x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Residual conv block, halving the spatial size when built with `downsample`."""
        h = F.relu(x) if self.preactivation else x
        h = self._pool(self.conv2(F.relu(self.conv1(h))))
        # Average pooling and a 1x1 conv are both linear and commute; pooling first is cheaper.
        return h + self.shortcut(self._pool(x))
