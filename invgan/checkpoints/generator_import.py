"""Load a pretrained generator as a `FrozenGenerator`: from an invgan training run, a
rosinality-format StyleGAN2 `.pt` file, a StyleGAN2-ADA-PyTorch / StyleGAN3 `.pkl`
(`nvidia_pickle`), the decoder of a pSp / e4e checkpoint (`psp_checkpoint`) or a
`registry:<name>` (`registry`), without ever unpickling arbitrary objects.

Architectures are read from the weights (resolution, widths, latent size, mapping depth), and
a mismatch with what the config expects is an error that names both values.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import hydra
import torch
from omegaconf import DictConfig, OmegaConf

from invgan.checkpoints.format import (
    SAFETENSORS_SUFFIX,
    CheckpointError,
    load_checkpoint,
    load_state_dict_checked,
)
from invgan.checkpoints.keys import CONFIG_KEY, GENERATOR_ARCHITECTURE_KEY
from invgan.checkpoints.nvidia_pickle import MAPPING_LR_KEY, PICKLE_SUFFIX, read_nvidia_generator
from invgan.checkpoints.psp_checkpoint import is_psp_checkpoint, psp_decoder_content
from invgan.checkpoints.registry import local_weights_path
from invgan.checkpoints.safe_load import safe_torch_load
from invgan.checkpoints.stored_config import checked_config
from invgan.nn.frozen_generator import FrozenGenerator

STYLEGAN2_TARGET = "invgan.nn.stylegan2.generator.StyleGAN2Generator"
NETWORK_SETS = ("ema", "live")
# rosinality's train.py pickles its argparse.Namespace into every checkpoint; that class (and
# nothing else beyond tensors and plain data) may be rebuilt while loading.
ALLOWED_GLOBALS = [argparse.Namespace]


def read_weights_file(path: str | os.PathLike | None) -> dict[str, Any]:
    """The content of a generator weights file, loaded without running code from it: a
    `.safetensors` export, an NVIDIA `.pkl` (restricted unpickler, `G_ema` in rosinality's
    layout), or `torch.load(weights_only=True)` with the allow-list."""
    files = (
        "a checkpoints/last.ckpt of an invgan training run (or its .safetensors export), a "
        "rosinality StyleGAN2 .pt, a StyleGAN2-ADA-PyTorch .pkl, a pSp / e4e checkpoint or "
        "registry:<name>"
    )
    if path is None:
        raise FileNotFoundError(
            f"no generator weights given: pass model.generator.path=<file>: {files}."
        )
    path = local_weights_path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"generator weights not found: {path}. Pass model.generator.path=<file>: {files}."
        )
    if path.suffix == SAFETENSORS_SUFFIX:
        return load_checkpoint(path)
    if path.suffix == PICKLE_SUFFIX:
        return read_nvidia_generator(path)
    content = safe_torch_load(path, ALLOWED_GLOBALS)
    if not isinstance(content, dict):
        raise CheckpointError(f"{path} holds a {type(content).__name__}, not a dict of weights.")
    return content


def _check_expected(path: Path, name: str, found: int, expected: int | None) -> None:
    if expected is not None and int(expected) != found:
        raise ValueError(
            f"{path} holds a generator with {name} {found}, but the config expects {expected}; "
            f"set the config's {name} to {found} (e.g. data.{name}={found}) or use other weights."
        )


def _prefixed(state_dict: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {k[len(prefix) :]: v for k, v in state_dict.items() if k.startswith(prefix)}


def _from_invgan_run(
    path: Path, checkpoint: dict[str, Any], networks: str
) -> tuple[FrozenGenerator, bool]:
    """The EMA (or live) generator and mapping of an InvGAN run, which stores no latent_avg."""
    if networks not in NETWORK_SETS:
        raise ValueError(f"model.generator.networks={networks!r}; allowed: {NETWORK_SETS}")
    run_cfg = OmegaConf.create(checkpoint[CONFIG_KEY])
    if not isinstance(run_cfg, DictConfig) or not isinstance(run_cfg.get("model"), DictConfig):
        raise CheckpointError(f"the '{CONFIG_KEY}' stored in {path} has no 'model' mapping")
    # Resolved against the run's own config (network configs refer to ${data.resolution} and
    # ${data.channels}), and checked: the file must not choose what gets built.
    model_cfg = checked_config(run_cfg.model, str(path), "model")
    if "discriminator" not in model_cfg or "loss" not in model_cfg:
        raise CheckpointError(
            f"{path} is an invgan run without a trainable generator (model "
            f"{model_cfg.get('_target_')}); pass the InvGAN run the encoder was trained on."
        )
    architecture = {key: model_cfg.get(key) for key in ("generator", "mapping")}
    frozen = build_frozen_generator(architecture)
    prefix = "ema." if networks == "ema" else ""
    state = checkpoint["state_dict"]
    load_state_dict_checked(
        frozen.generator, _prefixed(state, f"{prefix}generator."), f"{path} ({prefix}generator)"
    )
    if not frozen.owns_mapping:
        load_state_dict_checked(
            frozen.mapping_network,
            _prefixed(state, f"{prefix}mapping."),
            f"{path} ({prefix}mapping)",
        )
    return frozen, True


def _stylegan2_architecture(g_ema: dict[str, torch.Tensor], lr_mlp: float) -> dict[str, Any]:
    """StyleGAN2Generator arguments read from a rosinality `g_ema` state dict."""
    try:
        w_dim = int(g_ema["style.1.weight"].shape[0])
        n_mlp = sum(1 for k in g_ema if k.startswith("style.") and k.endswith(".weight"))
        channels = int(g_ema["to_rgb1.conv.weight"].shape[1])
        num_upsamplings = sum(1 for k in g_ema if k.startswith("to_rgbs.") and "conv.weight" in k)
        widths = {4: int(g_ema["conv1.conv.weight"].shape[1])}
        for k in range(num_upsamplings):
            widths[2 ** (k + 3)] = int(g_ema[f"convs.{2 * k}.conv.weight"].shape[1])
    except KeyError as error:
        raise CheckpointError(
            f"the g_ema weights lack {error}: not a StyleGAN2 generator in the rosinality layout"
        ) from error
    resolution = 2 ** (num_upsamplings + 2)
    channel_max = max(widths.values())
    narrower = {res * width for res, width in widths.items() if width < channel_max}
    if len(narrower) > 1:
        raise CheckpointError(
            f"the generator's widths {widths} do not follow StyleGAN2's schedule"
        )
    channel_base = narrower.pop() if narrower else max(32768, resolution * channel_max)
    return {
        "_target_": STYLEGAN2_TARGET,
        "w_dim": w_dim,
        "resolution": resolution,
        "channels": channels,
        "n_mlp": n_mlp,
        "lr_mlp": lr_mlp,
        "channel_multiplier": 1,
        "channel_base": channel_base,
        "channel_max": channel_max,
    }


def _from_rosinality(
    path: Path, content: dict[str, Any], lr_mlp: float
) -> tuple[FrozenGenerator, bool]:
    """`g_ema` of a rosinality checkpoint, with its stored `latent_avg` when there is one."""
    g_ema = content["g_ema"]
    architecture = {"generator": _stylegan2_architecture(g_ema, lr_mlp), "mapping": None}
    frozen = build_frozen_generator(architecture)
    load_state_dict_checked(frozen.generator, g_ema, f"{path} (g_ema)")
    latent_avg = content.get("latent_avg")
    if latent_avg is None:
        return frozen, True
    frozen.latent_avg.copy_(torch.as_tensor(latent_avg).reshape(-1))
    return frozen, False


def build_frozen_generator(
    architecture: Mapping[str, Any], source: str = "the frozen generator's stored config"
) -> FrozenGenerator:
    """Instantiate the networks described by `architecture` (weights are random until loaded),
    once its `_target_`s are checked: it may come from a file."""
    architecture = checked_config(architecture, source, GENERATOR_ARCHITECTURE_KEY)
    generator = hydra.utils.instantiate(architecture["generator"])
    mapping = architecture.get("mapping")
    mapping = None if mapping is None else hydra.utils.instantiate(mapping)
    return FrozenGenerator(generator, mapping, architecture=dict(architecture))


def load_frozen_generator(
    path: str | os.PathLike | None,
    resolution: int | None = None,
    channels: int | None = None,
    w_dim: int | None = None,
    networks: str = "ema",
    lr_mlp: float = 0.01,
    latent_avg_samples: int = 10_000,
) -> FrozenGenerator:
    """A frozen generator from `path`: an invgan run checkpoint, a rosinality `.pt`, an NVIDIA
    `.pkl`, a pSp / e4e checkpoint's decoder, or `registry:<name>` (see the module docstring).

    `resolution`, `channels` and `w_dim`, when given, are checked against the weights.
    `networks` picks an InvGAN run's EMA or live networks; `lr_mlp` is the mapping network's
    learning-rate multiplier that rosinality files were trained with (it scales the forward
    pass and is not stored in them; NVIDIA pickles store theirs). Without a stored average
    latent, it is estimated from `latent_avg_samples` prior samples.
    """
    # A registry reference is downloaded (or found in the cache) and hashed once, here.
    path = None if path is None else local_weights_path(path)
    content = read_weights_file(path)
    assert path is not None  # read_weights_file refuses a missing path
    return frozen_generator_from_content(
        path, content, resolution, channels, w_dim, networks, lr_mlp, latent_avg_samples
    )


def frozen_generator_from_content(
    path: Path,
    content: dict[str, Any],
    resolution: int | None = None,
    channels: int | None = None,
    w_dim: int | None = None,
    networks: str = "ema",
    lr_mlp: float = 0.01,
    latent_avg_samples: int = 10_000,
) -> FrozenGenerator:
    """`load_frozen_generator` for a file already read (`read_weights_file` or a pSp
    checkpoint's content); `path` names it in errors."""
    if is_psp_checkpoint(content):
        content = psp_decoder_content(path, content)
    if CONFIG_KEY in content and "state_dict" in content:
        frozen, needs_latent_avg = _from_invgan_run(path, content, networks)
    elif isinstance(content.get("g_ema"), dict):
        # NVIDIA pickles store the multiplier their mapping weights are scaled by.
        lr_mlp = float(content.get(MAPPING_LR_KEY, lr_mlp))
        frozen, needs_latent_avg = _from_rosinality(path, content, lr_mlp)
    else:
        raise CheckpointError(
            f"{path} is neither an invgan run checkpoint (state_dict + {CONFIG_KEY}) nor a "
            f"rosinality StyleGAN2 file (g_ema); its top-level keys are {sorted(content)[:10]}."
        )
    _check_expected(path, "resolution", frozen.resolution, resolution)
    _check_expected(path, "channels", frozen.channels, channels)
    _check_expected(path, "w_dim", frozen.w_dim, w_dim)
    if needs_latent_avg:
        frozen.estimate_latent_avg(latent_avg_samples)
    return frozen
