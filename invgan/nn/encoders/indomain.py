"""The domain-guided encoder of In-Domain GAN Inversion (Zhu et al., ECCV 2020): image -> W+.

A stem convolution at full resolution, then residual blocks that each halve the side (average
pooling, then two conv-norm-LeakyReLU layers beside a shortcut) down to 4x4, and one linear
layer to a code per generator layer. Widths start at `base_width` and double per block up to
`max_width`, so the same class serves a 16-px test and a 1024-px run.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from invgan.nn.stylegan2.widths import log2_resolution

# IDInvert uses (synchronised) batch norm; the others suit tiny or per-image batches.
NORMS: dict[str, Callable[[int], nn.Module]] = {
    "batch": nn.BatchNorm2d,
    "instance": lambda width: nn.InstanceNorm2d(width, affine=True),
    "none": lambda width: nn.Identity(),
}
# IDInvert's stem: a 5x5 convolution sees a little context before the first downsampling.
STEM_KERNEL = 5
NEGATIVE_SLOPE = 0.2


class ConvNormAct(nn.Sequential):
    """Same-size convolution, normalisation, LeakyReLU(0.2). State dict: `0.*` conv, `1.*` norm."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, norm: str) -> None:
        # A bias before a normalisation with its own shift would be redundant.
        bias = norm == "none"
        super().__init__(
            nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=bias),
            NORMS[norm](out_channels),
            nn.LeakyReLU(NEGATIVE_SLOPE),
        )


class ResidualDownBlock(nn.Module):
    """Average-pool to half the side, then `body` (two ConvNormAct) plus `shortcut`.

    The shortcut is the identity when the width stays, else a 1x1 convolution and norm
    (IDInvert's "learned" shortcut). State dict: `body.*`, `shortcut.*`.
    """

    def __init__(self, in_channels: int, out_channels: int, norm: str) -> None:
        super().__init__()
        hidden = min(in_channels, out_channels)
        self.body = nn.Sequential(
            ConvNormAct(in_channels, hidden, 3, norm), ConvNormAct(hidden, out_channels, 3, norm)
        )
        self.shortcut: nn.Module = (
            nn.Identity()
            if in_channels == out_channels
            else nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, bias=False), NORMS[norm](out_channels)
            )
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, in, H, W) -> (N, out, H/2, W/2)."""
        x = F.avg_pool2d(x, 2)
        return self.body(x) + self.shortcut(x)


class InDomainEncoder(nn.Module):
    """Images (N, channels, R, R) in [-1, 1] -> W+ codes (N, n_latent, w_dim).

    State dict: `stem.*`, `blocks.<i>.*` (one per halving from R to 4), `to_latent.*`.
    """

    def __init__(
        self,
        resolution: int,
        n_latent: int,
        w_dim: int,
        channels: int = 3,
        base_width: int = 64,
        max_width: int = 512,
        norm: str = "batch",
    ) -> None:
        super().__init__()
        if norm not in NORMS:
            raise ValueError(f"encoder norm {norm!r}; choose one of {tuple(NORMS)}")
        if min(n_latent, w_dim, base_width, max_width) < 1:
            raise ValueError(
                f"n_latent, w_dim, base_width and max_width must be >= 1, got {n_latent}, "
                f"{w_dim}, {base_width}, {max_width}"
            )
        self.resolution = resolution
        self.n_latent = n_latent
        self.w_dim = w_dim
        num_blocks = log2_resolution(resolution) - 2

        def width(block: int) -> int:
            return min(base_width * 2**block, max_width)

        self.stem = ConvNormAct(channels, width(0), STEM_KERNEL, norm)
        self.blocks = nn.Sequential(
            *(ResidualDownBlock(width(i), width(i + 1), norm) for i in range(num_blocks))
        )
        self.to_latent = nn.Linear(width(num_blocks) * 4 * 4, n_latent * w_dim)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """W+ codes of `images`, one w per generator layer."""
        if images.shape[-2:] != (self.resolution, self.resolution):
            raise ValueError(
                f"the encoder takes {self.resolution}x{self.resolution} images, got "
                f"{tuple(images.shape[-2:])}"
            )
        features = self.blocks(self.stem(images))
        return self.to_latent(features.flatten(1)).view(-1, self.n_latent, self.w_dim)
