"""The training loader's mid-epoch state: a restored loader serves exactly the rest of the
epoch that the interrupted one would have served."""

from __future__ import annotations

import itertools

import pytest
import torch
from torch.utils.data import Dataset, DistributedSampler

from datamodules.resumable_loader import EpochSeededRandomSampler, ResumableDataLoader


class NoisyIndices(Dataset):
    """Item i is (i, a draw from the global generator): augmentation in the main process."""

    def __len__(self) -> int:
        return 40

    def __getitem__(self, index: int) -> tuple[int, float]:
        return index, float(torch.rand(()))


def make_loader(sampler_kind: str) -> ResumableDataLoader:
    """Batches of 4 over the 40 items, shuffled by epoch-seeded or DDP rank-1 sampling."""
    dataset = NoisyIndices()
    if sampler_kind == "epoch_seeded":
        sampler = EpochSeededRandomSampler(dataset, seed=7)
    else:
        sampler = DistributedSampler(dataset, num_replicas=2, rank=1, seed=7)
    return ResumableDataLoader(
        dataset, batch_size=4, sampler=sampler, drop_last=True, generator=torch.Generator()
    )


@pytest.mark.parametrize("sampler_kind", ["epoch_seeded", "distributed"])
def test_restored_loader_serves_the_rest_of_the_epoch(sampler_kind):
    straight = make_loader(sampler_kind)
    straight.sampler.set_epoch(3)
    torch.manual_seed(0)
    batches = iter(straight)
    first = list(itertools.islice(batches, 3))
    state = straight.state_dict()
    rng = torch.get_rng_state()
    rest = list(batches)
    assert state == {"batches_served": 3} and len(first) + len(rest) == len(straight)

    resumed = make_loader(sampler_kind)
    resumed.load_state_dict(state)
    resumed.sampler.set_epoch(3)  # Lightning sets the epoch before iterating
    torch.set_rng_state(rng)  # as RandomStateCallback restores it
    again = list(resumed)
    for expected, got in zip(rest, again, strict=True):
        assert torch.equal(expected[0], got[0])  # the same items
        assert torch.equal(expected[1], got[1])  # the same random draws
    assert resumed.state_dict() == {"batches_served": 0}  # the epoch is complete


def test_epoch_order_depends_on_seed_and_epoch_only():
    def order(epoch: int) -> list[int]:
        sampler = EpochSeededRandomSampler(range(20), seed=1)
        sampler.set_epoch(epoch)
        return list(sampler)

    assert order(0) == order(0) and order(0) != order(1)
    assert sorted(order(5)) == list(range(20))
