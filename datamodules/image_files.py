"""Reading image files into [0, 1] tensors: listing, decoding, mode conversion and geometry."""

from collections.abc import Sequence
from pathlib import Path
from typing import BinaryIO

import numpy as np
import torch
from PIL import Image, ImageOps

from datamodules.errors import CorruptDataError

DEFAULT_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
_SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I")
_ALPHA_MODES = ("RGBA", "RGBa", "LA", "La", "PA")


def normalise_extensions(extensions: Sequence[str]) -> tuple[str, ...]:
    """Lower-case extensions with a leading dot; a single string counts as one extension."""
    if isinstance(extensions, str):
        extensions = (extensions,)
    return tuple(ext.lower() if ext.startswith(".") else f".{ext.lower()}" for ext in extensions)


def check_channels(channels: int) -> None:
    """Raise a ValueError unless ``channels`` is 1 (grayscale) or 3 (RGB)."""
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 (grayscale) or 3 (RGB), got {channels}")


def is_image_name(relative: str, extensions: Sequence[str]) -> bool:
    """Whether a relative posix path names an image: accepted extension, no hidden part.

    Hidden files and folders (names starting with ".") are skipped: they are typically
    metadata such as macOS "._name.jpg" resource forks, which are not images.
    """
    parts = relative.split("/")
    return Path(relative).suffix.lower() in extensions and not any(
        part.startswith(".") for part in parts
    )


def list_images(root: str | Path, extensions: Sequence[str] = DEFAULT_EXTENSIONS) -> list[Path]:
    """All image files under ``root`` (recursive, case-insensitive extensions), sorted by path."""
    root = Path(root).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(f"Image folder {root} does not exist or is not a directory")
    accepted = normalise_extensions(extensions)
    files = [
        path
        for path in root.rglob("*")
        if is_image_name(path.relative_to(root).as_posix(), accepted) and path.is_file()
    ]
    if not files:
        raise ValueError(
            f"No images found under {root} (searched recursively for the extensions "
            f"{', '.join(accepted)}): add images there, or point to the folder that holds them"
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


def read_image(
    source: str | Path | BinaryIO, channels: int, name: str | Path | None = None
) -> Image.Image:
    """Decode an image file (a path or an open binary file) as an RGB or grayscale PIL image.

    ``name`` is what error messages call the file; it defaults to ``source`` itself.
    """
    try:
        with Image.open(source) as image:
            image.load()
            image = ImageOps.exif_transpose(image)
            return convert_mode(image, "L" if channels == 1 else "RGB")
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
        # PIL signals truncated or undecodable data with several exception types.
        raise CorruptDataError(
            f"Image file {source if name is None else name} is unreadable (corrupt, truncated "
            f"or not an image): {error}"
        ) from error


def image_to_tensor(image: Image.Image) -> torch.Tensor:
    """An 8-bit RGB or grayscale PIL image as a float32 (C, H, W) tensor in [0, 1]."""
    tensor = torch.from_numpy(np.array(image, dtype=np.uint8))
    tensor = tensor.unsqueeze(0) if tensor.ndim == 2 else tensor.permute(2, 0, 1)
    return tensor.to(torch.float32).div_(255.0)


def resize_shorter_side(image: Image.Image, size: int) -> Image.Image:
    """Resize (Lanczos, aspect ratio kept) so the shorter side equals ``size``."""
    width, height = image.size
    scale = size / min(width, height)
    target = (max(size, round(width * scale)), max(size, round(height * scale)))
    return image if target == image.size else image.resize(target, Image.Resampling.LANCZOS)


def crop_square(image: Image.Image, left: int, top: int, size: int) -> Image.Image:
    """The ``size`` x ``size`` square whose top-left corner is at (``left``, ``top``)."""
    return image.crop((left, top, left + size, top + size))


def center_crop(image: Image.Image, size: int) -> Image.Image:
    """The centred ``size`` x ``size`` square (rounding the offsets down)."""
    width, height = image.size
    if size > min(width, height):
        raise ValueError(f"cannot crop a {size}x{size} square from a {width}x{height} image")
    return crop_square(image, (width - size) // 2, (height - size) // 2, size)


def resize_center_crop(image: Image.Image, resolution: int) -> Image.Image:
    """Resize so the shorter side equals ``resolution`` (Lanczos), then centre-crop a square."""
    return center_crop(resize_shorter_side(image, resolution), resolution)
