"""ImageNet (or any photo collection) as square patches, for patch-wise and tiled inversion.

Every image is first resized so that its shorter side is ``image_size``. Training items are
random ``patch_size`` squares of it; validation and test items are its centred patch, so they
are the same at every read. ``tiled_test_dataset`` holds the centred ``grid_size * patch_size``
square of each test image, to be cut with :func:`invgan.utils.tiling.image_to_patches`.
"""

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from torch.utils.data import DataLoader

from datamodules.augment import Augmentation
from datamodules.base import check_int, split_by_fractions
from datamodules.errors import DataNotFoundError
from datamodules.image_files import center_crop, crop_square, list_images, resize_shorter_side
from datamodules.image_folder import ImageFolderDataModule, ImageFolderDataset


class PatchDataset(ImageFolderDataset):
    """Squares of side ``resolution`` from images resized to shorter side ``image_size``.

    The square is centred, or placed uniformly at random on every read when
    ``random_position`` is set (training). Items are (C, resolution, resolution) in [0, 1].
    """

    def __init__(
        self,
        paths: Sequence[str | Path],
        image_size: int,
        resolution: int,
        channels: int,
        random_position: bool = False,
        augment: Augmentation | None = None,
    ) -> None:
        if resolution > image_size:
            raise ValueError(f"cannot cut {resolution}-px squares from {image_size}-px images")
        super().__init__(paths, resolution, channels, augment)
        self.image_size = image_size
        self.random_position = random_position

    def transform(self, image: Image.Image) -> Image.Image:
        """Resize to shorter side ``image_size``, then cut the (centred or random) square."""
        image = resize_shorter_side(image, self.image_size)
        if not self.random_position:
            return center_crop(image, self.resolution)
        width, height = image.size
        # torch's generator, which DataLoader seeds differently in every worker.
        left = int(torch.randint(width - self.resolution + 1, ()))
        top = int(torch.randint(height - self.resolution + 1, ()))
        return crop_square(image, left, top, self.resolution)


class ImageNetPatchesDataModule(ImageFolderDataModule):
    """Patches of ImageNet photos: an ILSVRC tree or a flat folder of images.

    With ``root/train/<wnid>/*.JPEG`` and ``root/val/`` (class folders or flat), the official
    validation images are the test split and ``val_fraction`` of the training images are held
    out for validation (``test_fraction`` is unused). Otherwise every image under ``root`` is
    split by ``seed``, ``val_fraction`` and ``test_fraction``. ``resolution`` is the patch size
    the networks see; it may be given so configs can share ``data.resolution``, but must then
    equal ``patch_size``. ``options`` are those of :class:`ImageFolderDataModule`.
    """

    name = "ImageNet"
    expected_layout = "train/<wnid>/*.JPEG and val/ (the ILSVRC layout) or a flat folder of images"

    def __init__(
        self,
        root: str | Path,
        patch_size: int = 32,
        resolution: int | None = None,
        image_size: int = 128,
        grid_size: int | None = None,
        **options: Any,
    ) -> None:
        if resolution is not None and resolution != patch_size:
            raise ValueError(
                f"resolution ({resolution}) is the patch size the networks see and must equal "
                f"patch_size ({patch_size}); set only patch_size"
            )
        super().__init__(root, patch_size, **options)
        check_int("image_size", image_size)
        grid_size = image_size // patch_size if grid_size is None else grid_size
        check_int("grid_size", grid_size)
        if grid_size * patch_size > image_size:
            raise ValueError(
                f"a {grid_size}x{grid_size} grid of {patch_size}-px patches does not fit in "
                f"images resized to shorter side image_size={image_size}"
            )
        self.patch_size = patch_size
        self.image_size = image_size
        self.grid_size = grid_size
        self.tiled_test_dataset: PatchDataset | None = None

    def split_paths(self) -> tuple[list[Path], list[Path], list[Path]]:
        """ILSVRC layout: part of train/ for validation, val/ as test; else a seeded split."""
        train_dir = self.root / "train"
        if not train_dir.is_dir():
            return super().split_paths()
        official_train = list_images(train_dir, self.extensions)
        val_dir = self.root / "val"
        if not val_dir.is_dir():
            raise DataNotFoundError(
                f"{train_dir} exists, so {self.root} is read in the ILSVRC layout, which also "
                f"needs {val_dir}/ (the official validation images, used as the test split)",
                "Add it, or point data.root at a flat folder of images to split by data.seed",
            )
        train, val, _ = split_by_fractions(
            official_train, self.val_fraction, 0.0, self.seed, str(train_dir)
        )
        return train, val, list_images(val_dir, self.extensions)

    def make_dataset(self, paths: list[Path], train: bool) -> PatchDataset:
        """Random (and possibly flipped) training patches; centred validation and test ones."""
        return PatchDataset(
            paths,
            self.image_size,
            self.patch_size,
            self.channels,
            random_position=train,
            augment=self.train_augment(train),
        )

    def setup(self, stage: str | None = None) -> None:
        """Build the three splits, and ``tiled_test_dataset`` from the test images."""
        super().setup(stage)
        if self.tiled_test_dataset is None:
            assert self.test_dataset is not None  # super().setup built it
            tile = self.grid_size * self.patch_size
            self.tiled_test_dataset = PatchDataset(
                self.test_dataset.paths, self.image_size, tile, self.channels
            )
            self.configure(self.tiled_test_dataset)

    def tiled_test_dataloader(self) -> DataLoader:
        """Whole test images of ``grid_size * patch_size`` pixels, ``eval_batch_size`` a batch."""
        return self._loader(self.tiled_test_dataset, "tiled_test", train=False)
