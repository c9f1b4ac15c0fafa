"""Export a training run's weights as a `.safetensors` file that loads without unpickling:

    python -m invgan.export ckpt_path=<run>/checkpoints/last.ckpt [out=model.safetensors]

The run's config (YAML) goes into the file's metadata, so `evaluate.py ckpt_path=<file>` and
`python -m invgan.apply` rebuild the model from the file alone (see conf/export.yaml).
"""

from __future__ import annotations

import logging
from pathlib import Path

import hydra
from omegaconf import DictConfig

from invgan.checkpoints.format import load_checkpoint, save_safetensors

log = logging.getLogger(__name__)


def export(cfg: DictConfig) -> Path:
    """Write `cfg.ckpt_path`'s weights and config to `cfg.out`; returns the written path."""
    path = save_safetensors(load_checkpoint(cfg.ckpt_path), cfg.out, bool(cfg.overwrite))
    log.info("wrote %s", path)
    return path


@hydra.main(version_base="1.3", config_path="../conf", config_name="export.yaml")
def main(cfg: DictConfig) -> None:
    """Hydra entry point."""
    export(cfg)


if __name__ == "__main__":
    main()
