"""Shared LightningDataModule logic: split bookkeeping, size checks and DataLoader construction."""

import math
from abc import abstractmethod
from collections.abc import Sequence, Sized
from typing import Generic, TypeVar, cast

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset

from datamodules.errors import permission_denied
from datamodules.resumable_loader import EpochSeededRandomSampler, ResumableDataLoader

T = TypeVar("T")
DatasetT = TypeVar("DatasetT", bound=Dataset)


def check_int(name: str, value: int, minimum: int = 1) -> None:
    """Raise a ValueError naming ``name`` unless ``value`` is an int (not bool) >= ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")


def split_indices(num_items: int, sizes: list[int], seed: int) -> list[np.ndarray]:
    """Randomly partition ``range(num_items)`` into parts of the given sizes, reproducibly.

    Returns one sorted index array per size plus a final array with the remaining indices.
    The permutation depends only on ``num_items`` and ``seed``.
    """
    if any(size < 0 for size in sizes) or sum(sizes) > num_items:
        raise ValueError(f"cannot take parts of sizes {sizes} from {num_items} items")
    order = np.random.default_rng(seed).permutation(num_items)
    bounds = np.cumsum([0, *sizes])
    parts = [order[start:stop] for start, stop in zip(bounds[:-1], bounds[1:], strict=True)]
    parts.append(order[bounds[-1] :])
    # Sorted so each split keeps the on-disk order, which makes items easy to trace back.
    return [np.sort(part) for part in parts]


def check_fractions(val_fraction: float, test_fraction: float) -> None:
    """Raise a ValueError unless both fractions lie in [0, 1) and leave room for training."""
    for name, fraction in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        if not 0 <= fraction < 1:
            raise ValueError(f"{name} must be in [0, 1), got {fraction}")
    if val_fraction + test_fraction >= 1:
        raise ValueError(
            f"val_fraction + test_fraction must be below 1, got {val_fraction + test_fraction}"
        )


def _split_count(num_items: int, fraction: float) -> int:
    # At least one item whenever a split is requested, so tiny folders still validate.
    return 0 if fraction == 0 else max(1, math.floor(num_items * fraction + 0.5))


def split_by_fractions(
    items: Sequence[T], val_fraction: float, test_fraction: float, seed: int, source: str
) -> tuple[list[T], list[T], list[T]]:
    """Seeded (train, val, test) lists of ``items``, which were read from ``source``.

    A non-zero fraction always yields at least one item; the training split must keep one too.
    """
    sizes = [_split_count(len(items), fraction) for fraction in (val_fraction, test_fraction)]
    if sum(sizes) >= len(items):
        raise ValueError(
            f"{len(items)} images in {source} are too few for validation ({sizes[0]}) "
            f"and test ({sizes[1]}) splits plus a training split"
        )
    val, test, train = split_indices(len(items), sizes, seed)
    train_items, val_items, test_items = ([items[i] for i in part] for part in (train, val, test))
    return train_items, val_items, test_items


def _sized(dataset: Dataset) -> Sized:
    """``dataset`` as the sized map-style dataset that every split here is (torch's ``Dataset``
    type leaves ``__len__`` out, as iterable datasets need not have one)."""
    return cast(Sized, dataset)


class ImageDataModule(pl.LightningDataModule, Generic[DatasetT]):
    """Base class for datamodules whose items are float32 images in [0, 1], shape (C, R, R).

    Subclasses implement :meth:`build_datasets`, which returns map-style datasets of type
    ``DatasetT`` (with ``__len__``); this class caches the three splits, checks
    that the training split holds at least one batch and builds the DataLoaders (training:
    shuffled, ``drop_last=True``; validation and test: in order, ``eval_batch_size``).
    """

    #: Human-readable dataset name used in error messages.
    name: str = "dataset"

    def __init__(
        self,
        resolution: int,
        channels: int,
        batch_size: int,
        eval_batch_size: int,
        num_workers: int,
        pin_memory: bool,
        seed: int,
    ) -> None:
        super().__init__()
        for name, value in (
            ("resolution", resolution),
            ("channels", channels),
            ("batch_size", batch_size),
            ("eval_batch_size", eval_batch_size),
        ):
            check_int(name, value)
        check_int("num_workers", num_workers, minimum=0)
        # Collects the arguments of the concrete subclass's __init__ as well (Lightning walks
        # the chain of __init__ frames), so checkpoints record how the data was built.
        self.save_hyperparameters(logger=False)
        self.resolution = resolution
        self.channels = channels
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size
        self.num_workers = num_workers
        self.pin_memory = pin_memory
        self.seed = seed
        self.train_dataset: DatasetT | None = None
        self.val_dataset: DatasetT | None = None
        self.test_dataset: DatasetT | None = None

    @abstractmethod
    def build_datasets(self) -> tuple[DatasetT, DatasetT, DatasetT]:
        """Return the (train, val, test) datasets; called once, by the first ``setup``."""

    def setup(self, stage: str | None = None) -> None:
        """Build all three splits (whatever the stage); later calls return immediately."""
        if self.train_dataset is not None:
            return
        try:
            train, val, test = self.build_datasets()
        except PermissionError as error:  # a data folder or file that this user may not read
            raise permission_denied(error) from error
        train_size = len(_sized(train))
        if train_size < self.batch_size:
            raise ValueError(
                f"The {self.name} training split has {train_size} images, fewer than one "
                f"training batch (batch_size={self.batch_size}); with drop_last=True no batch "
                "could be formed. Use more data or a smaller data.batch_size."
            )
        self.train_dataset, self.val_dataset, self.test_dataset = train, val, test

    def _loader(self, dataset: Dataset | None, split: str, train: bool) -> DataLoader:
        if dataset is None:
            raise RuntimeError(
                f"{type(self).__name__}.{split}_dataloader() called before setup(); "
                "call setup() first (the Lightning Trainer does this for you)."
            )
        if not train:
            return DataLoader(
                dataset,
                batch_size=self.eval_batch_size,
                num_workers=self.num_workers,
                pin_memory=self.pin_memory,
                persistent_workers=self.num_workers > 0,
            )
        # Epoch-seeded order and worker seeds: a run resumed mid-epoch continues it exactly.
        return ResumableDataLoader(
            dataset,
            batch_size=self.batch_size,
            sampler=EpochSeededRandomSampler(_sized(dataset), self.seed),
            drop_last=True,
            num_workers=self.num_workers,
            pin_memory=self.pin_memory,
            persistent_workers=self.num_workers > 0,
            generator=torch.Generator(),
        )

    def train_dataloader(self) -> DataLoader:
        """Shuffled training batches of ``batch_size``; the last incomplete batch is dropped."""
        return self._loader(self.train_dataset, "train", train=True)

    def val_dataloader(self) -> DataLoader:
        """Validation batches of ``eval_batch_size`` in dataset order."""
        return self._loader(self.val_dataset, "val", train=False)

    def test_dataloader(self) -> DataLoader:
        """Test batches of ``eval_batch_size`` in dataset order."""
        return self._loader(self.test_dataset, "test", train=False)
