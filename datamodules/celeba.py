"""CelebA: the official aligned images and partition file, or any folder of face images.

The usual GAN preprocessing: a centred ``crop_size`` square (140 px of the 178x218 aligned
images keeps the face and drops most background), then a Lanczos resize to ``resolution``.
"""

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from PIL import Image

from datamodules.augment import Augmentation
from datamodules.base import check_int
from datamodules.errors import CorruptDataError, DataNotFoundError
from datamodules.image_files import center_crop
from datamodules.image_folder import ImageFolderDataModule, ImageFolderDataset

PARTITION_FILE = "list_eval_partition.txt"
IMAGE_FOLDER = "img_align_celeba"
SPLITS = ("train", "val", "test")  # partition codes 0, 1 and 2


def crop_resize(image: Image.Image, crop_size: int | None, resolution: int) -> Image.Image:
    """The centred ``crop_size`` square resized (Lanczos) to ``resolution`` x ``resolution``.

    An image smaller than the crop, or ``crop_size=None``, gives the largest centred square.
    """
    side = min(image.size) if crop_size is None else min(crop_size, *image.size)
    return center_crop(image, side).resize((resolution, resolution), Image.Resampling.LANCZOS)


class CelebADataset(ImageFolderDataset):
    """Face images read lazily from paths, centre-cropped then resized; (C, R, R) in [0, 1]."""

    def __init__(
        self,
        paths: Sequence[str | Path],
        resolution: int,
        channels: int,
        crop_size: int | None,
        augment: Augmentation | None = None,
    ) -> None:
        super().__init__(paths, resolution, channels, augment)
        self.crop_size = crop_size

    def transform(self, image: Image.Image) -> Image.Image:
        """The centred ``crop_size`` square resized to ``resolution``."""
        return crop_resize(image, self.crop_size, self.resolution)


def official_folders(root: Path) -> tuple[Path, Path]:
    """Where the official files may be: ``root`` itself or ``root/celeba`` (torchvision's)."""
    return root, root / "celeba"


def find_partition_file(root: Path) -> Path | None:
    """``list_eval_partition.txt`` in one of the :func:`official_folders` of ``root``."""
    candidates = (folder / PARTITION_FILE for folder in official_folders(root))
    return next((path for path in candidates if path.is_file()), None)


def check_not_official_layout(root: Path) -> None:
    """Raise if ``root`` holds ``img_align_celeba/`` but no partition file was found: a seeded
    split would otherwise silently replace the official one."""
    for folder in official_folders(root):
        if (folder / IMAGE_FOLDER).is_dir():
            raise DataNotFoundError(
                f"{folder / IMAGE_FOLDER} is the official CelebA image folder, but "
                f"{folder / PARTITION_FILE} is missing, so the official train/val/test split is "
                "unknown",
                f"Put {PARTITION_FILE} (from CelebA's Eval/ folder) there, or set "
                f"data.root={folder / IMAGE_FOLDER} to split its images by data.seed instead",
            )


def read_partition(path: Path) -> dict[str, list[str]]:
    """Image names per split ("train", "val", "test") from lines ``<file> <0|1|2>``."""
    names: dict[str, list[str]] = {split: [] for split in SPLITS}
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            fields = line.split()
            if not fields:
                continue
            if len(fields) != 2 or fields[1] not in ("0", "1", "2"):
                raise CorruptDataError(
                    f"{path}, line {number}: expected '<image file> <0|1|2>', got {line.strip()!r}"
                )
            names[SPLITS[int(fields[1])]].append(fields[0])
    return names


def official_splits(partition: Path) -> tuple[list[Path], list[Path], list[Path]]:
    """(train, val, test) paths of the images listed in ``partition``, checked to exist."""
    folder = partition.parent / IMAGE_FOLDER
    if not folder.is_dir():
        raise DataNotFoundError(
            f"CelebA image folder {folder} not found",
            f"It should sit next to {partition} and hold the aligned images "
            "(img_align_celeba.zip unpacked)",
        )
    names = read_partition(partition)
    for split, listed in names.items():
        if not listed:
            code = SPLITS.index(split)
            raise ValueError(
                f"{partition} lists no {split} images (code {code}); every split needs some"
            )
    # One directory listing instead of ~200k stat calls.
    present = set(os.listdir(folder))
    missing = [name for listed in names.values() for name in listed if name not in present]
    if missing:
        raise DataNotFoundError(
            f"{len(missing)} images listed in {partition} are missing from {folder}, "
            f"e.g. {', '.join(missing[:5])}",
            "Restore them from the CelebA download, or point data.root at a complete copy",
        )
    train, val, test = ([folder / name for name in names[split]] for split in SPLITS)
    return train, val, test


class CelebADataModule(ImageFolderDataModule):
    """CelebA with its official train/val/test partition, or a seeded split of a plain folder.

    ``root`` holds ``img_align_celeba/`` and ``list_eval_partition.txt`` (directly or in a
    ``celeba/`` subfolder, as torchvision downloads it). Without a partition file, all images
    under ``root`` are split by ``seed``, ``val_fraction`` and ``test_fraction``. ``options``
    are those of :class:`ImageFolderDataModule` (channels, fractions, hflip, batch sizes, ...).
    """

    name = "CelebA"
    expected_layout = (
        f"{IMAGE_FOLDER}/*.jpg and {PARTITION_FILE} in it (the official layout), or any "
        "folder of images"
    )

    def __init__(
        self,
        root: str | Path,
        resolution: int = 64,
        crop_size: int | None = 140,
        **options: Any,
    ) -> None:
        super().__init__(root, resolution, **options)
        if crop_size is not None:
            check_int("crop_size", crop_size)
        self.crop_size = crop_size

    def split_paths(self) -> tuple[list[Path], list[Path], list[Path]]:
        """The official splits when a partition file exists, else a seeded split of ``root``."""
        partition = find_partition_file(self.root)
        if partition is not None:
            return official_splits(partition)
        check_not_official_layout(self.root)
        return super().split_paths()

    def make_dataset(self, paths: list[Path], train: bool) -> CelebADataset:
        """Centre-cropped, resized faces; only the training split is augmented."""
        return CelebADataset(
            paths, self.resolution, self.channels, self.crop_size, self.train_augment(train)
        )
