"""Link the first N test-split images of a training run into a folder (inputs for figures).

Usage: python benchmarks/test_split_images.py <run_dir> <count> <out_dir>
"""

from __future__ import annotations

import sys
from pathlib import Path

from omegaconf import OmegaConf

from invgan.utils.instantiate import instantiate_datamodule


def main(run_dir: Path, count: int, out_dir: Path) -> None:
    """Symlink the images behind the run's test split (needs a datamodule with file paths)."""
    cfg = OmegaConf.load(run_dir / ".hydra" / "config.yaml")
    cfg.paths.output_dir = str(run_dir)  # saved as Hydra's ${hydra:...}, unknown outside it
    datamodule = instantiate_datamodule(cfg.data)
    datamodule.setup()
    out_dir.mkdir(parents=True, exist_ok=True)
    for path in datamodule.test_dataset.paths[:count]:
        link = out_dir / Path(path).name
        if not link.exists():
            link.symlink_to(Path(path).resolve())


if __name__ == "__main__":
    main(Path(sys.argv[1]), int(sys.argv[2]), Path(sys.argv[3]))
