"""FID of N real test images against the training-set statistics that evaluate.py caches: the
score a perfect generator would get under the same protocol (small-N FID is biased upward).

Usage: python benchmarks/real_fid_floor.py <checkpoint> [num_samples] [real_count]
(run with the same INVGAN_DATA_DIR / INVGAN_INCEPTION_WEIGHTS as evaluate.py, so the cached
statistics are found instead of recomputed).
"""

from __future__ import annotations

import sys
from pathlib import Path

from hydra import compose, initialize_config_dir
from omegaconf import open_dict

from invgan.checkpoints.format import load_checkpoint
from invgan.evaluation.evaluator import Evaluator
from invgan.evaluation.loading import resolve_device, restore_run_config
from invgan.metrics.fid import fid_against_real
from invgan.metrics.inception import build_fid_metric
from invgan.utils.instantiate import instantiate_datamodule

CONFIG_DIR = Path(__file__).resolve().parents[1] / "conf"


def main(checkpoint_path: str, num_samples: int, real_count: int | None) -> None:
    """Print the FID of the first `num_samples` test images against the cached statistics."""
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose("evaluate", [f"ckpt_path={checkpoint_path}"])
    with open_dict(cfg):
        cfg.metrics.fid.real_count = real_count
        cfg.metrics.kid.enabled = False
        cfg.paths.output_dir = "."
    run_cfg = restore_run_config(load_checkpoint(checkpoint_path), cfg)
    datamodule = instantiate_datamodule(run_cfg.data)
    datamodule.setup()
    device = resolve_device(cfg.device)
    evaluator = Evaluator(None, datamodule, cfg, device)
    evaluator.fid_metric = build_fid_metric(cfg.metrics.fid.weights_path, device)
    real, _ = evaluator.real_reference()
    test_images = (images for _, images in evaluator.test_images(num_samples))
    value, count = fid_against_real(test_images, real, evaluator.fid_metric, num_samples)
    print(
        f"FID of {count} real test images vs the statistics of {real.count} training images: "
        f"{value:.2f}"
    )


if __name__ == "__main__":
    count = int(sys.argv[3]) if len(sys.argv) > 3 else None
    main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 500, count)
