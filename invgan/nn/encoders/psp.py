"""pSp's encoders (Richardson et al., "Encoding in Style", CVPR 2021) over an IR-SE trunk.

`GradualStyleEncoder` (the paper's Figure 2) maps an image to W+ codes: the outputs of the
trunk's last three stages (1/4, 1/8 and 1/16 of the input side) form a top-down feature
pyramid, and one `Map2Style` head per generator style input reads one pyramid level: coarse
inputs the coarsest map, medium ones the middle map, fine ones the finest. `WEncoder` is pSp's
`BackboneEncoderUsingLastLayerIntoW`: one w from the pooled coarsest map.

State-dict names follow pSp's, so the encoder part of its checkpoints loads when the sizes
agree: `input_layer.*`, `body.*` (see `invgan.nn.encoders.ir_se`), `latlayer1` (1x1 conv on the
middle stage), `latlayer2` (1x1 conv on the finest tapped stage), `styles.<i>.convs.<2j>` (the
head's strided convs; odd indices are activations), `styles.<i>.linear.{weight,bias}`; the w
encoder has `linear.{weight,bias}` instead of the pyramid and heads.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from invgan.nn.encoders.ir_se import IRBackbone
from invgan.nn.stylegan2.equalized import EqualLinear
from invgan.utils.config_checks import ConfigValueError

# pSp's split of StyleGAN2's 18 style inputs at 1024 px: [0, 3) coarse, [3, 7) medium.
PAPER_COARSE_END, PAPER_MEDIUM_END, PAPER_N_LATENT = 3, 7, 18
# The trunk halves the side four times; the smallest input leaves a 1x1 coarsest map.
MIN_RESOLUTION = 16
# How `psp_encoder` reads the style heads: pSp's codes, or e4e's w0 + offsets.
ARCHITECTURES = ("psp", "e4e")


def style_split(
    n_latent: int, coarse_end: int | None = None, medium_end: int | None = None
) -> tuple[int, int]:
    """(coarse_end, medium_end): heads [0, coarse_end) read the coarsest map, [coarse_end,
    medium_end) the middle one, the rest the finest; unset ends scale pSp's 3 / 7 of 18."""
    if coarse_end is None:
        coarse_end = max(1, round(n_latent * PAPER_COARSE_END / PAPER_N_LATENT))
    if medium_end is None:
        medium_end = max(coarse_end + 1, round(n_latent * PAPER_MEDIUM_END / PAPER_N_LATENT))
    if not 0 < coarse_end < medium_end < n_latent:
        raise ValueError(
            f"the style split needs 0 < coarse_end < medium_end < n_latent so that every pyramid "
            f"level has a head; got coarse_end={coarse_end}, medium_end={medium_end}, "
            f"n_latent={n_latent} (generators with fewer than 3 style inputs: learn_in_w=true)"
        )
    return coarse_end, medium_end


def _check_resolution(resolution: int) -> None:
    if resolution < MIN_RESOLUTION or resolution & (resolution - 1):
        raise ValueError(
            f"pSp encoders take square images whose side is a power of two >= {MIN_RESOLUTION} "
            f"(16, 32, ..., 1024), got {resolution}"
        )


class Map2Style(nn.Module):
    """One style code from a feature map: strided 3x3 convs with leaky ReLU halve the map down
    to 1x1 (at least one conv), then an equalized linear layer (pSp's GradualStyleBlock)."""

    def __init__(self, in_channels: int, w_dim: int, spatial: int) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for index in range(max(1, int(math.log2(spatial)))):
            layers.append(nn.Conv2d(in_channels if index == 0 else w_dim, w_dim, 3, 2, 1))
            # pSp uses PyTorch's default slope (0.01) here, not StyleGAN's 0.2.
            layers.append(nn.LeakyReLU())
        self.convs = nn.Sequential(*layers)
        self.linear = EqualLinear(w_dim, w_dim)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """(N, C, s, s) -> (N, w_dim)."""
        return self.linear(self.convs(features).flatten(1))


def _upsample_add(coarse: torch.Tensor, lateral: torch.Tensor) -> torch.Tensor:
    """The FPN merge: the coarser map upsampled to the lateral map's size, plus the lateral."""
    size = lateral.shape[-2:]
    return F.interpolate(coarse, size=size, mode="bilinear", align_corners=True) + lateral


class PSPTrunk(IRBackbone):
    """IR-SE trunk for pSp's encoders, its input size checked."""

    # Set only on an encoder loaded from a pSp / e4e checkpoint: whether it was trained to
    # predict offsets from the average latent (PSPModule checks it against its own setting).
    start_from_latent_avg: bool

    def __init__(
        self,
        resolution: int,
        channels: int,
        depth: int | None,
        blocks: Sequence[int] | None,
        base_width: int,
        mode: str,
    ) -> None:
        _check_resolution(resolution)
        super().__init__(channels, depth, blocks, base_width, mode)
        self.resolution = resolution


class GradualStyleEncoder(PSPTrunk):
    """Image (N, channels, R, R) in [-1, 1] -> W+ codes (N, n_latent, w_dim).

    `depth` (50 / 100 / 152) or an explicit four-entry `blocks` list sets the trunk's units per
    stage, `base_width` its widths (64 -> 64/128/256/512), `mode` IR or IR-SE. The pyramid
    has the width of the last stage. `load_trunk_weights` starts the trunk from ArcFace, as pSp
    does (`build_psp_encoder`'s `backbone_weights`).
    """

    def __init__(
        self,
        resolution: int,
        channels: int,
        w_dim: int,
        n_latent: int,
        coarse_end: int | None = None,
        medium_end: int | None = None,
        depth: int | None = 50,
        blocks: Sequence[int] | None = None,
        base_width: int = 64,
        mode: str = "ir_se",
    ) -> None:
        super().__init__(resolution, channels, depth, blocks, base_width, mode)
        self.n_latent = n_latent
        self.w_dim = w_dim
        self.coarse_end, self.medium_end = style_split(n_latent, coarse_end, medium_end)
        _, fine_width, middle_width, top_width = self.body.widths
        self.latlayer1 = nn.Conv2d(middle_width, top_width, kernel_size=1)
        self.latlayer2 = nn.Conv2d(fine_width, top_width, kernel_size=1)
        coarsest = resolution // 16
        self.styles = nn.ModuleList(
            Map2Style(top_width, w_dim, self._level_side(index, coarsest))
            for index in range(n_latent)
        )

    def _level_side(self, index: int, coarsest: int) -> int:
        """Side of the pyramid map that head `index` reads: coarsest, twice or four times it."""
        if index < self.coarse_end:
            return coarsest
        return coarsest * (2 if index < self.medium_end else 4)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """W+ codes (N, n_latent, w_dim), before any average latent is added."""
        _, fine, middle, coarse = self.body.stage_outputs(self.input_layer(images))
        middle = _upsample_add(coarse, self.latlayer1(middle))
        fine = _upsample_add(middle, self.latlayer2(fine))
        levels = [coarse] * self.coarse_end + [middle] * (self.medium_end - self.coarse_end)
        levels += [fine] * (self.n_latent - self.medium_end)
        return torch.stack([head(x) for head, x in zip(self.styles, levels, strict=True)], dim=1)


class WEncoder(PSPTrunk):
    """Image (N, channels, R, R) in [-1, 1] -> one w (N, w_dim): the coarsest trunk map
    average-pooled, then an equalized linear layer. Trunk options as `GradualStyleEncoder`."""

    def __init__(
        self,
        resolution: int,
        channels: int,
        w_dim: int,
        depth: int | None = 50,
        blocks: Sequence[int] | None = None,
        base_width: int = 64,
        mode: str = "ir_se",
    ) -> None:
        super().__init__(resolution, channels, depth, blocks, base_width, mode)
        self.w_dim = w_dim
        self.linear = EqualLinear(self.body.widths[-1], w_dim)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """w (N, w_dim), before any average latent is added."""
        features = self.body(self.input_layer(images))
        return self.linear(features.mean(dim=(2, 3)))


def psp_encoder(
    resolution: int,
    channels: int,
    w_dim: int,
    n_latent: int,
    learn_in_w: bool = False,
    coarse_end: int | None = None,
    medium_end: int | None = None,
    architecture: str = "psp",
    **trunk: Any,
) -> PSPTrunk:
    """The W+ `GradualStyleEncoder` (`architecture` psp), e4e's `E4EEncoder` (e4e: the same
    network, its heads read as w0 + offsets), or with `learn_in_w` the `WEncoder` (which ignores
    the style split); `trunk` holds depth, blocks, base_width and mode."""
    if architecture not in ARCHITECTURES:
        raise ConfigValueError(
            f"model.encoder.architecture={architecture!r}: must be one of {list(ARCHITECTURES)}"
        )
    if learn_in_w:
        if architecture != "psp":
            raise ConfigValueError(
                f"model.encoder.architecture={architecture} predicts W+ codes; set "
                "model.learn_in_w=false, or model.encoder.architecture=psp for one w"
            )
        return WEncoder(resolution, channels, w_dim, **trunk)
    if architecture == "e4e":
        # e4e's class subclasses GradualStyleEncoder, so its module imports this one.
        from invgan.nn.encoders.e4e import E4EEncoder

        return E4EEncoder(resolution, channels, w_dim, n_latent, coarse_end, medium_end, **trunk)
    return GradualStyleEncoder(
        resolution, channels, w_dim, n_latent, coarse_end, medium_end, **trunk
    )
