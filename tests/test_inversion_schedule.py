"""Building blocks of optimisation-based inversion, against hand-computed values: the
learning-rate ramp, the noise-map regulariser and renormalisation, and the P space."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from invgan.inversion.noise_regularization import noise_regularization, normalize_noise_
from invgan.inversion.p_space import PNorm, p_to_w, w_to_p
from invgan.inversion.schedule import ramped_learning_rate
from invgan.nn.frozen_generator import FrozenGenerator
from invgan.nn.stylegan2.generator import StyleGAN2Generator


@pytest.mark.parametrize(
    ("step", "expected"),
    [
        (0, 0.0),  # warm-up starts at 0
        (2, 0.1 * 0.4),  # t = 0.02 of a 0.05 warm-up
        (5, 0.1),  # warm-up done
        (75, 0.1),  # ramp-down starts at t = 0.75
        (90, 0.1 * (0.5 - 0.5 * math.cos(0.4 * math.pi))),  # 0.1 / 0.25 of the way left
        (100, 0.0),
    ],
)
def test_learning_rate_ramp_matches_hand_computed_values(step: int, expected: float) -> None:
    assert ramped_learning_rate(step, 100, 0.1, 0.05, 0.25) == pytest.approx(expected, abs=1e-12)


def test_learning_rate_without_ramps_is_constant() -> None:
    assert [ramped_learning_rate(s, 10, 0.3, 0.0, 0.0) for s in range(10)] == [0.3] * 10


def test_noise_regularizer_is_exact_for_stripes_small_for_white_and_large_for_smooth() -> None:
    # Columns alternating +1 / -1: each level-16 shift correlation is -1 (horizontal) or +1
    # (vertical), and the 2x2 block means of the next level are 0, so the penalty is exactly 2.
    stripes = torch.tensor([1.0, -1.0]).repeat(8).expand(1, 1, 16, 16)
    assert noise_regularization([stripes]).item() == pytest.approx(2.0)

    torch.manual_seed(0)
    white = torch.randn(4, 1, 32, 32)
    smooth = F.interpolate(torch.randn(4, 1, 4, 4), size=32, mode="bilinear")
    normalize_noise_([smooth])
    assert noise_regularization([white]).shape == (4,)
    assert noise_regularization([white]).max() < 0.15
    assert noise_regularization([smooth]).min() > 2.0


def test_noise_renormalization_gives_zero_mean_unit_variance_per_image() -> None:
    noise = [torch.randn(3, 1, 8, 8) * 5 + 2, torch.rand(3, 1, 16, 16)]
    normalize_noise_(noise)
    for maps in noise:
        flat = maps.flatten(1)
        torch.testing.assert_close(flat.mean(dim=1), torch.zeros(3), atol=1e-6, rtol=0)
        torch.testing.assert_close(flat.std(dim=1, unbiased=False), torch.ones(3))


@pytest.fixture(scope="module")
def tiny_generator() -> FrozenGenerator:
    torch.manual_seed(0)
    net = StyleGAN2Generator(
        w_dim=16, resolution=8, n_mlp=2, channel_base=64, channel_max=8, channel_multiplier=1
    )
    return FrozenGenerator(net)


def test_p_space_round_trip_is_identity_for_mapping_outputs(tiny_generator) -> None:
    w = tiny_generator.map(torch.randn(256, 16))
    x = w_to_p(w)
    # Undoing the 0.2 slope scales negative coordinates by 5: P really differs from W.
    torch.testing.assert_close(x[w < 0], 5 * w[w < 0])
    torch.testing.assert_close(p_to_w(x), w, atol=1e-6, rtol=1e-6)


def test_p_norm_scores_prior_samples_about_one_and_the_mean_zero(tiny_generator) -> None:
    p_norm = PNorm.estimate(tiny_generator, num_samples=4000, seed=0)
    fresh = w_to_p(
        tiny_generator.map(torch.randn(4000, 16, generator=torch.Generator().manual_seed(1)))
    )
    # Whitened coordinates of held-out samples have unit variance: mean penalty ~ 1.
    assert p_norm(fresh).mean().item() == pytest.approx(1.0, abs=0.05)
    assert p_norm(p_norm.mean[None]).item() == pytest.approx(0.0, abs=1e-6)
    per_layer = fresh[:6].unsqueeze(1).expand(-1, 3, -1)
    torch.testing.assert_close(p_norm(per_layer), p_norm(fresh[:6]))
