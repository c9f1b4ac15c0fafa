"""MNIST from the four official IDX files, parsed with numpy and kept in memory as uint8."""

import gzip
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from datamodules.base import ImageDataModule, check_int, split_indices
from datamodules.errors import CorruptDataError

IDX_IMAGES_MAGIC = 0x00000803  # unsigned bytes, 3 dimensions
IDX_LABELS_MAGIC = 0x00000801  # unsigned bytes, 1 dimension
MNIST_SIZE = 28
TRAIN_IMAGES = "train-images-idx3-ubyte"
TRAIN_LABELS = "train-labels-idx1-ubyte"
TEST_IMAGES = "t10k-images-idx3-ubyte"
TEST_LABELS = "t10k-labels-idx1-ubyte"
MNIST_FILES = (TRAIN_IMAGES, TRAIN_LABELS, TEST_IMAGES, TEST_LABELS)
# Resolution -> zero padding (pixels per side); 32 is the usual size for DCGAN-style networks.
MNIST_PADDING = {28: 0, 32: 2}


def read_idx(path: str | Path, magic: int) -> np.ndarray:
    """Read an IDX file (optionally gzipped), check its magic number and size, return the array."""
    path = Path(path)
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as handle:
                data = handle.read()
        else:
            data = path.read_bytes()
    except (OSError, EOFError) as error:  # gzip.BadGzipFile is an OSError
        raise CorruptDataError(f"IDX file {path} is unreadable: {error}") from error
    if len(data) < 4:
        raise CorruptDataError(f"IDX file {path} is unreadable: only {len(data)} bytes")
    found = int.from_bytes(data[:4], "big")
    if found != magic:
        raise CorruptDataError(
            f"IDX file {path} has magic number 0x{found:08x}, expected 0x{magic:08x}; "
            "it is not the expected MNIST file or it is corrupt"
        )
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    if len(data) < header:
        raise CorruptDataError(f"IDX file {path} is truncated inside its header")
    shape = tuple(int(d) for d in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    expected = header + int(np.prod(shape))
    if len(data) != expected:
        raise CorruptDataError(
            f"IDX file {path} is truncated or corrupt: header declares shape {shape} "
            f"({expected} bytes) but the file holds {len(data)} bytes"
        )
    # Copied so callers get an ordinary writable array rather than a view of immutable bytes.
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(shape).copy()


def find_mnist_files(root: str | Path) -> tuple[dict[str, Path], list[str], list[Path]]:
    """Locate the four IDX files in ``root`` or ``root/MNIST/raw`` (uncompressed preferred).

    Returns (found name -> path, missing names, directories searched).
    """
    root = Path(root).expanduser()
    directories = [root, root / "MNIST" / "raw"]
    found: dict[str, Path] = {}
    for name in MNIST_FILES:
        candidates = (d / f"{name}{ext}" for d in directories for ext in ("", ".gz"))
        path = next((c for c in candidates if c.is_file()), None)
        if path is not None:
            found[name] = path
    missing = [name for name in MNIST_FILES if name not in found]
    return found, missing, directories


def _missing_files_message(missing: list[str], directories: list[Path]) -> str:
    searched = ", ".join(str(d) for d in directories)
    return (
        f"MNIST files not found: missing {', '.join(missing)}. Expected the four official IDX "
        f"files {', '.join(MNIST_FILES)} (each optionally gzipped as .gz) in one of the "
        f"directories searched: {searched}. Place the files there, or set data.download=true "
        "when online, or point INVGAN_DATA_DIR / paths.data_dir at a folder that has an "
        "mnist/ subfolder holding the files."
    )


def load_mnist_split(files: dict[str, Path], train: bool) -> tuple[np.ndarray, np.ndarray]:
    """Read (images (N, 28, 28) uint8, labels (N,) uint8) of the official train or test split."""
    images_path = files[TRAIN_IMAGES if train else TEST_IMAGES]
    labels_path = files[TRAIN_LABELS if train else TEST_LABELS]
    images = read_idx(images_path, IDX_IMAGES_MAGIC)
    if images.shape[1:] != (MNIST_SIZE, MNIST_SIZE):
        raise CorruptDataError(
            f"IDX file {images_path} holds images of shape {images.shape[1:]}, expected "
            f"({MNIST_SIZE}, {MNIST_SIZE})"
        )
    labels = read_idx(labels_path, IDX_LABELS_MAGIC)
    if len(labels) != len(images):
        raise CorruptDataError(
            f"IDX files {images_path} and {labels_path} disagree: {len(images)} images "
            f"but {len(labels)} labels"
        )
    return images, labels


class MNISTDataset(Dataset):
    """MNIST digits held as one uint8 tensor; items are float32 (1, R, R) images in [0, 1].

    ``labels`` are kept for analysis but are not part of the items.
    """

    def __init__(self, images: np.ndarray, labels: np.ndarray, padding: int = 0) -> None:
        self.images = torch.from_numpy(np.ascontiguousarray(images, dtype=np.uint8))
        self.labels = torch.from_numpy(np.ascontiguousarray(labels, dtype=np.int64))
        self.padding = padding

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> torch.Tensor:
        image = self.images[index].unsqueeze(0).to(torch.float32).div_(255.0)
        if self.padding:
            # Zero is the black MNIST background, so padding extends it seamlessly.
            image = F.pad(image, (self.padding,) * 4, value=0.0)
        return image


class MNISTDataModule(ImageDataModule):
    """MNIST: 60k official training images split into train/val by ``seed``; the 10k as test."""

    name = "MNIST"

    def __init__(
        self,
        root: str | Path,
        download: bool = False,
        resolution: int = 28,
        channels: int = 1,
        val_size: int = 5000,
        batch_size: int = 64,
        eval_batch_size: int = 256,
        num_workers: int = 0,
        pin_memory: bool = False,
        seed: int = 0,
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
        if channels != 1:
            raise ValueError(f"MNIST images are grayscale: channels must be 1, got {channels}")
        if resolution not in MNIST_PADDING:
            allowed = ", ".join(str(r) for r in MNIST_PADDING)
            raise ValueError(
                f"MNIST resolution must be one of ({allowed}) (28 native, 32 zero-padded), "
                f"got {resolution}"
            )
        check_int("val_size", val_size, minimum=0)
        self.root = Path(root).expanduser()
        self.download = download
        self.val_size = val_size

    def _download(self) -> None:
        # Imported here: torchvision is only needed for this optional, online path.
        from torchvision.datasets import MNIST

        for train in (True, False):
            MNIST(str(self.root), train=train, download=True)

    def prepare_data(self) -> None:
        """Download the files (rank zero only, via torchvision) if missing and allowed."""
        if self.download and find_mnist_files(self.root)[1]:
            self._download()

    def locate_files(self) -> dict[str, Path]:
        """Paths of the four IDX files, downloading them first when allowed."""
        found, missing, directories = find_mnist_files(self.root)
        if missing and self.download:
            self._download()
            found, missing, directories = find_mnist_files(self.root)
        if missing:
            raise FileNotFoundError(_missing_files_message(missing, directories))
        return found

    def build_datasets(self) -> tuple[MNISTDataset, MNISTDataset, MNISTDataset]:
        """Read the IDX files and split the official training set into train and val."""
        files = self.locate_files()
        train_images, train_labels = load_mnist_split(files, train=True)
        test_images, test_labels = load_mnist_split(files, train=False)
        if self.val_size >= len(train_images):
            raise ValueError(
                f"val_size={self.val_size} leaves no MNIST training images "
                f"(the official training set has {len(train_images)})"
            )
        val_idx, train_idx = split_indices(len(train_images), [self.val_size], self.seed)
        padding = MNIST_PADDING[self.resolution]
        return (
            MNISTDataset(train_images[train_idx], train_labels[train_idx], padding),
            MNISTDataset(train_images[val_idx], train_labels[val_idx], padding),
            MNISTDataset(test_images, test_labels, padding),
        )
