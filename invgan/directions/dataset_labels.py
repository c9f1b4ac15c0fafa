"""Attribute labels from the checkpoint's own dataset, when its items have class labels
(MNIST digits; an FFHQ-style archive with `use_labels`): the attribute is "label in
`positive`", e.g. digit 1 against every other digit."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from omegaconf import OmegaConf

from invgan.checkpoints.format import load_checkpoint
from invgan.checkpoints.run_config import restore_run_config
from invgan.checkpoints.run_data import setup_run_data
from invgan.directions.labels import LabelledImages, balanced_subset, binary_labels
from invgan.utils.images import to_signed_range

SPLITS = ("train", "val", "test")


class DatasetLabels:
    """A class-balanced draw of one split of the run's dataset, labelled `label in positive`.

    `paths`, `seed` and `data_root` are the apply command's own (the run's data paths
    re-resolve on this machine, as evaluation does).
    """

    def __init__(
        self,
        ckpt_path: str | Path,
        positive: Sequence[int],
        paths: Mapping[str, Any],
        split: str = "test",
        data_root: str | None = None,
        max_per_class: int | None = 500,
        seed: int = 0,
    ) -> None:
        if split not in SPLITS:
            raise ValueError(f"split={split!r}; choose one of {', '.join(SPLITS)}")
        if not positive:
            raise ValueError("positive must list the class labels that have the attribute")
        self.ckpt_path = ckpt_path
        self.positive = [int(label) for label in positive]
        self.paths = paths
        self.split = split
        self.data_root = data_root
        self.max_per_class = max_per_class
        self.seed = seed

    def _dataset(self) -> Any:
        """The split's dataset, built from the checkpoint's data config."""
        own = OmegaConf.create({"paths": dict(self.paths), "seed": self.seed})
        own.data_root = self.data_root
        run_cfg = restore_run_config(load_checkpoint(self.ckpt_path), own)
        datamodule = setup_run_data(run_cfg.data, str(self.ckpt_path), "python -m invgan.apply")
        return getattr(datamodule, f"{self.split}_dataset")

    def load(self, channels: int, resolution: int) -> LabelledImages:
        """The drawn images in [-1, 1] and whether their class is one of `positive`
        (the dataset already has the generator's resolution and channels)."""
        dataset = self._dataset()
        classes = getattr(dataset, "labels", None)
        source = f"the {self.split} split of {self.ckpt_path}'s dataset"
        if classes is None:
            raise ValueError(
                f"{source} has no class labels: give labels from a file instead "
                "(application/direction/labels=csv or celeba_attributes)"
            )
        values = [str(int(label)) for label in classes]
        attribute = f"label in {self.positive}"
        labels = binary_labels(values, [str(p) for p in self.positive], attribute, source)
        chosen = balanced_subset(labels, self.max_per_class, attribute, source, self.seed)
        items = [dataset[int(i)] for i in chosen]
        images = torch.stack([item[0] if isinstance(item, tuple) else item for item in items])
        return LabelledImages(to_signed_range(images), labels[chosen], attribute)
