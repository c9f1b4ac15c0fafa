"""LightningDataModules whose items are float32 images in [0, 1] of shape (C, R, R)."""

from datamodules.base import ImageDataModule, split_indices
from datamodules.errors import CorruptDataError
from datamodules.image_folder import ImageFolderDataModule, ImageFolderDataset
from datamodules.mnist import MNISTDataModule, MNISTDataset, read_idx
from datamodules.synthetic import SyntheticDataModule, SyntheticDataset, make_blob_images

__all__ = [
    "CorruptDataError",
    "ImageDataModule",
    "ImageFolderDataModule",
    "ImageFolderDataset",
    "MNISTDataModule",
    "MNISTDataset",
    "SyntheticDataModule",
    "SyntheticDataset",
    "make_blob_images",
    "read_idx",
    "split_indices",
]
