"""Reading the images a command is given (`inputs=`): one file or every image in a folder.

Below the applications and the directions, which both read images this way (`python -m
invgan.apply`, the studio, label files beside a folder of images)."""

from __future__ import annotations

from pathlib import Path

import torch

from datamodules.errors import CorruptDataError, permission_denied
from datamodules.image_files import image_to_tensor, list_images, read_image, resize_center_crop
from invgan.utils.images import to_signed_range


def load_images(source: str | Path, channels: int, size: int | None = None) -> torch.Tensor:
    """Images in [-1, 1], (N, channels, H, W), from a file or a folder (sorted by path).

    With `size`, each image is resized (shorter side) and centre-cropped to size x size;
    without, all images must already share one size. A file that is unreadable (corrupt, not
    readable by this user, or too large to decode safely) raises an error naming it and the fix.
    """
    source = Path(source).expanduser()
    try:
        exists, is_dir = source.exists(), source.is_dir()
    except PermissionError as error:  # a folder on the way that this user may not enter
        raise permission_denied(error) from error
    if not exists:
        raise FileNotFoundError(f"inputs={source} does not exist: give an image file or a folder")
    paths = list_images(source) if is_dir else [source]
    images = []
    for path in paths:
        try:
            image = read_image(path, channels)
        except CorruptDataError as error:
            # The same class, so callers can still tell the problems apart.
            raise type(error)(f"{error}. {error.fix} (inputs={source})") from error
        if size is not None:
            image = resize_center_crop(image, size)
        images.append(image_to_tensor(image))
    sizes = {tuple(image.shape[1:]) for image in images}
    if len(sizes) > 1:
        raise ValueError(
            f"the images under {source} have different sizes {sorted(sizes)}; set size=<pixels> "
            "to resize and centre-crop them all to one square size"
        )
    return to_signed_range(torch.stack(images))
