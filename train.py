"""Train a model: `python train.py [experiment=...] [overrides...]`."""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from invgan.training import optimized_metric, train


@hydra.main(version_base="1.3", config_path="conf", config_name="train.yaml")
def main(cfg: DictConfig) -> float | None:
    """Hydra entry point; returns the optimized metric for sweepers."""
    return optimized_metric(train(cfg), cfg.get("optimized_metric"))


if __name__ == "__main__":
    main()
