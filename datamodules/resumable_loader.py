"""A training DataLoader that a checkpoint can stop and resume in the middle of an epoch."""

from __future__ import annotations

import random
from collections.abc import Iterator, Sized
from typing import Any, Protocol, cast

import numpy as np
import torch
from torch.utils.data import DataLoader, RandomSampler


class EpochSeededRandomSampler(RandomSampler):
    """A RandomSampler whose permutation depends on `seed` and the epoch only.

    Lightning calls `set_epoch` at the start of every epoch, a resumed run's included, so the
    order of any epoch can be drawn again. (DistributedSampler, which Lightning swaps in under
    DDP, works the same way; being a RandomSampler tells Lightning to shuffle there.)
    """

    def __init__(self, data_source: Sized, seed: int) -> None:
        super().__init__(data_source)
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """The epoch whose permutation the next iteration yields."""
        self.epoch = epoch

    def __iter__(self) -> Iterator[int]:
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        yield from torch.randperm(len(self.data_source), generator=generator).tolist()


class _SeededSampler(Protocol):
    """A sampler whose order comes from a seed and the epoch (ours, or DistributedSampler)."""

    seed: int
    epoch: int


class ResumableDataLoader(DataLoader):
    """DataLoader with Lightning's `state_dict` / `load_state_dict` loader interface.

    Its state is the number of batches served in the current epoch. Restored from a mid-epoch
    checkpoint (an interrupted job, a `max_steps` stop), the next epoch iterator skips the
    batches already served, so the resumed run sees exactly the batches the uninterrupted run
    would have seen: the permutation comes from an epoch-seeded sampler, and the workers' seeds
    from `generator`, re-seeded from the sampler's seed and epoch at each epoch. The skipped
    batches are read and dropped; with augmentation in the main process (num_workers=0) the
    global random states are put back afterwards, so they too continue where the checkpoint
    left them. A checkpoint written at the end of an epoch resumes at the next one's start.

    The constructor is DataLoader's own, so Lightning can rebuild the loader with a
    DistributedSampler under DDP (which has a seed and an epoch too).
    """

    # DataLoader declares its concrete iterator class as the return type; this one is a
    # generator over it, which is all that Lightning (or any for loop) asks of a loader.
    def __iter__(self) -> Iterator[Any]:  # type: ignore[override]
        skip = getattr(self, "_batches_to_skip", 0)
        self._batches_to_skip = 0
        self._batches_served = skip
        if self.generator is not None and hasattr(self.sampler, "epoch"):
            sampler = cast(_SeededSampler, self.sampler)
            self.generator.manual_seed(sampler.seed + sampler.epoch)
        batches = super().__iter__()
        if skip:
            states = torch.get_rng_state(), np.random.get_state(), random.getstate()
            for _ in range(skip):
                next(batches)
            torch.set_rng_state(states[0])
            np.random.set_state(states[1])
            random.setstate(states[2])
        for batch in batches:
            self._batches_served += 1
            yield batch

    def state_dict(self) -> dict[str, Any]:
        """Batches served in the current epoch (0 once it is complete)."""
        served = getattr(self, "_batches_served", 0)
        return {"batches_served": 0 if served >= len(self) else served}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Make the next epoch iterator continue the checkpoint's epoch."""
        self._batches_to_skip = int(state_dict["batches_served"])
