"""Evaluate a checkpoint: `python evaluate.py ckpt_path=<run>/checkpoints/last.ckpt`.

A user error (a bad config value, a missing or unusable checkpoint, missing data) prints one
paragraph and exits with status 2. The pipeline itself is `invgan.evaluation.pipeline.evaluate`.
"""

from __future__ import annotations

from typing import Any

import hydra
from omegaconf import DictConfig

from invgan.cli.config_dir import CONFIG_DIR
from invgan.evaluation.pipeline import evaluate
from invgan.nn.config_check import check_config


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="evaluate.yaml")
def main(cfg: DictConfig) -> dict[str, Any]:
    """Hydra entry point; writes metrics.json into the run directory."""
    check_config(cfg)
    return evaluate(cfg)
