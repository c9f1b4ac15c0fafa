"""Evaluate a checkpoint: `python evaluate.py ckpt_path=<run>/checkpoints/last.ckpt`."""

from __future__ import annotations

from typing import Any

import hydra
from omegaconf import DictConfig

from invgan.evaluation.pipeline import evaluate


@hydra.main(version_base="1.3", config_path="conf", config_name="evaluate.yaml")
def main(cfg: DictConfig) -> dict[str, Any]:
    """Hydra entry point; writes metrics.json into the run directory."""
    return evaluate(cfg)


if __name__ == "__main__":
    main()
