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
from invgan.checkpoints.run_config import restore_run_config
from invgan.evaluation.loading import resolve_device
from invgan.evaluation.metrics.inception import InceptionNetwork, RealReference
from invgan.evaluation.pipeline import evaluation_batch_size
from invgan.evaluation.streams import ImageStreams
from invgan.evaluation.world import EvaluationWorld
from invgan.metrics.fid import fid_against_real
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
    batch_size = evaluation_batch_size(cfg, datamodule)
    world = EvaluationWorld()
    # Data streams only: no model and no inversion method are needed.
    streams = ImageStreams(
        None,  # type: ignore[arg-type]
        None,  # type: ignore[arg-type]
        datamodule,
        world,
        int(cfg.seed),
        batch_size,
        device,
    )
    network = InceptionNetwork(cfg.metrics.fid.weights_path, device)
    reference = RealReference(streams, network, cfg.metrics.fid.cache_dir)
    reference.want_statistics(cfg.metrics.fid.real_count)
    real = reference.statistics()
    test_images = (images for _, images in streams.test_images(num_samples))
    value, count = fid_against_real(test_images, real, network.metric, num_samples)
    print(
        f"FID of {count} real test images vs the statistics of {real.count} training images: "
        f"{value:.2f}"
    )


if __name__ == "__main__":
    count = int(sys.argv[3]) if len(sys.argv) > 3 else None
    main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 500, count)
