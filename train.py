"""Train a model: `python train.py [experiment=...] [overrides...]`.

With no overrides this is the benchmarked MNIST recipe (`experiment=mnist_dcgan_invgan`),
downloading MNIST first when it is not there. A user error (a bad config value, missing data,
an unusable checkpoint) prints one paragraph and exits with status 2.
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from invgan.cli.user_errors import run_command
from invgan.training import optimized_metric, train


@hydra.main(version_base="1.3", config_path="conf", config_name="train.yaml")
def main(cfg: DictConfig) -> float | None:
    """Hydra entry point; returns the optimized metric for sweepers."""
    return optimized_metric(train(cfg), cfg.get("optimized_metric"))


if __name__ == "__main__":
    run_command(main, "train.py")
