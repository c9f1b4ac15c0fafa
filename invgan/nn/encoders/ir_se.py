"""IR and IR-SE residual networks (ArcFace's improved ResNet), the backbone of pSp's encoders.

A unit is the "improved residual" bottleneck of ArcFace (Deng et al. 2019): batch norm, 3x3
conv, PReLU, 3x3 conv (strided in a stage's first unit), batch norm, optionally followed by
squeeze-and-excitation (IR-SE), added to a shortcut that is a strided 1x1 max-pool when the
width is kept and a strided 1x1 conv + batch norm when it grows. Four stages of units each
halve the resolution.

State-dict names are those of the widely distributed ArcFace `model_ir_se50.pth` and of pSp's
encoders, so their weights load strictly:

- `input_layer.0` conv 3x3, `input_layer.1` batch norm, `input_layer.2` PReLU
- `body.<k>` the k-th unit counted over all stages, with
  `body.<k>.shortcut_layer.{0,1}` (conv, batch norm; absent when the width is kept) and
  `body.<k>.res_layer.{0..4}` (batch norm, conv, PReLU, conv, batch norm) and, in IR-SE units,
  `body.<k>.res_layer.5.fc1` / `.fc2` (the squeeze-and-excitation 1x1 convs).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import nn

# Units per stage of the standard depths (ArcFace / InsightFace).
STAGE_BLOCKS: dict[int, tuple[int, ...]] = {
    50: (3, 4, 14, 3),
    100: (3, 13, 30, 3),
    152: (3, 8, 36, 3),
}
# Stage widths relative to the first stage's: 64 / 128 / 256 / 512 at the standard width 64.
WIDTH_MULTIPLIERS = (1, 2, 4, 8)
MODES = ("ir", "ir_se")
# State-dict prefixes of the trunk that pSp's encoders take from ArcFace.
TRUNK = ("input_layer.", "body.")
SE_REDUCTION = 16


class SqueezeExcitation(nn.Module):
    """Channel gates from globally pooled features (Hu et al. 2018), bias-free as in ArcFace.

    State dict: `fc1.weight`, `fc2.weight`.
    """

    def __init__(self, channels: int, reduction: int = SE_REDUCTION) -> None:
        super().__init__()
        # Narrow test networks would otherwise get a zero-width bottleneck.
        hidden = max(1, channels // reduction)
        self.fc1 = nn.Conv2d(channels, hidden, kernel_size=1, bias=False)
        self.fc2 = nn.Conv2d(hidden, channels, kernel_size=1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x scaled by per-channel gates in (0, 1)."""
        gates = x.mean(dim=(2, 3), keepdim=True)
        gates = torch.sigmoid(self.fc2(torch.relu(self.fc1(gates))))
        return x * gates


class BottleneckIR(nn.Module):
    """One IR (or IR-SE) unit: res_layer(x) + shortcut_layer(x), downsampling by `stride`."""

    def __init__(
        self, in_channels: int, out_channels: int, stride: int, squeeze_excitation: bool
    ) -> None:
        super().__init__()
        if in_channels == out_channels:
            # Kernel-1 max-pool: plain subsampling, no parameters.
            self.shortcut_layer: nn.Module = nn.MaxPool2d(kernel_size=1, stride=stride)
        else:
            self.shortcut_layer = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride, bias=False),
                nn.BatchNorm2d(out_channels),
            )
        layers = [
            nn.BatchNorm2d(in_channels),
            nn.Conv2d(in_channels, out_channels, 3, 1, 1, bias=False),
            nn.PReLU(out_channels),
            nn.Conv2d(out_channels, out_channels, 3, stride, 1, bias=False),
            nn.BatchNorm2d(out_channels),
        ]
        if squeeze_excitation:
            layers.append(SqueezeExcitation(out_channels))
        self.res_layer = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Residual unit output, spatially divided by the stride."""
        return self.res_layer(x) + self.shortcut_layer(x)


def stage_blocks(depth: int | None = 50, blocks: Sequence[int] | None = None) -> tuple[int, ...]:
    """Units per stage: an explicit four-entry `blocks` list, else the standard `depth`."""
    if blocks is not None:
        blocks = tuple(int(b) for b in blocks)
        if len(blocks) != len(WIDTH_MULTIPLIERS) or min(blocks) < 1:
            raise ValueError(
                f"blocks must list {len(WIDTH_MULTIPLIERS)} stages of at least one unit each, "
                f"got {list(blocks)}"
            )
        return blocks
    if depth not in STAGE_BLOCKS:
        raise ValueError(f"IR depth {depth}; choose one of {sorted(STAGE_BLOCKS)} or set blocks")
    return STAGE_BLOCKS[depth]


def stage_widths(base_width: int = 64) -> tuple[int, ...]:
    """Channels of the four stages: base_width times 1, 2, 4, 8."""
    if base_width < 1:
        raise ValueError(f"base_width must be >= 1, got {base_width}")
    return tuple(base_width * m for m in WIDTH_MULTIPLIERS)


class IRBody(nn.Sequential):
    """All units of the four stages in one flat sequence (`body.<k>`), each stage halving the
    resolution; `stage_outputs` also returns the feature map after every stage."""

    def __init__(
        self,
        depth: int | None = 50,
        blocks: Sequence[int] | None = None,
        base_width: int = 64,
        mode: str = "ir_se",
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"IR mode {mode!r}; choose one of {MODES}")
        counts = stage_blocks(depth, blocks)
        widths = stage_widths(base_width)
        units = []
        in_channels = widths[0]
        for count, width in zip(counts, widths, strict=True):
            for index in range(count):
                stride = 2 if index == 0 else 1
                units.append(BottleneckIR(in_channels, width, stride, mode == "ir_se"))
                in_channels = width
        super().__init__(*units)
        self.blocks = counts
        self.widths = widths
        # Index of each stage's last unit in the flat sequence.
        self.stage_ends = tuple(sum(counts[: i + 1]) - 1 for i in range(len(counts)))

    def stage_outputs(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Feature maps after each of the four stages (1/2, 1/4, 1/8, 1/16 of the input)."""
        outputs = []
        for index, unit in enumerate(self):
            x = unit(x)
            if index in self.stage_ends:
                outputs.append(x)
        return outputs


class IRBackbone(nn.Module):
    """The trunk shared by pSp's encoders and ArcFace: `input_layer` (3x3 conv, batch norm,
    PReLU at full resolution) then `body` (`IRBody`). Subclasses add their heads."""

    def __init__(
        self,
        channels: int = 3,
        depth: int | None = 50,
        blocks: Sequence[int] | None = None,
        base_width: int = 64,
        mode: str = "ir_se",
    ) -> None:
        super().__init__()
        self.input_layer = nn.Sequential(
            nn.Conv2d(channels, base_width, 3, 1, 1, bias=False),
            nn.BatchNorm2d(base_width),
            nn.PReLU(base_width),
        )
        self.body = IRBody(depth, blocks, base_width, mode)

    def load_trunk_weights(self, state: Mapping[str, torch.Tensor], source: str) -> None:
        """Initialise `input_layer` and `body` from an ArcFace state dict (read from `source`),
        as pSp initialises its encoders from `model_ir_se50.pth`; the trunk must be IR-SE50 at
        width 64, RGB input."""
        trunk = {k: v for k, v in state.items() if k.startswith(TRUNK)}
        fit = "ArcFace weights need depth 50, mode ir_se, base_width 64 and 3 input channels"
        try:
            missing, _ = self.load_state_dict(trunk, strict=False)
        except RuntimeError as error:  # a shape mismatch
            raise RuntimeError(f"{source} does not fit this trunk ({fit}): {error}") from error
        missing = [k for k in missing if k.startswith(TRUNK)]
        if missing:
            raise RuntimeError(f"{source} lacks trunk weights {missing[:5]} ({fit})")
