"""LightningDataModules whose items are float32 images in [0, 1] of shape (C, R, R)."""

from datamodules.archive import ImageArchive, read_labels
from datamodules.base import ImageDataModule, split_by_fractions, split_indices
from datamodules.celeba import CelebADataModule, CelebADataset
from datamodules.errors import (
    CorruptDataError,
    DataNotFoundError,
    DataPermissionError,
    OversizedImageError,
)
from datamodules.ffhq import ArchiveImageDataset, FFHQDataModule
from datamodules.image_folder import ImageFolderDataModule, ImageFolderDataset
from datamodules.imagenet_patches import ImageNetPatchesDataModule, PatchDataset
from datamodules.mnist import MNISTDataModule, MNISTDataset, read_idx
from datamodules.synthetic import SyntheticDataModule, SyntheticDataset, make_blob_images

__all__ = [
    "ArchiveImageDataset",
    "CelebADataModule",
    "CelebADataset",
    "CorruptDataError",
    "DataNotFoundError",
    "DataPermissionError",
    "FFHQDataModule",
    "ImageArchive",
    "ImageDataModule",
    "ImageFolderDataModule",
    "ImageFolderDataset",
    "ImageNetPatchesDataModule",
    "MNISTDataModule",
    "MNISTDataset",
    "OversizedImageError",
    "PatchDataset",
    "SyntheticDataModule",
    "SyntheticDataset",
    "make_blob_images",
    "read_idx",
    "read_labels",
    "split_by_fractions",
    "split_indices",
]
