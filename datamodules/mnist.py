"""MNIST from the four official IDX files, parsed with numpy and kept in memory as uint8."""

import gzip
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from datamodules.base import ImageDataModule, check_int, split_indices
from datamodules.download import DownloadError, download_files
from datamodules.errors import CorruptDataError, DataNotFoundError, permission_denied

IDX_IMAGES_MAGIC = 0x00000803  # unsigned bytes, 3 dimensions
IDX_LABELS_MAGIC = 0x00000801  # unsigned bytes, 1 dimension
MNIST_SIZE = 28
TRAIN_IMAGES = "train-images-idx3-ubyte"
TRAIN_LABELS = "train-labels-idx1-ubyte"
TEST_IMAGES = "t10k-images-idx3-ubyte"
TEST_LABELS = "t10k-labels-idx1-ubyte"
MNIST_FILES = (TRAIN_IMAGES, TRAIN_LABELS, TEST_IMAGES, TEST_LABELS)
# The official gzipped files and their md5s (as torchvision lists them).
MNIST_MD5 = {
    TRAIN_IMAGES: "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    TRAIN_LABELS: "d53e105ee54ea40749a09fcbcd1e9432",
    TEST_IMAGES: "9fb629c4189551a2d022fa330f9573f3",
    TEST_LABELS: "ec29112dd5afa0611ce80d1b7f02629c",
}
# Where MNIST downloads from, in order: torchvision's mirrors.
MNIST_MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
)
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
    except PermissionError as error:
        raise permission_denied(error) from error
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


def _missing_files_error(missing: list[str], directories: list[Path]) -> DataNotFoundError:
    searched = ", ".join(str(d) for d in directories)
    return DataNotFoundError(
        f"MNIST files not found: missing {', '.join(missing)}. Expected the four official IDX "
        f"files {', '.join(MNIST_FILES)} (each optionally gzipped as .gz) in one of the "
        f"directories searched: {searched}",
        "Place the files there, set data.root=<folder holding them>, set data.download=true "
        "when online, or point INVGAN_DATA_DIR / paths.data_dir at a folder that has an "
        "mnist/ subfolder holding the files.",
    )


def _download_failed_error(
    root: Path, missing: list[str], error: DownloadError
) -> DataNotFoundError:
    names = ", ".join(f"{name}.gz" for name in MNIST_FILES)
    return DataNotFoundError(
        f"MNIST is not in {root} (missing {', '.join(missing)}) and could not be downloaded"
        f"{', as this machine seems to be offline' if error.offline else ''}: {error}",
        f"Copy the four official IDX files {names} (gzipped or not) from a machine that is "
        f"online into {root}, or point data.root=<folder> at a folder that holds them (or set "
        "INVGAN_DATA_DIR=<folder> to a folder with an mnist/ subfolder holding them); "
        "data.mirrors lists the addresses to download from and data.download=false turns "
        "downloading off.",
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


class MNISTDataModule(ImageDataModule[MNISTDataset]):
    """MNIST: 60k official training images split into train/val by ``seed``; the 10k as test.

    With ``download``, missing files are fetched (md5-checked) into ``root`` from the first of
    ``mirrors`` that delivers each; offline, the error says where to put them.
    """

    name = "MNIST"

    def __init__(
        self,
        root: str | Path,
        download: bool = False,
        resolution: Literal[28, 32] = 28,
        channels: Literal[1] = 1,
        val_size: int = 5000,
        batch_size: int = 64,
        eval_batch_size: int = 256,
        num_workers: int = 0,
        pin_memory: bool = False,
        seed: int = 0,
        mirrors: Sequence[str] = MNIST_MIRRORS,
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
            raise ValueError(
                f"data.channels={channels}: MNIST images are grayscale, channels must be 1"
            )
        if resolution not in MNIST_PADDING:
            allowed = ", ".join(str(r) for r in MNIST_PADDING)
            raise ValueError(
                f"data.resolution={resolution}: MNIST comes at ({allowed}) (28 native, "
                "32 zero-padded)"
            )
        check_int("val_size", val_size, minimum=0)
        self.root = Path(root).expanduser()
        self.download = download
        self.mirrors = tuple(mirrors)
        self.val_size = val_size

    def _download(self, missing: list[str]) -> None:
        files = {f"{name}.gz": MNIST_MD5[name] for name in missing}
        try:
            download_files(files, self.mirrors, self.root)
        except DownloadError as error:
            raise _download_failed_error(self.root, missing, error) from None

    def prepare_data(self) -> None:
        """Download the missing files (rank zero only) when allowed."""
        missing = find_mnist_files(self.root)[1]
        if self.download and missing:
            self._download(missing)

    def locate_files(self) -> dict[str, Path]:
        """Paths of the four IDX files, downloading missing ones first when allowed."""
        found, missing, directories = find_mnist_files(self.root)
        if missing and self.download:
            self._download(missing)
            found, missing, directories = find_mnist_files(self.root)
        if missing:
            raise _missing_files_error(missing, directories)
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
