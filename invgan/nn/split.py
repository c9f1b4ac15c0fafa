"""Generators split at layer l into G1_l (codes -> features) and G2_l (features, codes -> image).

Multi-code inversion (mGANprior, PmSFC) composes the features of several codes between the two
halves. Each backbone numbers its split points 1..split_layers from the input side, has
`head(codes, layer)` (G1_l) and `tail(features, codes, layer)` (G2_l), built from the same
layer loop as its plain forward pass, so that G2_l(G1_l(c), c) = G(c) cannot drift.
"""

from __future__ import annotations

from typing import Protocol

import torch


def check_split_layer(layer: int, split_layers: int, generator: str) -> int:
    """`layer` if it is a valid split point of a generator with `split_layers` of them."""
    if isinstance(layer, bool) or not isinstance(layer, int) or not 1 <= layer <= split_layers:
        raise ValueError(
            f"split layer {layer!r} is out of range for this {generator}: choose a layer in "
            f"1..{split_layers} (G1 = the first l layers, G2 = the rest; larger l composes "
            "finer, later features)"
        )
    return layer


class SplitGenerator(Protocol):
    """A generator backbone that can be split (DCGAN, StyleGAN2, BigGAN): split points
    1..split_layers, G1_l = `head` and G2_l = `tail`."""

    @property
    def split_layers(self) -> int:
        """Number of split points."""
        ...

    def head(self, codes: torch.Tensor, layer: int, /) -> torch.Tensor:
        """G1_layer: the intermediate state after `layer` split points."""
        ...

    def tail(self, features: torch.Tensor, codes: torch.Tensor, layer: int, /) -> torch.Tensor:
        """G2_layer: images from `head`'s state, the later layers styled by `codes`."""
        ...
