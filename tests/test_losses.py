"""Losses against brute-force and hand-computed references."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

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


def test_mmd_with_repeated_points_matches_brute_force():
    # Equal codes, within a set and across the sets, have distance exactly 0: the diagonal
    # (left out) and the off-diagonal pairs (kept, kernel 1 per bandwidth) must not mix up.
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(4, 3, generator=gen, dtype=torch.float64)
    x[3] = x[0]
    y = torch.cat([x[:2], torch.randn(3, 3, generator=gen, dtype=torch.float64)])
    assert float(mmd_unbiased(x, y, BANDWIDTHS)) == pytest.approx(brute_force_mmd(x, y), rel=1e-9)


def test_mmd_gradient_matches_finite_differences():
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(4, 3, generator=gen, dtype=torch.float64, requires_grad=True)
    y = torch.randn(3, 3, generator=gen, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b: mmd_unbiased(a, b, BANDWIDTHS), (x, y))


def per_bandwidth_mmd(x: torch.Tensor, y: torch.Tensor, bandwidths) -> torch.Tensor:
    """The unbiased estimate with one cdist per block and one exp per bandwidth."""
    dim = x.shape[1]

    def k(a, b):
        sq = torch.cdist(a, b).pow(2)
        return sum(torch.exp(-sq / (2 * s * s * dim)) for s in bandwidths)

    m, n = len(x), len(y)
    k_xx, k_yy = k(x, x), k(y, y)
    xx = (k_xx.sum() - k_xx.diagonal().sum()) / (m * (m - 1))
    yy = (k_yy.sum() - k_yy.diagonal().sum()) / (n * (n - 1))
    return xx + yy - 2 * k(x, y).mean()


@pytest.mark.parametrize("bandwidths", [(0.2, 0.5, 1.0, 2.0, 5.0), (0.02, 0.05, 0.1, 0.2, 0.5)])
def test_mmd_of_float32_batch_matches_float64_reference_with_gradients(bandwidths):
    gen = torch.Generator().manual_seed(4)
    x = torch.randn(64, 64, generator=gen, requires_grad=True)
    y = (torch.randn(64, 64, generator=gen) + 0.2).requires_grad_(True)
    x64, y64 = (t.detach().double().requires_grad_(True) for t in (x, y))
    value, reference = mmd_unbiased(x, y, bandwidths), per_bandwidth_mmd(x64, y64, bandwidths)
    assert value.dtype == torch.float32
    # Sums of 64 * 64 * 5 kernel values near 1 cancel down to MMD^2: float32 keeps ~1e-6.
    assert value.item() == pytest.approx(reference.item(), abs=1e-6)
    grads = torch.autograd.grad(value, (x, y))
    for grad, expected in zip(grads, torch.autograd.grad(reference, (x64, y64)), strict=True):
        torch.testing.assert_close(grad.double(), expected, rtol=1e-4, atol=1e-9)


def test_mmd_of_bfloat16_codes_under_autocast_is_float32():
    # Codes from bf16 layers stay bf16, but the Gram matrix must not: in bf16 the cancellation
    # in |a|^2 + |b|^2 - 2ab would swamp the distances.
    gen = torch.Generator().manual_seed(5)
    x, y = torch.randn(2, 32, 16, generator=gen).bfloat16()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        value = mmd_unbiased(x, y + 0.5)
    assert value.dtype == torch.float32
    reference = per_bandwidth_mmd(x.double(), (y + 0.5).double(), (0.2, 0.5, 1.0, 2.0, 5.0))
    assert float(value) == pytest.approx(float(reference), abs=1e-6)


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


FEATURE_SHAPES = [(64, 32, 14, 14), (64, 64, 7, 7), (64, 128, 4, 4)]


def per_layer_feature_matching(real, rec, kind: str) -> torch.Tensor:
    """One F.l1_loss or F.mse_loss per layer, summed."""
    loss = F.l1_loss if kind == "l1" else F.mse_loss
    return sum(loss(r, x) for x, r in zip(real, rec, strict=True))


@pytest.mark.parametrize("kind", ["l1", "l2"])
def test_feature_matching_matches_per_layer_losses_with_gradients(kind):
    gen = torch.Generator().manual_seed(6)
    real = [torch.randn(shape, generator=gen) for shape in FEATURE_SHAPES]
    rec = [(x + torch.randn(x.shape, generator=gen)).requires_grad_(True) for x in real]
    value, reference = (
        f(real, rec, kind) for f in (feature_matching_distance, per_layer_feature_matching)
    )
    assert value.item() == pytest.approx(reference.item(), rel=1e-6)
    grads, expected = (torch.autograd.grad(v, rec) for v in (value, reference))
    for grad, want in zip(grads, expected, strict=True):
        torch.testing.assert_close(grad, want, rtol=1e-6, atol=1e-12)


@pytest.mark.parametrize("kind", ["l1", "l2"])
def test_feature_matching_gradient_matches_finite_differences(kind):
    gen = torch.Generator().manual_seed(7)
    real = [
        torch.randn(2, 3, generator=gen, dtype=torch.float64),
        torch.randn(2, 1, 2, 2, generator=gen, dtype=torch.float64),
    ]
    rec = tuple(
        torch.randn(x.shape, generator=gen, dtype=torch.float64, requires_grad=True) for x in real
    )
    assert torch.autograd.gradcheck(lambda *r: feature_matching_distance(real, r, kind), rec)


@pytest.mark.parametrize("kind", ["l1", "l2"])
def test_feature_matching_of_bfloat16_features_is_float32(kind):
    # Under bf16 autocast the features are bf16; the loss is summed in float32 (only the
    # per-element differences round to bf16), so it logs its float32 value.
    gen = torch.Generator().manual_seed(8)
    real = [torch.randn(shape, generator=gen).bfloat16() for shape in FEATURE_SHAPES]
    rec = [(x + 0.1 * torch.randn(x.shape, generator=gen)).bfloat16() for x in real]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        value = feature_matching_distance(real, rec, kind)
    reference = per_layer_feature_matching(
        [x.double() for x in real], [r.double() for r in rec], kind
    )
    assert value.dtype == torch.float32
    assert float(value) == pytest.approx(float(reference), rel=1e-4)


def test_feature_matching_rejects_unknown_kind_and_unpaired_layers():
    features = [torch.zeros(2, 3)]
    with pytest.raises(ValueError, match="unknown feature distance"):
        feature_matching_distance(features, features, "l3")
    with pytest.raises(ValueError, match="1 real and 2 reconstruction"):
        feature_matching_distance(features, features * 2)
    with pytest.raises(ValueError, match="at least one"):
        feature_matching_distance([], [])


def test_feature_matching_is_paired_not_first_moment():
    # Swapping the reconstructions between two images keeps the batch mean but breaks pairing.
    real = [torch.tensor([[1.0], [-1.0]])]
    swapped = [torch.tensor([[-1.0], [1.0]])]
    assert float(feature_matching_distance(real, real)) == 0.0
    assert float(feature_matching_distance(real, swapped)) == pytest.approx(2.0)
