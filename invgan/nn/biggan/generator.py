"""BigGAN-style generator G(w) for InvGAN (no classes: the code w conditions every block)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from invgan.nn.biggan.generator_block import GeneratorBlock
from invgan.nn.biggan.resolution import (
    BASE_SIZE,
    attention_index,
    check_widths,
    num_resamplings,
)
from invgan.nn.biggan.self_attention import SelfAttention
from invgan.nn.biggan.spectral_norm import sn_conv2d, sn_linear


class BigGANGenerator(nn.Module):
    """w -> image in [-1, 1]: linear projection to a 4x4 grid, residual up-blocks, BN-ReLU-conv.

    Block i doubles the grid and has `base_width * width_multipliers[i]` channels; the 4x4 grid
    has the first block's width, so `[4, 4, 4]` with base width 64 is BigGAN's 32-px generator
    and `[16, 8, 4, 2, 1]` its 128-px one. One multiplier per block: a resolution of
    4 * 2**k needs k. Self-attention, if any, follows the block whose output has
    `attention_resolution`. State-dict names: `project`, `blocks.<i>`, `attention`, `to_image`.
    """

    def __init__(
        self,
        w_dim: int,
        resolution: int,
        channels: int,
        base_width: int = 64,
        width_multipliers: Sequence[int] = (4, 4, 4),
        attention_resolution: int | None = None,
    ) -> None:
        super().__init__()
        self.w_dim = w_dim
        self.resolution = resolution
        self.channels = channels
        num_blocks = num_resamplings(resolution)
        check_widths(
            width_multipliers,
            num_blocks,
            "generator",
            f"one per up-block from 4x4 to {resolution}x{resolution}",
        )
        widths = [base_width * int(m) for m in width_multipliers]
        self.input_width = widths[0]
        self.project = sn_linear(w_dim, self.input_width * BASE_SIZE**2)
        self.blocks = nn.ModuleList(
            GeneratorBlock(in_width, out_width, w_dim)
            for in_width, out_width in zip([widths[0], *widths[:-1]], widths, strict=True)
        )
        block_resolutions = [BASE_SIZE << (i + 1) for i in range(num_blocks)]
        self.attention_index = attention_index(
            block_resolutions, attention_resolution, "generator"
        )
        if self.attention_index is not None:
            self.attention = SelfAttention(widths[self.attention_index])
        self.to_image = nn.Sequential(
            nn.BatchNorm2d(widths[-1]), nn.ReLU(), sn_conv2d(widths[-1], channels, 3)
        )

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        """Generate images (N, channels, resolution, resolution) in [-1, 1] from w (N, w_dim)."""
        x = self.project(w).view(-1, self.input_width, BASE_SIZE, BASE_SIZE)
        for i, block in enumerate(self.blocks):
            x = block(x, w)
            if i == self.attention_index:
                x = self.attention(x)
        return torch.tanh(self.to_image(x))
