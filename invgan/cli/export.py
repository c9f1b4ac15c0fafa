"""Export a trained model for use elsewhere:

    python -m invgan.export ckpt_path=<run>/checkpoints/last.ckpt [format=safetensors]
    python -m invgan.export ckpt_path=<run>/checkpoints/last.ckpt format=onnx [out=<folder>]

`safetensors` (the default) writes the weights with the run's config in the file's metadata,
so `evaluate.py ckpt_path=<file>` and `python -m invgan.apply` rebuild the model from the file
alone. `onnx` and `torchscript` write the inference graphs (image -> code, code -> image,
image -> reconstruction, z -> code) into a folder with a `model.json` manifest, for running
without this framework (onnxruntime, `torch.jit.load`). `rosinality` writes a StyleGAN2
generator as a rosinality `.pt` (`g_ema`, `latent_avg`) for pSp, e4e, ReStyle and PTI code.
See conf/export.yaml.
"""

from __future__ import annotations

import logging
from pathlib import Path

import hydra
import torch
from omegaconf import DictConfig

from invgan.checkpoints.format import load_checkpoint, save_safetensors
from invgan.checkpoints.run_config import restore_run_config
from invgan.cli.config_dir import CONFIG_DIR
from invgan.deployment.export_folder import GRAPH_FORMATS, write_graph_folder
from invgan.deployment.rosinality_format import write_rosinality
from invgan.evaluation.loading import load_inference_model
from invgan.utils.config_checks import ConfigValueError

log = logging.getLogger(__name__)

FORMATS = ("safetensors", "rosinality", *GRAPH_FORMATS)


def default_out(cfg: DictConfig) -> Path:
    """Where the export goes when `out` is not given: beside this command's logs."""
    names = {"safetensors": "model.safetensors", "rosinality": "generator.pt"}
    name = names.get(cfg.format, cfg.format)
    return Path(cfg.paths.output_dir) / name


def export(cfg: DictConfig) -> Path:
    """Write the export that `cfg.format` names; returns the file or folder written.

    A stored config that evaluation would refuse to rebuild is refused here, never copied on.
    """
    if cfg.format not in FORMATS:
        raise ConfigValueError(f"format={cfg.format!r}: choose one of {', '.join(FORMATS)}")
    out = Path(cfg.out) if cfg.get("out") else default_out(cfg)
    if cfg.format == "safetensors":
        if not cfg.get("ckpt_path"):
            raise ConfigValueError(
                "format=safetensors needs ckpt_path=<run>/checkpoints/last.ckpt"
            )
        checkpoint = load_checkpoint(cfg.ckpt_path)
        restore_run_config(checkpoint, cfg, str(cfg.ckpt_path))
        written = save_safetensors(checkpoint, out, bool(cfg.overwrite))
    else:
        model, _, _ = load_inference_model(cfg, torch.device("cpu"))
        if cfg.format == "rosinality":
            write_rosinality(model, out, bool(cfg.overwrite))
        else:
            write_graph_folder(model, out, cfg.format, bool(cfg.overwrite))
        written = out
    log.info("wrote %s", written)
    return written


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="export.yaml")
def main(cfg: DictConfig) -> None:
    """Hydra entry point."""
    export(cfg)
