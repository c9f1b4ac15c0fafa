"""FFHQ (or any face set) as a folder or zip of images in the StyleGAN2-ADA dataset format."""

from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

import torch
from PIL import Image

from datamodules.archive import LABELS_FILE, ImageArchive, read_labels
from datamodules.augment import Augmentation
from datamodules.base import split_by_fractions
from datamodules.image_files import read_image
from datamodules.image_folder import ImageFolderDataModule, ImageFolderDataset, Item


class ArchiveImageDataset(ImageFolderDataset):
    """Images of an :class:`ImageArchive`, resized and centre-cropped to ``resolution``.

    ``paths`` are member names relative to the archive root. Items are (C, R, R) float32 images
    in [0, 1], or (image, label) pairs when ``labels`` (one row per name) are given.
    """

    def __init__(
        self,
        archive: ImageArchive,
        names: Sequence[str],
        resolution: int,
        channels: int,
        labels: torch.Tensor | None = None,
        augment: Augmentation | None = None,
    ) -> None:
        super().__init__(names, resolution, channels, augment)
        if labels is not None and len(labels) != len(names):
            raise ValueError(f"got {len(labels)} labels for {len(names)} images")
        self.archive = archive
        self.labels = labels

    def describe(self, index: int) -> str:
        """The archive path and member name of item ``index``."""
        return self.archive.describe(self.paths[index])

    def read(self, index: int) -> Image.Image:
        """Decode member ``paths[index]`` of the archive."""
        with self.archive.open(self.paths[index]) as handle:
            return read_image(handle, self.channels, self.describe(index), self.limits)

    def load(self, index: int) -> Item:
        """Item ``index``, with its own label (also when it stands in for a skipped file)."""
        # The parent's items are unlabelled: the image alone.
        image = cast(torch.Tensor, super().load(index))
        return image if self.labels is None else (image, self.labels[index])


class FFHQDataModule(ImageFolderDataModule):
    """A folder or zip file of images (any resolution), split by ``seed`` and fractions.

    ``root`` is a folder of PNG/JPG files (searched recursively) or a StyleGAN2-ADA zip, whose
    ``dataset.json`` is optional. With ``use_labels``, items are (image, label) pairs and
    ``dataset.json`` must hold a label for every image.
    ``options`` are those of :class:`ImageFolderDataModule` (channels, fractions, hflip, ...).
    """

    name = "FFHQ"
    expected_layout = (
        "a folder of PNG/JPG images, or a zip file in the StyleGAN2-ADA format (optionally "
        "with dataset.json)"
    )

    def __init__(
        self, root: str | Path, resolution: int = 128, use_labels: bool = False, **options: Any
    ) -> None:
        super().__init__(root, resolution, **options)
        self.use_labels = use_labels

    def build_datasets(
        self,
    ) -> tuple[ArchiveImageDataset, ArchiveImageDataset, ArchiveImageDataset]:
        """List the archive, read labels if asked, and split; images are read on access."""
        self.check_root()
        archive = ImageArchive(self.root, self.extensions)
        names = archive.image_names()
        labels = read_labels(archive, names) if self.use_labels else None
        if self.use_labels and labels is None:
            # Otherwise items would silently be images instead of (image, label) pairs.
            raise ValueError(
                f"data.use_labels=true, but {archive.describe(LABELS_FILE)} is missing or its "
                f'"labels" is null. Add {{"labels": [[name, label], ...]}} there, or set '
                "data.use_labels=false to train on the images alone"
            )
        splits = split_by_fractions(
            range(len(names)), self.val_fraction, self.test_fraction, self.seed, str(self.root)
        )
        train, val, test = (
            ArchiveImageDataset(
                archive,
                [names[i] for i in indices],
                self.resolution,
                self.channels,
                None if labels is None else labels[indices],
                augment=self.train_augment(split == 0),
            )
            for split, indices in enumerate(splits)
        )
        return train, val, test
