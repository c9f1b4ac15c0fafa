"""Train a model: `python train.py [experiment=...] [overrides...]`.

With no overrides this is the benchmarked MNIST recipe (`experiment=mnist_dcgan_invgan`),
downloading MNIST first when it is not there. A user error (a bad config value, missing data,
an unusable checkpoint) prints one paragraph and exits with status 2. The pipeline itself is
`invgan.training.pipeline.train`.
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from invgan.cli.config_dir import CONFIG_DIR
from invgan.training.pipeline import optimized_metric, train


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="train.yaml")
def main(cfg: DictConfig) -> float | None:
    """Hydra entry point; returns the optimized metric for sweepers."""
    return optimized_metric(train(cfg), cfg.get("optimized_metric"))
