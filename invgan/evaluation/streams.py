"""The image streams metrics read, each named once here with the words its protocols use.

Every stream follows a fixed plan of batches (batch b holds positions b*B .. b*B+B-1, random
batch b is drawn with seed `seed + b`), so a run spread over ranks
(`invgan.evaluation.world`) sees exactly the images of a one-process run.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

import torch
from torch import Tensor
from torch.utils.data import ConcatDataset, default_collate

from invgan.evaluation.world import EvaluationWorld
from invgan.inversion.protocols import GenerativeModel, InversionMethod
from invgan.metrics.runtime import synchronize
from invgan.utils.images import batch_images, to_signed_range

# Positions (global indices in the stream) and images in [-1, 1] of one batch.
Batch = tuple[Tensor, Tensor]
Value = TypeVar("Value")

# Stream name (an `ImageStreams` method) -> what its images are, as protocol texts say it.
STREAMS: dict[str, str] = {
    "test_images": "test images x",
    "training_images": "training images (train and validation splits)",
    "tiled_test_images": "whole test images to reconstruct patch by patch",
    "test_reconstructions": "test-set reconstructions G(E(x))",
    "random_samples": "random samples G(M(z))",
    "random_reconstructions": "reconstructed random samples G(E(G(M(z))))",
    "test_interpolations": "test-pair latent midpoints G((E(x_a) + E(x_b)) / 2)",
}


class ImageDataset(Protocol):
    """A map-style dataset of images (or of (image, label) pairs)."""

    def __len__(self) -> int:
        """Number of items."""
        ...

    def __getitem__(self, index: int) -> Any:
        """One item."""
        ...


def batch_plan(order: Tensor, batch_size: int) -> list[Batch]:
    """(positions, dataset indices) of consecutive batches of `order`."""
    positions = torch.arange(order.numel())
    return list(zip(positions.split(batch_size), order.split(batch_size), strict=True))


@dataclass
class StreamBatch:
    """One batch of a stream as metrics see it: positions, images and, for reconstructions,
    the test images they invert and the seconds inversion plus regeneration took."""

    positions: Tensor
    images: Tensor
    inputs: Tensor | None = None
    seconds: float = 0.0
    derived: dict[str, Any] = field(default_factory=dict)

    def derive(self, key: str, compute: Callable[[], Value]) -> Value:
        """`compute()` once per batch (Inception features, per-image errors), however many
        metrics of the pass ask for it."""
        if key not in self.derived:
            self.derived[key] = compute()
        return self.derived[key]


class ImageStreams:
    """The images of every stream in `STREAMS`, for one model, inversion method and dataset."""

    def __init__(
        self,
        model: GenerativeModel,
        inversion: InversionMethod,
        datamodule: Any,
        world: EvaluationWorld,
        seed: int,
        batch_size: int,
        device: torch.device,
    ) -> None:
        self.model = model
        self.inversion = inversion
        self.datamodule = datamodule
        self.world = world
        self.seed = seed
        self.batch_size = batch_size
        self.device = device

    @property
    def resolution(self) -> int:
        """Side of the images the model sees (patches, for patch datasets)."""
        return int(self.datamodule.resolution)

    def available(self, stream: str) -> bool:
        """Whether the data offers the stream (only patch datasets have whole images to tile)."""
        if stream == "tiled_test_images":
            return getattr(self.datamodule, "tiled_test_dataset", None) is not None
        return stream in STREAMS

    def batches(
        self, stream: str, count: int | None, batch_size: int | None = None
    ) -> Iterator[StreamBatch]:
        """This rank's batches of the first `count` images (None: all) of a named stream."""
        if stream == "test_reconstructions":
            yield from self.timed_test_reconstructions(count)
            return
        sizes = {} if batch_size is None else {"batch_size": batch_size}
        for positions, images in getattr(self, stream)(count, **sizes):
            yield StreamBatch(positions, images)

    # ------------------------------------------------------------ data
    def _dataset_batches(
        self,
        dataset: ImageDataset,
        count: int,
        shuffle: bool = False,
        batch_size: int | None = None,
    ) -> Iterator[Batch]:
        """This rank's batches of the first `count` images (of a seeded permutation when
        shuffling), in [-1, 1] on the evaluation device.

        Batch b is read under seed `seed + b`: the training split's random augmentation and
        random patches (which FID's real statistics see, as the model did) come out the same
        in every run and on every rank."""
        if shuffle:
            rng = torch.Generator().manual_seed(int(self.seed))
            order = torch.randperm(len(dataset), generator=rng)[:count]
        else:
            order = torch.arange(min(count, len(dataset)))
        batch_size = batch_size or self.batch_size
        for positions, indices in self.world.share(batch_plan(order, batch_size)):
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(int(self.seed) + int(positions[0]) // batch_size)
                batch = default_collate([dataset[int(index)] for index in indices])
            yield positions, to_signed_range(batch_images(batch)).to(self.device)

    def training_set(self) -> ImageDataset:
        """The train and validation splits, the real images FID and KID compare against."""
        return ConcatDataset([self.datamodule.train_dataset, self.datamodule.val_dataset])

    def test_images(
        self, count: int | None = None, shuffle: bool = False, batch_size: int | None = None
    ) -> Iterator[Batch]:
        """Test images (all when `count` is None)."""
        dataset = self.datamodule.test_dataset
        yield from self._dataset_batches(dataset, count or len(dataset), shuffle, batch_size)

    def training_images(self, count: int, batch_size: int | None = None) -> Iterator[Batch]:
        """The first `count` training images (train, then validation split)."""
        yield from self._dataset_batches(self.training_set(), count, batch_size=batch_size)

    def tiled_test_images(
        self, count: int | None = None, batch_size: int | None = None
    ) -> Iterator[Batch]:
        """Whole test images of a patch dataset (all when `count` is None)."""
        dataset = self.datamodule.tiled_test_dataset
        yield from self._dataset_batches(dataset, count or len(dataset), batch_size=batch_size)

    # ------------------------------------------------------------ through the model
    def random_samples(self, count: int) -> Iterator[Batch]:
        """G(M(z)) for `count` prior samples; batch b is drawn with seed `seed + b`."""
        plan = self.world.share(batch_plan(torch.arange(count), self.batch_size))
        for positions, _ in plan:
            batch_index = int(positions[0]) // self.batch_size
            rng = torch.Generator(device=self.device)
            rng.manual_seed(int(self.seed) + batch_index)
            yield positions, self.model.sample(positions.numel(), generator=rng)

    def random_reconstructions(self, count: int) -> Iterator[Batch]:
        """G(E(G(M(z)))): random samples inverted and regenerated."""
        for positions, samples in self.random_samples(count):
            yield positions, self.inversion.reconstruct(samples)

    def timed_test_reconstructions(self, count: int | None) -> Iterator[StreamBatch]:
        """G(E(x)) for the first `count` test images (all when None), with the images and the
        wall-clock seconds of inversion plus regeneration."""
        for positions, images in self.test_images(count):
            synchronize(self.device)
            start = time.perf_counter()
            reconstructions = self.inversion.reconstruct(images)
            synchronize(self.device)
            seconds = time.perf_counter() - start
            yield StreamBatch(positions, reconstructions, inputs=images, seconds=seconds)

    def test_reconstructions(self, count: int | None) -> Iterator[Batch]:
        """G(E(x)) for the first `count` test images."""
        for batch in self.timed_test_reconstructions(count):
            yield batch.positions, batch.images

    def test_interpolations(self, count: int) -> Iterator[Batch]:
        """G((E(x_a) + E(x_b)) / 2) for random pairs of test images (paper's IntTsFID)."""
        for positions, images_a in self.test_images(count, shuffle=True):
            # The images come in a seeded random order, so pairing each with its neighbour in
            # the batch gives random pairs of distinct images.
            images_b = images_a.roll(1, dims=0)
            midpoint = (self.inversion.encode(images_a) + self.inversion.encode(images_b)) / 2
            yield positions, self.inversion.decode(midpoint)
