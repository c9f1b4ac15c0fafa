"""Evaluate a checkpoint: `python evaluate.py ckpt_path=<run>/checkpoints/last.ckpt`.

A user error (a bad config value, a missing or unusable checkpoint, missing data) prints one
paragraph and exits with status 2.
"""

from __future__ import annotations

from typing import Any

import hydra
from omegaconf import DictConfig

from invgan.cli.user_errors import run_command
from invgan.evaluation.pipeline import evaluate
from invgan.utils.config_checks import check_config


@hydra.main(version_base="1.3", config_path="conf", config_name="evaluate.yaml")
def main(cfg: DictConfig) -> dict[str, Any]:
    """Hydra entry point; writes metrics.json into the run directory."""
    check_config(cfg)
    return evaluate(cfg)


if __name__ == "__main__":
    run_command(main, "evaluate.py")
