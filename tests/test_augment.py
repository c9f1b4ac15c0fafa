"""Training augmentation: random translation against a NumPy reflect-pad reference, and that
only training splits are augmented."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from datamodules.augment import Augmentation, random_translate
from datamodules.image_folder import ImageFolderDataModule
from tests.conftest import SHARED_DATA


def numpy_shift(image: np.ndarray, dy: int, dx: int, m: int) -> np.ndarray:
    """The image moved down by dy and right by dx, borders reflected (NumPy's reflect)."""
    padded = np.pad(image, ((0, 0), (m, m), (m, m)), mode="reflect")
    height, width = image.shape[1:]
    return padded[:, m - dy : m - dy + height, m - dx : m - dx + width]


def test_random_translate_is_a_reflected_shift_within_range():
    image = torch.rand(3, 9, 7)
    m = 3
    candidates = {
        (dy, dx): torch.from_numpy(numpy_shift(image.numpy(), dy, dx, m))
        for dy in range(-m, m + 1)
        for dx in range(-m, m + 1)
    }
    torch.manual_seed(0)
    seen = set()
    for _ in range(40):
        shifted = random_translate(image, m)
        matches = [shift for shift, ref in candidates.items() if torch.equal(shifted, ref)]
        assert matches, "output is not a reflected shift of at most 3 pixels"
        seen.add(matches[0])
    assert len(seen) > 10
    assert torch.equal(random_translate(image, 0), image)


def test_augmentation_rejects_bad_values():
    with pytest.raises(ValueError, match="data.translate must be >= 0"):
        Augmentation(translate=-1)
    with pytest.raises(ValueError, match="smaller than data.resolution"):
        ImageFolderDataModule(Path("."), resolution=16, translate=16)


def test_only_the_training_split_is_augmented():
    datamodule = ImageFolderDataModule(
        SHARED_DATA / "faces", resolution=16, val_fraction=0.2, test_fraction=0.2, translate=4
    )
    datamodule.setup()
    torch.manual_seed(0)
    train = [datamodule.train_dataset[0] for _ in range(6)]
    assert any(not torch.equal(train[0], item) for item in train[1:])
    for split in (datamodule.val_dataset, datamodule.test_dataset):
        assert torch.equal(split[0], split[0])
        assert split.augment is None
