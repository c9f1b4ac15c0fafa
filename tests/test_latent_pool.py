"""The pool of past codes that e4e's latent discriminator reads (`invgan.modules.latent_pool`),
checked against what the pool promises: it fills first, then swaps about half the codes with
stored ones, never inventing or losing a code, and reloads to the same future draws."""

from __future__ import annotations

import pytest
import torch

from invgan.modules.latent_pool import LatentPool


def _rows(*tensors: torch.Tensor) -> list[tuple[float, ...]]:
    return sorted(tuple(row.tolist()) for tensor in tensors for row in tensor)


def test_a_pool_fills_before_it_swaps():
    pool = LatentPool(size=5, w_dim=3)
    first = torch.randn(3, 3)
    assert torch.equal(pool.query(first), first)
    assert pool.filled == 3 and torch.equal(pool.codes[:3], first)
    second = torch.randn(4, 3)
    answer = pool.query(second)
    # Two more fill the pool and come back as they are; the other two may be swapped.
    assert torch.equal(answer[:2], second[:2])
    assert pool.filled == 5


def test_after_filling_codes_are_swapped_never_invented_or_lost():
    torch.manual_seed(0)
    pool = LatentPool(size=6, w_dim=2)
    pool.query(torch.randn(6, 2))
    swapped = 0
    for _ in range(200):
        before = pool.codes.clone()
        new = torch.randn(4, 2)
        answer = pool.query(new)
        # Conservation: what went in (the pool and the query) is what is held or returned.
        assert _rows(before, new) == _rows(pool.codes, answer)
        for code, returned in zip(new, answer, strict=True):
            if not torch.equal(code, returned):
                assert any(torch.equal(returned, stored) for stored in before)
                swapped += 1
    # Each code is swapped with probability 1/2: 800 draws, 5 standard deviations.
    assert abs(swapped / 800 - 0.5) < 5 * (0.25 / 800) ** 0.5


def test_a_query_larger_than_the_pool_is_served_in_distinct_slots():
    torch.manual_seed(1)
    pool = LatentPool(size=3, w_dim=2)
    pool.query(torch.randn(3, 2))
    before = pool.codes.clone()
    new = torch.randn(7, 2)
    answer = pool.query(new)
    assert _rows(before, new) == _rows(pool.codes, answer)


def test_size_zero_returns_the_query():
    codes = torch.randn(4, 2)
    assert LatentPool(size=0, w_dim=2).query(codes) is codes
    with pytest.raises(ValueError, match=">= 0"):
        LatentPool(size=-1, w_dim=2)


def test_a_restored_pool_draws_what_the_original_would_have():
    torch.manual_seed(2)
    original = LatentPool(size=4, w_dim=3)
    original.query(torch.randn(4, 3))
    restored = LatentPool(size=4, w_dim=3)
    restored.restore(original.state())
    queries = torch.randn(5, 2, 3)
    torch.manual_seed(3)
    expected = [original.query(query) for query in queries]
    torch.manual_seed(3)
    assert all(torch.equal(restored.query(q), e) for q, e in zip(queries, expected, strict=True))
    with pytest.raises(ValueError, match="w_pool_size changed"):
        LatentPool(size=2, w_dim=3).restore(original.state())
