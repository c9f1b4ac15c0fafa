"""Losses against brute-force and hand-computed references."""

from __future__ import annotations

import math

import pytest
import torch

from invgan.losses.adversarial import discriminator_loss, generator_loss, r1_penalty
from invgan.losses.mmd import mmd_unbiased
from invgan.losses.reconstruction import (
    feature_matching_distance,
    latent_distance,
    pixel_distance,
)

BANDWIDTHS = (0.5, 1.0, 2.0)


def brute_force_mmd(x: torch.Tensor, y: torch.Tensor, bandwidths=BANDWIDTHS) -> float:
    """Unbiased MMD^2 with explicit double loops over samples and bandwidths."""
    dim = x.shape[1]

    def k(a, b):
        sq = sum((float(a[i]) - float(b[i])) ** 2 for i in range(dim))
        return sum(math.exp(-sq / (2 * s * s * dim)) for s in bandwidths)

    m, n = len(x), len(y)
    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(n)) / (m * n)
    return xx + yy - 2 * xy


def test_mmd_matches_brute_force_double_loop():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(7, 3, generator=gen, dtype=torch.float64)
    y = torch.randn(5, 3, generator=gen, dtype=torch.float64) + 0.7
    assert float(mmd_unbiased(x, y, BANDWIDTHS)) == pytest.approx(brute_force_mmd(x, y), rel=1e-9)


def test_mmd_near_zero_for_same_distribution_and_positive_for_shift():
    gen = torch.Generator().manual_seed(1)
    a, b = torch.randn(2, 400, 16, generator=gen)
    same = float(mmd_unbiased(a, b))
    shifted = float(mmd_unbiased(a, b + 1.0))
    assert abs(same) < 0.02
    assert shifted > 0.2
    assert shifted > 20 * abs(same)


def test_mmd_needs_two_samples():
    with pytest.raises(ValueError, match="at least 2"):
        mmd_unbiased(torch.zeros(1, 3), torch.zeros(4, 3))


def test_mmd_gives_gradient_to_both_sets():
    x = torch.randn(8, 4, requires_grad=True)
    y = (torch.randn(8, 4) + 2).requires_grad_(True)
    mmd_unbiased(x, y).backward()
    assert x.grad.abs().sum() > 0 and y.grad.abs().sum() > 0


def test_non_saturating_losses_hand_computed():
    real = torch.tensor([2.0, -1.0])
    fake = torch.tensor([0.0, 3.0])
    softplus = lambda v: math.log1p(math.exp(v))  # noqa: E731
    expected_d = (softplus(-2) + softplus(1)) / 2 + (softplus(0) + softplus(3)) / 2
    expected_g = (softplus(0) + softplus(-3)) / 2
    assert float(discriminator_loss(real, fake)) == pytest.approx(expected_d)
    assert float(generator_loss(fake)) == pytest.approx(expected_g)


def test_hinge_losses_hand_computed():
    real = torch.tensor([2.0, 0.5])
    fake = torch.tensor([-2.0, 0.5])
    # relu(1 - real) = [0, 0.5]; relu(1 + fake) = [0, 1.5]
    assert float(discriminator_loss(real, fake, "hinge")) == pytest.approx(0.25 + 0.75)
    assert float(generator_loss(fake, "hinge")) == pytest.approx(0.75)


def test_adversarial_losses_of_half_precision_logits_are_float32():
    # bf16 logits (as under bf16 autocast) give the float32 loss of their values, not a
    # bf16-rounded one: near chance, 2 ln 2 = 1.3863 would round to 1.3828 in bf16.
    real = torch.tensor([0.01, -0.02, 0.015], dtype=torch.bfloat16)
    fake = torch.tensor([-0.01, 0.02, 0.005], dtype=torch.bfloat16)
    softplus = lambda v: math.log1p(math.exp(v))  # noqa: E731
    pairs = [(float(r), float(f)) for r, f in zip(real, fake, strict=True)]
    expected_d = sum(softplus(-r) + softplus(f) for r, f in pairs) / 3
    expected_g = sum(softplus(-f) for _, f in pairs) / 3
    d_loss, g_loss = discriminator_loss(real, fake), generator_loss(fake)
    assert d_loss.dtype == g_loss.dtype == torch.float32
    assert float(d_loss) == pytest.approx(expected_d, rel=1e-6)
    assert float(g_loss) == pytest.approx(expected_g, rel=1e-6)
    hinge_d = sum(max(0.0, 1 - r) + max(0.0, 1 + f) for r, f in pairs)
    assert float(discriminator_loss(real, fake, "hinge")) == pytest.approx(hinge_d / 3, rel=1e-6)


def test_unknown_adversarial_kind_is_rejected():
    with pytest.raises(ValueError, match="non_saturating"):
        generator_loss(torch.zeros(2), "wasserstein")


def test_r1_penalty_of_linear_discriminator():
    # D(x) = sum(a * x) has gradient a for every sample, so R1 = ||a||^2.
    a = torch.tensor([[[[1.0, -2.0], [0.5, 3.0]]]])
    x = torch.randn(3, 1, 2, 2, requires_grad=True)
    logits = (x * a).flatten(1).sum(1)
    assert float(r1_penalty(logits, x)) == pytest.approx(1 + 4 + 0.25 + 9)


def test_latent_distance_hand_computed():
    w = torch.tensor([[0.0, 0.0], [1.0, 1.0]])
    w_hat = torch.tensor([[1.0, 2.0], [1.0, 0.0]])
    # squared errors 1, 4, 0, 1 -> mean 1.5
    assert float(latent_distance(w, w_hat)) == pytest.approx(1.5)
    # Only the second sample selected: squared errors 0, 1 -> mean 0.5.
    assert float(latent_distance(w, w_hat, torch.tensor([False, True]))) == pytest.approx(0.5)
    assert float(latent_distance(w, w_hat, torch.tensor([False, False]))) == 0.0


def test_pixel_distance_hand_computed():
    x = torch.tensor([[[[1.0, -1.0]]]])
    x_hat = torch.tensor([[[[0.5, 1.0]]]])
    assert float(pixel_distance(x, x_hat, "l1")) == pytest.approx((0.5 + 2.0) / 2)
    assert float(pixel_distance(x, x_hat, "l2")) == pytest.approx((0.25 + 4.0) / 2)
    with pytest.raises(ValueError, match="l1"):
        pixel_distance(x, x_hat, "l3")


def test_feature_matching_sums_layers_of_paired_distances():
    real = [torch.ones(2, 3), torch.zeros(2, 1, 2, 2)]
    rec = [torch.zeros(2, 3), torch.full((2, 1, 2, 2), 2.0)]
    assert float(feature_matching_distance(real, rec, "l1")) == pytest.approx(1.0 + 2.0)
    assert float(feature_matching_distance(real, rec, "l2")) == pytest.approx(1.0 + 4.0)


def test_feature_matching_is_paired_not_first_moment():
    # Swapping the reconstructions between two images keeps the batch mean but breaks pairing.
    real = [torch.tensor([[1.0], [-1.0]])]
    swapped = [torch.tensor([[-1.0], [1.0]])]
    assert float(feature_matching_distance(real, real)) == 0.0
    assert float(feature_matching_distance(real, swapped)) == pytest.approx(2.0)
