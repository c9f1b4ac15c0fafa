"""Optimisation-based, hybrid and domain-regularised inversion (conf/inversion/*.yaml) of a
small StyleGAN2 InvGAN trained on the shared faces: images the generator made are recovered,
batching and restarts behave as documented, and the encoder-based variants use the encoder
without changing it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import hydra
import pytest
import torch
from hydra.errors import InstantiationException

from invgan.inversion.optimization import LatentOptimization
from invgan.utils.config_checks import ConfigValueError
from invgan.utils.images import to_signed_range
from invgan.utils.instantiate import instantiate_datamodule
from tests.conftest import LPIPS_WEIGHTS, compose_config


@pytest.fixture(scope="module")
def model(face_run: Any) -> Any:
    return face_run[0]


def method(model: Any, name: str, *overrides: str) -> LatentOptimization:
    """conf/inversion/<name>.yaml with overrides, instantiated as the Evaluator does."""
    cfg = compose_config("evaluate", [f"inversion={name}", *overrides], Path("unused"))
    return hydra.utils.instantiate(cfg.inversion, model=model)


# Pixel loss only and fixed noise: fast, and a generated image is then exactly reachable.
FAST = ("inversion.lpips_weight=0", "inversion.optimize_noise=false")


def generated_images(model: Any, count: int, seed: int = 0) -> torch.Tensor:
    """G(M(z)) with the generator's stored noise, as targets that a code reproduces exactly."""
    generator = model.frozen_generator()
    with torch.no_grad():
        z = torch.randn(count, generator.z_dim, generator=torch.Generator().manual_seed(seed))
        return generator.sample(z)


def mae(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().mean())


def test_w_plus_optimisation_recovers_generated_images(model: Any) -> None:
    targets = generated_images(model, 4)
    inversion = method(
        model, "optimization", "inversion.space=w_plus", "inversion.steps=400", *FAST
    )
    codes = inversion.encode(targets)
    assert codes.shape == (4, inversion.generator.n_latent, inversion.generator.w_dim)
    assert mae(inversion.decode(codes), targets) < 0.05


# Z is the hardest space (the mapping network lies between the variable and the image): it needs
# more, smaller steps and gets a looser bound.
@pytest.mark.parametrize(
    ("space", "steps", "lr", "ratio"),
    [("w", 100, 0.1, 0.2), ("p_plus", 100, 0.1, 0.3), ("z", 400, 0.03, 0.6)],
)
def test_optimisation_lowers_error_far_below_its_start(
    model: Any, space: str, steps: int, lr: float, ratio: float
) -> None:
    targets = generated_images(model, 4, seed=1)
    inversion = method(
        model,
        "optimization",
        f"inversion.space={space}",
        f"inversion.steps={steps}",
        f"inversion.lr={lr}",
        *FAST,
    )
    with torch.no_grad():
        start = inversion.space.to_codes(inversion.space.initial(4))
        start_error = mae(inversion.decode(start), targets)
    assert mae(inversion.reconstruct(targets), targets) < ratio * start_error


def test_images_of_a_batch_are_optimised_independently(model: Any) -> None:
    targets = generated_images(model, 3, seed=2)
    inversion = method(
        model,
        "optimization",
        "inversion.steps=30",
        "inversion.lpips.net=alex",
        f"inversion.lpips.weights_path={LPIPS_WEIGHTS['alex']}",
        "inversion.lpips.resize=32",
    )
    assert inversion.optimize_noise and inversion.lpips is not None
    together = inversion.invert(targets)
    alone = [inversion.invert(targets[i : i + 1]) for i in range(3)]
    # A batched convolution rounds differently from a single-image one, and Adam's normalised
    # steps carry that round-off into the codes at about 1e-4; images that influenced each
    # other would differ by orders of magnitude more.
    torch.testing.assert_close(
        together.codes, torch.cat([a.codes for a in alone]), atol=1e-3, rtol=1e-3
    )
    torch.testing.assert_close(
        together.loss, torch.cat([a.loss for a in alone]), atol=1e-4, rtol=1e-3
    )
    for layer, maps in enumerate(together.noise):
        torch.testing.assert_close(
            maps, torch.cat([a.noise[layer] for a in alone]), atol=1e-3, rtol=1e-3
        )


def test_restarts_keep_each_images_lowest_final_loss(model: Any) -> None:
    targets = generated_images(model, 4, seed=3)
    common = ("inversion.init=random", "inversion.steps=20", *FAST)
    best = method(model, "optimization", "inversion.restarts=3", "inversion.seed=7", *common)
    # Restart k of a seed-7 run starts where a single-restart run with seed 7 + k starts.
    single = [
        method(model, "optimization", f"inversion.seed={7 + k}", *common).invert(targets)
        for k in range(3)
    ]
    losses = torch.stack([s.loss for s in single])
    assert (losses.min(dim=0).values < losses.max(dim=0).values).all()  # restarts differ
    result = best.invert(targets)
    torch.testing.assert_close(result.loss, losses.min(dim=0).values)
    winners = losses.argmin(dim=0)
    expected = torch.stack([single[int(k)].codes[i] for i, k in enumerate(winners)])
    torch.testing.assert_close(result.codes, expected)


def test_hybrid_inversion_improves_on_the_latent_head_for_real_faces(face_run: Any) -> None:
    model, run_cfg = face_run
    datamodule = instantiate_datamodule(run_cfg.data)
    datamodule.setup()
    faces = to_signed_range(torch.stack([datamodule.test_dataset[i] for i in range(6)]))
    inversion = method(model, "hybrid", "inversion.steps=60", "inversion.lpips_weight=0")
    assert inversion.init == "encoder" and inversion.space.per_layer
    with torch.no_grad():
        head_error = mae(model.reconstruct(faces), faces)
        hybrid_error = mae(inversion.reconstruct(faces), faces)
    assert hybrid_error < 0.9 * head_error


def test_domain_regularisation_uses_the_encoder_without_changing_it(model: Any) -> None:
    targets = generated_images(model, 3, seed=4)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    regularised = method(model, "domain_regularized", "inversion.steps=30", *FAST)
    assert regularised.domain_weight > 0
    free = method(
        model, "domain_regularized", "inversion.steps=30", "inversion.domain_weight=0", *FAST
    )
    with torch.no_grad():
        codes_regularised = regularised.encode(targets)
        codes_free = free.encode(targets)
    for name, value in model.state_dict().items():
        torch.testing.assert_close(value, before[name], rtol=0, atol=0, msg=name)
    assert all(p.grad is None for p in model.parameters())
    generator = regularised.generator
    assert all(not p.requires_grad and p.grad is None for p in generator.parameters())

    def domain_gap(inversion: LatentOptimization, codes: torch.Tensor) -> float:
        with torch.no_grad():
            return float(inversion.domain_distance(codes, generator.synthesize(codes)).mean())

    # The term pulls codes towards those the encoder gives for their own images.
    assert domain_gap(regularised, codes_regularised) < domain_gap(free, codes_free)


def test_inversion_under_inference_mode_matches_no_grad(model: Any) -> None:
    targets = generated_images(model, 2, seed=5)
    overrides = ("inversion.steps=10", "inversion.lpips_weight=0")
    with torch.no_grad():
        expected = method(model, "hybrid", *overrides).reconstruct(targets)
    with torch.inference_mode():
        inference_targets = targets.clone()
        inversion = method(model, "hybrid", *overrides)
        reconstructed = inversion.reconstruct(inference_targets)
    torch.testing.assert_close(reconstructed, expected)


def test_betas_other_than_two_numbers_are_refused_naming_the_key(model: Any) -> None:
    with pytest.raises(InstantiationException) as caught:
        method(model, "optimization", "inversion.betas=[0.9]", *FAST)
    assert isinstance(caught.value.__cause__, ConfigValueError)
    assert "inversion.betas=[0.9] must be two numbers" in str(caught.value.__cause__)
