"""EMA update: the foreach path against the per-tensor formula, for float and tensor decays."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from invgan.nn.dcgan import DCGANGenerator
from invgan.utils.ema import frozen_copy, update_ema


def per_tensor_update(target: nn.Module, source: nn.Module, decay: float) -> None:
    """The per-tensor loop that update_ema replaces: lerp each parameter, copy each buffer."""
    with torch.no_grad():
        for p_target, p_source in zip(target.parameters(), source.parameters(), strict=True):
            p_target.lerp_(p_source, 1.0 - decay)
        for b_target, b_source in zip(target.buffers(), source.buffers(), strict=True):
            b_target.copy_(b_source)


def trained_pair() -> tuple[nn.Module, nn.Module]:
    """A DCGAN generator (float and int64 batch-norm buffers) and an EMA copy that differs."""
    torch.manual_seed(0)
    source = DCGANGenerator(w_dim=8, resolution=16, channels=1, base_width=4)
    target = frozen_copy(source)
    source(torch.randn(4, 8))  # moves the running statistics and num_batches_tracked
    with torch.no_grad():
        for p in source.parameters():
            p.add_(torch.randn_like(p))
    return target, source


def test_float_decay_matches_per_tensor_formula_bit_for_bit():
    target, source = trained_pair()
    reference = frozen_copy(target)
    assert any(b.dtype == torch.int64 for b in source.buffers())
    update_ema(target, source, 0.9)
    per_tensor_update(reference, source, 0.9)
    for name, value in reference.state_dict().items():
        assert torch.equal(target.state_dict()[name], value), name
    assert int(target.state_dict()["project.1.num_batches_tracked"]) == 1


def test_tensor_decay_matches_per_tensor_formula():
    target, source = trained_pair()
    reference = frozen_copy(target)
    update_ema(target, source, torch.tensor(0.9))
    per_tensor_update(reference, source, 0.9)
    for name, value in reference.state_dict().items():
        torch.testing.assert_close(target.state_dict()[name], value, rtol=1e-6, atol=1e-6)


def test_parameters_of_several_dtypes_are_each_averaged():
    source = nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 2).double())
    target = frozen_copy(source)
    with torch.no_grad():
        for p in source.parameters():
            p.fill_(1.0)
        for p in target.parameters():
            p.fill_(3.0)
    update_ema(target, source, 0.75)
    for p in target.parameters():
        assert torch.equal(p, torch.full_like(p, 2.5))


def test_mismatched_modules_are_rejected():
    with pytest.raises(ValueError, match="2 tensors where its source has 4"):
        update_ema(nn.Linear(2, 2), nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 2)), 0.5)
