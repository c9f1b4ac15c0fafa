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
from invgan.nn.code_affine import refuse_layers
from invgan.nn.split import check_split_layer


class BigGANGenerator(nn.Module):
    """w -> image in [-1, 1]: linear projection to a 4x4 grid, residual up-blocks, BN-ReLU-conv.

    Block i doubles the grid and has `base_width * width_multipliers[i]` channels; the 4x4 grid
    has the first block's width, so `[4, 4, 4]` with base width 64 is BigGAN's 32-px generator
    and `[16, 8, 4, 2, 1]` its 128-px one. One multiplier per block: a resolution of
    4 * 2**k needs k. Self-attention, if any, follows the block whose output has
    `attention_resolution`. State-dict names: `project`, `blocks.<i>`, `attention`, `to_image`.
    Split points (`invgan.nn.split`): layer 1 is the 4x4 projection, layer 1 + i the output of
    block i (after its self-attention, if any); G2 always keeps the to-image layers.
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

    @property
    def split_layers(self) -> int:
        """Number of split points: the projection and each up-block."""
        return 1 + len(self.blocks)

    def code_affine_weight(self, layers: Sequence[int] | None = None) -> torch.Tensor:
        """The first linear on the code, `project` (spectrally normalised). w also feeds every
        block's conditional batch norm, but SeFa factorises BigGAN's first layer only."""
        refuse_layers(self, layers)
        return self.project.weight

    def _blocks(self, x: torch.Tensor, w: torch.Tensor, start: int, stop: int) -> torch.Tensor:
        """Up-blocks start..stop-1 (with the self-attention that follows one) applied to x."""
        for i in range(start, stop):
            x = self.blocks[i](x, w)
            if i == self.attention_index:
                x = self.attention(x)
        return x

    def head(self, w: torch.Tensor, layer: int) -> torch.Tensor:
        """G1_layer: the feature maps after the first `layer` layers, from w (N, w_dim)."""
        check_split_layer(layer, self.split_layers, type(self).__name__)
        x = self.project(w).view(-1, self.input_width, BASE_SIZE, BASE_SIZE)
        return self._blocks(x, w, 0, layer - 1)

    def tail(self, features: torch.Tensor, w: torch.Tensor, layer: int) -> torch.Tensor:
        """G2_layer: images from `head`'s features, the later blocks' batch norms modulated
        by w (N, w_dim)."""
        check_split_layer(layer, self.split_layers, type(self).__name__)
        x = self._blocks(features, w, layer - 1, len(self.blocks))
        return torch.tanh(self.to_image(x))

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        """Generate images (N, channels, resolution, resolution) in [-1, 1] from w (N, w_dim)."""
        return self.tail(self.head(w, self.split_layers), w, self.split_layers)
