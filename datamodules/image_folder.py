"""Any folder of image files (recursive), resized and centre-cropped to a square resolution."""

from collections.abc import Sequence
from pathlib import Path

import torch
from PIL import Image
from torch.utils.data import Dataset

from datamodules.augment import Augmentation
from datamodules.bad_files import BadFilePolicy
from datamodules.base import ImageDataModule, check_fractions, split_by_fractions
from datamodules.errors import CorruptDataError, DataNotFoundError
from datamodules.image_files import (
    DEFAULT_EXTENSIONS,
    DEFAULT_LIMITS,
    DEFAULT_MAX_ASPECT_RATIO,
    DEFAULT_MAX_IMAGE_PIXELS,
    ImageLimits,
    check_channels,
    image_to_tensor,
    list_images,
    normalise_extensions,
    read_image,
    resize_center_crop,
)

# An item: the image (C, R, R), or (image, label) where a subclass has labels (FFHQ's).
Item = torch.Tensor | tuple[torch.Tensor, torch.Tensor]


class ImageFolderDataset(Dataset):
    """Images read lazily from a list of file paths; items are (C, R, R) float32 in [0, 1].

    Only paths are stored, so the dataset pickles cheaply for worker processes and DDP spawn.
    Subclasses change where images come from (:meth:`read`) and how they become squares
    (:meth:`transform`); augmentation and conversion to tensors stay here. What an unreadable
    file does is up to ``bad_files``, which the datamodule sets from ``data.on_bad_file``, and
    which images are too large to decode is up to ``limits`` (``data.max_image_pixels``,
    ``data.max_aspect_ratio``).
    """

    def __init__(
        self,
        paths: Sequence[str | Path],
        resolution: int,
        channels: int,
        augment: Augmentation | None = None,
    ) -> None:
        check_channels(channels)
        self.paths = [str(path) for path in paths]
        self.resolution = resolution
        self.channels = channels
        self.augment = augment
        self.bad_files = BadFilePolicy()
        self.limits = DEFAULT_LIMITS

    def __len__(self) -> int:
        return len(self.paths)

    def read(self, index: int) -> Image.Image:
        """Decode the image of item ``index``."""
        return read_image(self.paths[index], self.channels, limits=self.limits)

    def transform(self, image: Image.Image) -> Image.Image:
        """Shorter side resized to ``resolution``, then the centred square."""
        return resize_center_crop(image, self.resolution)

    def describe(self, index: int) -> str:
        """How errors and the bad-files log name the file of item ``index``."""
        return self.paths[index]

    def load(self, index: int) -> Item:
        """Item ``index``; a file that cannot be read raises :class:`CorruptDataError`."""
        tensor = image_to_tensor(self.transform(self.read(index)))
        return tensor if self.augment is None else self.augment(tensor)

    def __getitem__(self, index: int) -> Item:
        # Out of range is an IndexError (iteration by index stops on it), never a wrap-around.
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} images")
        # Under data.on_bad_file=skip the next readable item (wrapping around) stands in for an
        # unreadable one: batches keep their size and the same index always gives the same file.
        for offset in range(len(self)):
            candidate = (index + offset) % len(self)
            try:
                return self.load(candidate)
            except CorruptDataError as error:
                self.bad_files.handle(self.describe(candidate), error)
        raise CorruptDataError(
            f"None of the {len(self)} images of this split is readable (each one was skipped "
            "and named in a warning); check the files under data.root"
        )


class ImageFolderDataModule(ImageDataModule[ImageFolderDataset]):
    """All images under ``root``, split into train/val/test by ``seed`` and fractions.

    Datamodules for particular datasets subclass it to share its options and checks, and
    override :meth:`split_paths` (where the splits come from) and :meth:`make_dataset` (how a
    split's images become items).
    """

    name = "image folder"
    #: What ``root`` should hold, for the error raised when it does not exist.
    expected_layout = "a folder of images (searched recursively)"

    def __init__(
        self,
        root: str | Path,
        resolution: int,
        channels: int = 3,
        val_fraction: float = 0.05,
        test_fraction: float = 0.05,
        extensions: Sequence[str] = DEFAULT_EXTENSIONS,
        hflip: bool = False,
        translate: int = 0,
        batch_size: int = 64,
        eval_batch_size: int = 256,
        num_workers: int = 0,
        pin_memory: bool = False,
        seed: int = 0,
        on_bad_file: str = "fail",
        bad_files_log: str | Path | None = None,
        max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS,
        max_aspect_ratio: float = DEFAULT_MAX_ASPECT_RATIO,
    ) -> None:
        super().__init__(
            resolution=resolution,
            channels=channels,
            batch_size=batch_size,
            eval_batch_size=eval_batch_size,
            num_workers=num_workers,
            pin_memory=pin_memory,
            seed=seed,
        )
        check_channels(channels)
        check_fractions(val_fraction, test_fraction)
        self.root = Path(root).expanduser()
        self.val_fraction = val_fraction
        self.test_fraction = test_fraction
        self.extensions = normalise_extensions(extensions)
        if translate >= resolution:
            raise ValueError(
                f"data.translate={translate} must be smaller than data.resolution={resolution}"
            )
        self.augmentation = Augmentation(hflip, translate)
        self.bad_files = BadFilePolicy(on_bad_file, bad_files_log)
        self.image_limits = ImageLimits(max_image_pixels, max_aspect_ratio, config="data")

    def setup(self, stage: str | None = None) -> None:
        """Build the splits, then hand each the policies for unreadable and oversized files."""
        super().setup(stage)
        for dataset in (self.train_dataset, self.val_dataset, self.test_dataset):
            assert dataset is not None  # super().setup built all three splits
            self.configure(dataset)

    def configure(self, dataset: ImageFolderDataset) -> None:
        """Give ``dataset`` this datamodule's policy for unreadable files and its size limits."""
        dataset.bad_files = self.bad_files
        dataset.limits = self.image_limits

    def train_augment(self, train: bool) -> Augmentation | None:
        """The configured augmentation for the training split, none for the others."""
        return self.augmentation if train else None

    def check_root(self) -> None:
        """Raise a DataNotFoundError that says what belongs there unless ``root`` exists."""
        if not self.root.exists():
            raise DataNotFoundError(
                f"{self.name} data {self.root} does not exist. Expected {self.expected_layout}",
                "Set data.root=<where it is>, or point INVGAN_DATA_DIR / paths.data_dir at a "
                f"folder that has a {self.root.name}/ subfolder.",
            )

    def split_paths(self) -> tuple[list[Path], list[Path], list[Path]]:
        """(train, val, test) paths: all images under ``root``, split by ``seed`` and fractions."""
        paths = list_images(self.root, self.extensions)
        return split_by_fractions(
            paths, self.val_fraction, self.test_fraction, self.seed, str(self.root)
        )

    def make_dataset(self, paths: list[Path], train: bool) -> ImageFolderDataset:
        """The dataset of one split; only the training split is augmented."""
        return ImageFolderDataset(paths, self.resolution, self.channels, self.train_augment(train))

    def build_datasets(self) -> tuple[ImageFolderDataset, ImageFolderDataset, ImageFolderDataset]:
        """Find the split paths; files are only opened when items are read."""
        self.check_root()
        train, val, test = self.split_paths()
        return (
            self.make_dataset(train, train=True),
            self.make_dataset(val, train=False),
            self.make_dataset(test, train=False),
        )
