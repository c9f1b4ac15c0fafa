"""pSp and e4e checkpoints (the `.pt` files of eladrich/pixel2style2pixel and
omertov/encoder4editing), loaded into our pSp encoders and StyleGAN2 generator.

Their training code saves `{"state_dict": pSp.state_dict(), "opts": vars(opts),
"latent_avg": ...}`:

- `state_dict["encoder.*"]`: the encoder. Our encoders keep pSp's state-dict names
  (`invgan.nn.encoders.psp`), so only the architecture has to be read: trunk depth, width and
  IR / IR-SE from the unit weights, input channels from the first conv, w_dim, style count and
  input resolution from the style heads (a head reading the finest pyramid map has
  log2(R / 4) strided convs). pSp and e4e split the heads at 3 and 7.
- `state_dict["decoder.*"]`: rosinality's StyleGAN2 generator, whose names our generator
  shares (loaded through `generator_import` like a rosinality `g_ema`).
- `latent_avg`: the average w the encoder's codes are offsets from, one copy per style input
  (saved when `opts.start_from_latent_avg`).
- `opts`: `encoder_type` (GradualStyleEncoder, BackboneEncoderUsingLastLayerIntoW or e4e's
  Encoder4Editing), `input_nc`, `learn_in_w`, `start_from_latent_avg`.

The file is read with `torch.load(weights_only=True)` (tensors and plain data only).
"""

from __future__ import annotations

import argparse
import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from invgan.checkpoints.arcface import read_arcface_weights
from invgan.checkpoints.format import load_state_dict_checked
from invgan.checkpoints.keys import CONFIG_KEY
from invgan.checkpoints.registry import local_weights_path
from invgan.checkpoints.safe_load import CheckpointError, safe_torch_load
from invgan.nn.encoders.e4e import E4EEncoder
from invgan.nn.encoders.ir_se import WIDTH_MULTIPLIERS
from invgan.nn.encoders.psp import (
    PAPER_COARSE_END,
    PAPER_MEDIUM_END,
    GradualStyleEncoder,
    PSPTrunk,
    WEncoder,
    psp_encoder,
)

# opts.encoder_type -> our encoder class.
ENCODER_CLASSES: dict[str, type[PSPTrunk]] = {
    "GradualStyleEncoder": GradualStyleEncoder,
    "Encoder4Editing": E4EEncoder,
    "BackboneEncoderUsingLastLayerIntoW": WEncoder,
}
# pSp's and e4e's data transforms resize every input to 256 px; a w encoder pools globally, so
# its weights do not tell the size.
PSP_INPUT_RESOLUTION = 256
# pSp's train.py saves its options as a dict; some forks keep the argparse.Namespace.
ALLOWED_GLOBALS = [argparse.Namespace]
ENCODER_PREFIX, DECODER_PREFIX = "encoder.", "decoder."


def _prefixed(state: Mapping[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}


def is_psp_checkpoint(content: Any) -> bool:
    """Whether a loaded `.pt` content is a pSp / e4e checkpoint (state_dict + opts)."""
    return (
        isinstance(content, dict)
        and isinstance(content.get("state_dict"), Mapping)
        and "opts" in content
        and CONFIG_KEY not in content
    )


def _options(path: Path, content: dict[str, Any]) -> dict[str, Any]:
    options = content["opts"]
    if isinstance(options, argparse.Namespace):
        options = vars(options)
    if not isinstance(options, Mapping):
        raise CheckpointError(f"{path}: 'opts' is a {type(options).__name__}, not a mapping")
    return dict(options)


def _latent_avg(path: Path, content: dict[str, Any]) -> torch.Tensor | None:
    """The stored average latent as one w (w_dim,): pSp stores it repeated per style input."""
    latent_avg = content.get("latent_avg")
    if latent_avg is None:
        return None
    rows = torch.as_tensor(latent_avg).detach().float().cpu().reshape(-1, latent_avg.shape[-1])
    if not torch.equal(rows, rows[:1].expand_as(rows)):
        raise CheckpointError(
            f"{path}: latent_avg differs between style inputs; only one average latent, "
            "repeated per input as pSp and e4e save it, is supported"
        )
    return rows[0].clone()


def psp_decoder_content(path: str | os.PathLike, content: dict[str, Any]) -> dict[str, Any]:
    """The decoder of a pSp / e4e checkpoint as a rosinality content dict (`g_ema`,
    `latent_avg`), for `generator_import`."""
    path = Path(path)
    decoder = _prefixed(content["state_dict"], DECODER_PREFIX)
    if not decoder:
        raise CheckpointError(f"{path}: the pSp checkpoint has no decoder.* weights")
    return {"g_ema": decoder, "latent_avg": _latent_avg(path, content)}


def _unit_indices(state: Mapping[str, torch.Tensor]) -> list[int]:
    pattern = re.compile(r"body\.(\d+)\.res_layer\.1\.weight")
    return sorted(int(m.group(1)) for k in state if (m := pattern.fullmatch(k)))


def _trunk(path: Path, state: Mapping[str, torch.Tensor]) -> dict[str, Any]:
    """Input channels, units per stage, base width and IR / IR-SE of an IR trunk's weights."""
    try:
        base_width, channels = state["input_layer.0.weight"].shape[:2]
    except KeyError as error:
        raise CheckpointError(
            f"{path}: the encoder has no input_layer: not a pSp encoder"
        ) from error
    widths = [int(state[f"body.{i}.res_layer.1.weight"].shape[0]) for i in _unit_indices(state)]
    stage_widths = [int(base_width) * m for m in WIDTH_MULTIPLIERS]
    blocks = [widths.count(width) for width in stage_widths]
    if widths != sorted(widths) or sum(blocks) != len(widths) or min(blocks) < 1:
        raise CheckpointError(
            f"{path}: the encoder's unit widths {sorted(set(widths))} are not four IR stages of "
            f"{stage_widths}"
        )
    squeeze = any(k.startswith("body.0.res_layer.5.") for k in state)
    return {
        "channels": int(channels),
        "blocks": blocks,
        "base_width": int(base_width),
        "mode": "ir_se" if squeeze else "ir",
    }


def _head_depths(state: Mapping[str, torch.Tensor], n_latent: int) -> list[int]:
    """Strided convs in each style head (`styles.<i>.convs.<2j>`)."""
    pattern = re.compile(r"styles\.(\d+)\.convs\.(\d+)\.weight")
    depths = [0] * n_latent
    for key in state:
        if (match := pattern.fullmatch(key)) and int(match.group(1)) < n_latent:
            depths[int(match.group(1))] += 1
    return depths


def _pyramid(path: Path, state: Mapping[str, torch.Tensor]) -> dict[str, Any]:
    """w_dim, style count and input resolution of a GradualStyle / e4e encoder's heads."""
    n_latent = sum(1 for k in state if re.fullmatch(r"styles\.\d+\.linear\.weight", k))
    if n_latent <= PAPER_MEDIUM_END:
        raise CheckpointError(
            f"{path}: the encoder has {n_latent} style heads; pSp's split at "
            f"{PAPER_COARSE_END} and {PAPER_MEDIUM_END} needs more than {PAPER_MEDIUM_END}"
        )
    depths = _head_depths(state, n_latent)
    resolution = 4 * 2 ** depths[-1]
    # Heads read maps of R/16 (coarse), R/8 (medium) and R/4 (fine) pixels, halved to 1x1.
    sides = [resolution // 16] * PAPER_COARSE_END
    sides += [resolution // 8] * (PAPER_MEDIUM_END - PAPER_COARSE_END)
    sides += [resolution // 4] * (n_latent - PAPER_MEDIUM_END)
    expected = [max(1, int(math.log2(max(side, 1)))) for side in sides]
    if depths != expected:
        raise CheckpointError(
            f"{path}: the style heads' depths {depths} do not follow pSp's pyramid "
            f"(split at {PAPER_COARSE_END} and {PAPER_MEDIUM_END}) for any input size"
        )
    return {
        "resolution": resolution,
        "w_dim": int(state["styles.0.linear.weight"].shape[0]),
        "n_latent": n_latent,
        "coarse_end": PAPER_COARSE_END,
        "medium_end": PAPER_MEDIUM_END,
    }


@dataclass(frozen=True)
class PSPCheckpoint:
    """A pSp / e4e checkpoint's encoder, its architecture and its options."""

    path: Path
    encoder_type: str
    options: dict[str, Any]
    encoder_state: dict[str, torch.Tensor]
    architecture: dict[str, Any]
    content: dict[str, Any]

    @property
    def learn_in_w(self) -> bool:
        """Whether the encoder gives one w (pSp's BackboneEncoderUsingLastLayerIntoW)."""
        return ENCODER_CLASSES[self.encoder_type] is WEncoder

    @property
    def start_from_latent_avg(self) -> bool:
        """Whether the codes are offsets from the average latent (`opts`)."""
        return bool(self.options.get("start_from_latent_avg", False))

    @property
    def input_resolution(self) -> int:
        """The side of the images the encoder was trained on."""
        return int(self.architecture["resolution"])

    def decoder_content(self) -> dict[str, Any]:
        """The decoder and average latent as a rosinality content dict."""
        return psp_decoder_content(self.path, self.content)

    def _check(self, name: str, asked: Any, found: Any, fix: str) -> None:
        if asked is not None and asked != found:
            raise CheckpointError(
                f"{self.path} holds a {self.encoder_type} with {name}={found}, but {asked} was "
                f"asked for: {fix}"
            )

    def build_encoder(
        self,
        resolution: int | None = None,
        channels: int | None = None,
        w_dim: int | None = None,
        n_latent: int | None = None,
        learn_in_w: bool | None = None,
    ) -> PSPTrunk:
        """Our encoder with the checkpoint's weights; given values are checked against it."""
        arch = self.architecture
        generator_fix = (
            "use the decoder of the same file (leave model.generator.path unset) or a "
            "generator of the same size"
        )
        self._check(
            "learn_in_w",
            learn_in_w,
            self.learn_in_w,
            f"set model.learn_in_w={str(self.learn_in_w).lower()}",
        )
        self._check("channels", channels, arch["channels"], "use images with as many channels")
        self._check("w_dim", w_dim, arch["w_dim"], generator_fix)
        if self.learn_in_w:
            kwargs = {k: v for k, v in arch.items() if k not in ("n_latent",)}
            kwargs["resolution"] = resolution or kwargs["resolution"]
        else:
            self._check("n_latent", n_latent, arch["n_latent"], generator_fix)
            self._check(
                "resolution",
                resolution,
                arch["resolution"],
                f"set model.encoder_resolution={arch['resolution']}",
            )
            kwargs = dict(arch)
        encoder = ENCODER_CLASSES[self.encoder_type](**kwargs)
        load_state_dict_checked(encoder, self.encoder_state, f"{self.path} (encoder)")
        # PSPModule checks that it adds the average latent exactly when the encoder was
        # trained to predict offsets from it.
        encoder.start_from_latent_avg = self.start_from_latent_avg
        return encoder


def psp_checkpoint_from_content(path: str | os.PathLike, content: Any) -> PSPCheckpoint:
    """Parse loaded pSp / e4e checkpoint content (see the module docstring)."""
    path = Path(path)
    if not is_psp_checkpoint(content):
        found = sorted(content)[:10] if isinstance(content, dict) else type(content).__name__
        raise CheckpointError(
            f"{path} is not a pSp / e4e checkpoint (state_dict + opts); it holds {found}"
        )
    options = _options(path, content)
    encoder_type = str(options.get("encoder_type", "GradualStyleEncoder"))
    if encoder_type not in ENCODER_CLASSES:
        raise CheckpointError(
            f"{path}: opts.encoder_type={encoder_type!r} is not supported; supported: "
            f"{', '.join(ENCODER_CLASSES)}"
        )
    state = _prefixed(content["state_dict"], ENCODER_PREFIX)
    architecture = _trunk(path, state)
    if ENCODER_CLASSES[encoder_type] is WEncoder:
        try:
            w_dim = int(state["linear.weight"].shape[0])
        except KeyError as error:
            raise CheckpointError(f"{path}: the w encoder has no linear layer") from error
        architecture.update(resolution=PSP_INPUT_RESOLUTION, w_dim=w_dim)
    else:
        architecture.update(_pyramid(path, state))
    input_nc = options.get("input_nc")
    if input_nc is not None and int(input_nc) != architecture["channels"]:
        raise CheckpointError(
            f"{path}: opts.input_nc={input_nc} but the encoder's first conv takes "
            f"{architecture['channels']} channels"
        )
    return PSPCheckpoint(path, encoder_type, options, state, architecture, content)


def read_psp_checkpoint(path: str | os.PathLike) -> PSPCheckpoint:
    """A pSp / e4e checkpoint file (or `registry:<name>`), loaded without running its code."""
    path = local_weights_path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"pSp / e4e checkpoint not found: {path}. Pass model.encoder.path=<file> (or "
            "encoder_path=<file> to evaluate.py / invgan.apply): a .pt saved by "
            "pixel2style2pixel or encoder4editing, or registry:<name>."
        )
    return psp_checkpoint_from_content(path, safe_torch_load(path, ALLOWED_GLOBALS))


def build_psp_encoder(
    resolution: int,
    channels: int,
    w_dim: int,
    n_latent: int,
    learn_in_w: bool = False,
    path: str | os.PathLike | None = None,
    coarse_end: int | None = None,
    medium_end: int | None = None,
    backbone_weights: str | os.PathLike | None = None,
    **trunk: Any,
) -> PSPTrunk:
    """`model.encoder`: a new pSp encoder (`psp_encoder`; its trunk started from the ArcFace
    file `backbone_weights` when given, as pSp does), or with `path` the encoder of a pSp / e4e
    checkpoint, whose architecture comes from the file (the trunk, split and backbone options
    are then unused) and must fit the generator, data and `learn_in_w`."""
    if path is None:
        encoder = psp_encoder(
            resolution, channels, w_dim, n_latent, learn_in_w, coarse_end, medium_end, **trunk
        )
        if backbone_weights is not None:
            trunk_weights = read_arcface_weights(backbone_weights)
            encoder.load_trunk_weights(trunk_weights, str(backbone_weights))
        return encoder
    checkpoint = read_psp_checkpoint(path)
    return checkpoint.build_encoder(resolution, channels, w_dim, n_latent, learn_in_w)
