"""Any folder of image files (recursive), resized and centre-cropped to a square resolution."""

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps
from torch.utils.data import Dataset

from datamodules.base import ImageDataModule, split_indices
from datamodules.errors import CorruptDataError

DEFAULT_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
_SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I")
_ALPHA_MODES = ("RGBA", "RGBa", "LA", "La", "PA")


def _normalise_extensions(extensions: Sequence[str]) -> tuple[str, ...]:
    if isinstance(extensions, str):
        extensions = (extensions,)
    return tuple(ext.lower() if ext.startswith(".") else f".{ext.lower()}" for ext in extensions)


def _check_channels(channels: int) -> None:
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 (grayscale) or 3 (RGB), got {channels}")


def list_images(root: str | Path, extensions: Sequence[str] = DEFAULT_EXTENSIONS) -> list[Path]:
    """All image files under ``root`` (recursive, case-insensitive extensions), sorted by path.

    Hidden files and folders (names starting with ".") are skipped: they are typically
    metadata such as macOS "._name.jpg" resource forks, which are not images.
    """
    root = Path(root).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(f"Image folder {root} does not exist or is not a directory")
    accepted = _normalise_extensions(extensions)
    files = [
        path
        for path in root.rglob("*")
        if path.suffix.lower() in accepted
        and not any(part.startswith(".") for part in path.relative_to(root).parts)
        and path.is_file()
    ]
    if not files:
        raise ValueError(
            f"No images found under {root} (searched recursively for the extensions "
            f"{', '.join(accepted)})"
        )
    return sorted(files, key=lambda path: path.relative_to(root).as_posix())


def convert_mode(image: Image.Image, mode: str) -> Image.Image:
    """Convert a PIL image of any mode to ``mode`` ("RGB" or "L").

    16-bit grayscale is rescaled to 8 bits (PIL's own conversion clips at 255 instead), and
    transparent images are composited over black, the dark background used elsewhere.
    """
    if image.mode in _SIXTEEN_BIT_MODES:
        values = np.asarray(image, dtype=np.float64) / 257.0  # 65535 / 257 = 255
        image = Image.fromarray(np.clip(np.rint(values), 0, 255).astype(np.uint8), "L")
    elif image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in _ALPHA_MODES:
        rgba = image.convert("RGBA")
        image = Image.alpha_composite(Image.new("RGBA", rgba.size, (0, 0, 0, 255)), rgba)
    return image if image.mode == mode else image.convert(mode)


def resize_center_crop(image: Image.Image, resolution: int) -> Image.Image:
    """Resize so the shorter side equals ``resolution`` (Lanczos), then centre-crop a square."""
    width, height = image.size
    scale = resolution / min(width, height)
    size = (max(resolution, round(width * scale)), max(resolution, round(height * scale)))
    if size != image.size:
        image = image.resize(size, Image.Resampling.LANCZOS)
    left = (size[0] - resolution) // 2
    top = (size[1] - resolution) // 2
    return image.crop((left, top, left + resolution, top + resolution))


def load_image(path: str | Path, resolution: int, channels: int) -> torch.Tensor:
    """Read one image file as a float32 (channels, resolution, resolution) tensor in [0, 1]."""
    try:
        with Image.open(path) as image:
            image.load()
            image = ImageOps.exif_transpose(image)
            image = convert_mode(image, "L" if channels == 1 else "RGB")
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
        # PIL signals truncated or undecodable data with several exception types.
        raise CorruptDataError(
            f"Image file {path} is unreadable (corrupt, truncated or not an image): {error}"
        ) from error
    array = np.asarray(resize_center_crop(image, resolution), dtype=np.uint8)
    tensor = torch.from_numpy(array.copy())
    tensor = tensor.unsqueeze(0) if tensor.ndim == 2 else tensor.permute(2, 0, 1)
    return tensor.to(torch.float32).div_(255.0)


class ImageFolderDataset(Dataset):
    """Images read lazily from a list of file paths; items are (C, R, R) float32 in [0, 1].

    Only paths are stored, so the dataset pickles cheaply for worker processes and DDP spawn.
    """

    def __init__(
        self, paths: Sequence[str | Path], resolution: int, channels: int, hflip: bool = False
    ) -> None:
        _check_channels(channels)
        self.paths = [str(path) for path in paths]
        self.resolution = resolution
        self.channels = channels
        self.hflip = hflip

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> torch.Tensor:
        image = load_image(self.paths[index], self.resolution, self.channels)
        if self.hflip and torch.rand(()) < 0.5:
            image = image.flip(-1)
        return image


def _split_count(num_items: int, fraction: float) -> int:
    # At least one image whenever a split is requested, so tiny folders still validate.
    return 0 if fraction == 0 else max(1, math.floor(num_items * fraction + 0.5))


class ImageFolderDataModule(ImageDataModule):
    """All images under ``root``, split into train/val/test by ``seed`` and fractions."""

    name = "image folder"

    def __init__(
        self,
        root: str | Path,
        resolution: int,
        channels: int = 3,
        val_fraction: float = 0.05,
        test_fraction: float = 0.05,
        extensions: Sequence[str] = DEFAULT_EXTENSIONS,
        hflip: bool = False,
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
        _check_channels(channels)
        for name, fraction in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
            if not 0 <= fraction < 1:
                raise ValueError(f"{name} must be in [0, 1), got {fraction}")
        if val_fraction + test_fraction >= 1:
            raise ValueError(
                f"val_fraction + test_fraction must be below 1, got {val_fraction + test_fraction}"
            )
        self.root = Path(root).expanduser()
        self.val_fraction = val_fraction
        self.test_fraction = test_fraction
        self.extensions = _normalise_extensions(extensions)
        self.hflip = hflip

    def build_datasets(self) -> tuple[ImageFolderDataset, ImageFolderDataset, ImageFolderDataset]:
        """List the images and split them; files are only opened when items are read."""
        paths = list_images(self.root, self.extensions)
        sizes = [_split_count(len(paths), f) for f in (self.val_fraction, self.test_fraction)]
        if sum(sizes) >= len(paths):
            raise ValueError(
                f"{len(paths)} images under {self.root} are too few for validation ({sizes[0]}) "
                f"and test ({sizes[1]}) splits plus a training split"
            )
        val_idx, test_idx, train_idx = split_indices(len(paths), sizes, self.seed)

        def subset(indices: np.ndarray, hflip: bool) -> ImageFolderDataset:
            chosen = [paths[i] for i in indices]
            return ImageFolderDataset(chosen, self.resolution, self.channels, hflip)

        return subset(train_idx, self.hflip), subset(val_idx, False), subset(test_idx, False)
