"""Reading image files into [0, 1] tensors: listing, decoding, mode conversion and geometry."""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
import torch
from PIL import Image, ImageOps

from datamodules.errors import (
    CorruptDataError,
    OversizedImageError,
    permission_denied,
)

DEFAULT_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
# Limits on an image's size, checked from its header before any pixel is decoded.
# 2**29 pixels (536,870,912, e.g. 23,170 x 23,170) admits any real photo: the largest camera
# files, pixel-shift composites of 100-megapixel sensors, have about 400 megapixels. Decoded as
# 8-bit RGB that is at most 1.6 GB per DataLoader worker.
DEFAULT_MAX_IMAGE_PIXELS = 2**29
# Longer side over shorter side. Photos are 1:1 to 3:1 and stitched panoramas rarely pass 10:1,
# so 50:1 admits them all. A pixel count limit does not catch strips: resizing scales the
# shorter side to the resolution, so a 1 x 300,000 PNG (1.2 KB) becomes 64 x 19,200,000 pixels
# (3.7 GB) at 64 px, while at 50:1 even a 1024-px resolution needs 1024 x 51,200 (160 MB).
DEFAULT_MAX_ASPECT_RATIO = 50.0
# PIL's own decompression-bomb check (a warning above MAX_IMAGE_PIXELS, an error above twice
# that when a file is opened) stays on as a second line of defence, for formats whose size
# only shows while decoding. Set explicitly, since other code may have turned it off (None).
Image.MAX_IMAGE_PIXELS = DEFAULT_MAX_IMAGE_PIXELS
PIL_PIXEL_LIMIT = 2 * DEFAULT_MAX_IMAGE_PIXELS
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


def _refuse_unreadable(error: OSError) -> None:
    # os.walk reports folders it cannot list here. Path.rglob would skip an unreadable folder
    # silently, and with it every image inside.
    if isinstance(error, PermissionError):
        raise permission_denied(error) from error
    raise error


def list_images(root: str | Path, extensions: Sequence[str] = DEFAULT_EXTENSIONS) -> list[Path]:
    """All image files under ``root`` (recursive, case-insensitive extensions), sorted by path.

    A folder or file this user may not read raises :class:`DataPermissionError`.
    """
    root = Path(root).expanduser()
    accepted = normalise_extensions(extensions)
    try:
        if not root.is_dir():
            raise FileNotFoundError(f"Image folder {root} does not exist or is not a directory")
        files = []
        for folder, subfolders, names in os.walk(root, onerror=_refuse_unreadable):
            subfolders[:] = [name for name in subfolders if not name.startswith(".")]
            for name in names:
                path = Path(folder, name)
                if is_image_name(path.relative_to(root).as_posix(), accepted) and path.is_file():
                    files.append(path)
    except PermissionError as error:  # a folder on the way that this user may not enter
        raise permission_denied(error) from error
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


@dataclass(frozen=True)
class ImageLimits:
    """The largest image that is decoded: pixel count and ratio of longer to shorter side.

    ``config`` is the config group the limits are set in (``data``), for messages; None when
    they are not configurable.
    """

    max_pixels: int = DEFAULT_MAX_IMAGE_PIXELS
    max_aspect_ratio: float = DEFAULT_MAX_ASPECT_RATIO
    config: str | None = None

    def __post_init__(self) -> None:
        pixels, aspect = self.max_pixels, self.max_aspect_ratio
        if isinstance(pixels, bool) or not isinstance(pixels, int):
            raise ValueError(f"{self._key('max_image_pixels')} must be an integer, got {pixels!r}")
        if not 1 <= pixels <= PIL_PIXEL_LIMIT:
            raise ValueError(
                f"{self._key('max_image_pixels')}={pixels} must be between 1 and "
                f"{PIL_PIXEL_LIMIT} (PIL refuses to open larger images)"
            )
        if isinstance(aspect, bool) or not isinstance(aspect, int | float) or not aspect >= 1:
            raise ValueError(
                f"{self._key('max_aspect_ratio')}={aspect!r} must be a number >= 1 (the longer "
                "side over the shorter one)"
            )

    def _key(self, name: str) -> str:
        return name if self.config is None else f"{self.config}.{name}"

    def _limit(self, name: str, value: float, unit: str) -> str:
        whole = float(value).is_integer()
        if self.config is None:
            return f"the limit of {int(value):,}{unit}" if whole else f"the limit of {value}{unit}"
        return f"{self._key(name)}={int(value) if whole else value}"

    def check(self, size: tuple[int, int], name: object) -> None:
        """Raise :class:`OversizedImageError` naming ``name`` unless ``size`` is within limits."""
        width, height = size
        pixels = width * height
        ratio = max(width, height) / max(1, min(width, height))
        if pixels > self.max_pixels:
            limit = self._limit("max_image_pixels", self.max_pixels, " pixels")
            problem = f"its {pixels:,} pixels are more than {limit}"
        elif ratio > self.max_aspect_ratio:
            limit = self._limit("max_aspect_ratio", self.max_aspect_ratio, ":1")
            shown = f"{ratio:,.1f}".removesuffix(".0")
            problem = (
                f"its side ratio {shown}:1 is more than {limit} (resizing its shorter side "
                "to the resolution would make an enormous image)"
            )
        else:
            return
        raise OversizedImageError(f"Image file {name} is {width}x{height} pixels: {problem}")


DEFAULT_LIMITS = ImageLimits()


def read_image(
    source: str | Path | BinaryIO,
    channels: int,
    name: str | Path | None = None,
    limits: ImageLimits = DEFAULT_LIMITS,
) -> Image.Image:
    """Decode an image file (a path or an open binary file) as an RGB or grayscale PIL image.

    ``name`` is what error messages call the file; it defaults to ``source`` itself. An image
    beyond ``limits`` raises :class:`OversizedImageError` before its pixels are decoded, a file
    this user may not read :class:`DataPermissionError`; the errors' ``fix`` says what to do.
    """
    shown = source if name is None else name
    try:
        with warnings.catch_warnings():
            # PIL warns above the default limit, which is checked below with a clearer message.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            opened = Image.open(source)
        with opened as image:
            # Image.open has only read the header, which declares the size.
            limits.check(image.size, shown)
            image.load()
            upright = ImageOps.exif_transpose(image)
            return convert_mode(upright, "L" if channels == 1 else "RGB")
    except CorruptDataError:
        raise
    except PermissionError as error:
        raise permission_denied(error, with_fix=False) from error
    except Image.DecompressionBombError as error:
        # PIL's message ends with a full stop, which the callers' fix would double.
        message = str(error).rstrip(".")
        raise OversizedImageError(
            f"Image file {shown} is too large to decode: {message}"
        ) from error
    except (OSError, SyntaxError, ValueError) as error:
        # PIL signals truncated or undecodable data with several exception types.
        raise CorruptDataError(
            f"Image file {shown} is unreadable (corrupt, truncated or not an image): {error}"
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
