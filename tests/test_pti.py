"""Pivotal Tuning Inversion (conf/inversion/pti.yaml) of a small StyleGAN2 InvGAN trained on the
shared faces: tuning lowers the pivot's error on real faces, the locality regulariser keeps
generations far from the pivots nearly unchanged, only a copy of the generator is tuned, the
saved weights delta reloads, and the apply command runs with inversion=pti."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import hydra
import pytest
import torch
from hydra.errors import InstantiationException
from PIL import Image

from invgan.cli.apply import apply
from invgan.evaluation.pipeline import evaluate
from invgan.inversion.pti import PivotalTuning, load_tuned_delta
from invgan.utils.config_checks import ConfigValueError
from invgan.utils.images import to_signed_range
from invgan.utils.instantiate import instantiate_datamodule
from tests.conftest import SHARED_DATA, compose_config

# A short pixel-only W pivot and a short tuning without the LPIPS stop; alpha 10 is about the
# distance between a pivot and a random W+ code of this 16-d generator (the paper's 30 is for
# 512-d W+).
FAST = (
    "inversion.pivot.steps=30",
    "inversion.pivot.lpips_weight=0",
    "inversion.pivot.optimize_noise=false",
    "inversion.tune_steps=30",
    "inversion.lr=1e-3",
    "inversion.lpips.resize=32",
    "inversion.lpips_threshold=null",
    "inversion.locality_alpha=10",
)


@pytest.fixture(scope="module")
def faces(face_run: Any) -> torch.Tensor:
    """Six real test faces at 16 px in [-1, 1]."""
    datamodule = instantiate_datamodule(face_run[1].data)
    datamodule.setup()
    return to_signed_range(torch.stack([datamodule.test_dataset[i] for i in range(6)]))


def method(model: Any, *overrides: str) -> PivotalTuning:
    """conf/inversion/pti.yaml with overrides, instantiated as the Evaluator does."""
    cfg = compose_config("evaluate", ["inversion=pti", *FAST, *overrides], Path("unused"))
    return hydra.utils.instantiate(cfg.inversion, model=model)


def mae(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().mean())


def drift(pti: PivotalTuning, seed: int = 99) -> float:
    """Mean absolute change of G(M(z)) for random z, tuned against original generator."""
    with torch.no_grad():
        z = torch.randn(16, pti.original.z_dim, generator=torch.Generator().manual_seed(seed))
        w = pti.original.map(z)
        return mae(pti.generator.synthesize(w), pti.original.synthesize(w))


def test_tuning_lowers_the_pivots_error_on_real_faces_and_the_delta_reloads(
    face_run: Any, faces: torch.Tensor, tmp_path: Path
) -> None:
    pti = method(face_run[0], f"inversion.save_tuned={tmp_path}")
    with torch.no_grad():
        pivots = pti.encode(faces)
        pivot_error = mae(pti.pivot.decode(pivots), faces)
        tuned_error = mae(pti.decode(pivots), faces)
    assert pivots.shape == (6, pti.original.w_dim)  # the default pivot: one w per image
    assert pti.last.steps == 30
    assert tuned_error < 0.95 * pivot_error
    # The saved delta added to a fresh copy of the generator gives the tuned generator back.
    saved = tmp_path / "batch_00000.safetensors"
    generator = face_run[0].frozen_generator()
    torch.testing.assert_close(load_tuned_delta(generator, saved), pivots)
    with torch.no_grad():
        torch.testing.assert_close(generator.synthesize(pivots), pti.decode(pivots))
    assert pti.frozen_generator() is pti.generator  # applications decode with the tuned copy


def test_locality_term_keeps_generations_far_from_the_pivots(
    face_run: Any, faces: torch.Tensor
) -> None:
    free = method(face_run[0], "inversion.locality_weight=0")
    local = method(face_run[0], "inversion.locality_weight=1")
    with torch.no_grad():
        free_error = mae(free.reconstruct(faces), faces)
        local_error = mae(local.reconstruct(faces), faces)
        pivot_error = mae(local.pivot.reconstruct(faces), faces)
    assert local_error < pivot_error and free_error < pivot_error
    # Both tunings move G; the regulariser holds random generations much closer to G's own.
    assert drift(local) < 0.8 * drift(free)
    assert drift(free) > 0.01


def test_only_a_copy_of_the_generator_is_tuned(face_run: Any, faces: torch.Tensor) -> None:
    model = face_run[0]
    before = {k: v.clone() for k, v in model.state_dict().items()}
    pti = method(model, "inversion.tune_steps=5")
    original = {k: v.clone() for k, v in pti.original.state_dict().items()}
    with torch.inference_mode():  # as evaluation runs it
        pti.reconstruct(faces.clone())
    for name, value in model.state_dict().items():
        torch.testing.assert_close(value, before[name], rtol=0, atol=0, msg=name)
    for name, value in pti.original.state_dict().items():
        torch.testing.assert_close(value, original[name], rtol=0, atol=0, msg=name)
    assert all(p.grad is None for p in model.parameters())
    assert all(not p.requires_grad and p.grad is None for p in pti.generator.parameters())
    assert any(delta.abs().max() > 0 for delta in pti.weights_delta().values())
    # The mapping network is not tuned: codes keep their meaning.
    assert not any("mapping" in name for name in pti.weights_delta())


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("inversion.tune_steps=0", "inversion.tune_steps"),
        ("inversion.locality_alpha=-1", "inversion.locality_alpha"),
        ("inversion.lpips_threshold=0.1", "inversion.lpips_threshold"),
    ],
)
def test_bad_pti_options_are_refused_naming_the_key(
    face_run: Any, override: str, key: str
) -> None:
    extra = ("inversion.lpips_weight=0",) if key == "inversion.lpips_threshold" else ()
    with pytest.raises(InstantiationException) as caught:
        method(face_run[0], *extra, override)
    assert isinstance(caught.value.__cause__, ConfigValueError)
    assert key in str(caught.value.__cause__)


def test_apply_style_mixing_with_pti_on_real_faces(
    face_generator_checkpoint: Path, face_run: Any, tmp_path: Path
) -> None:
    folder = tmp_path / "faces"
    folder.mkdir()
    for face in sorted((SHARED_DATA / "faces").glob("*.jpg"))[:2]:
        (folder / face.name).symlink_to(face)
    out, tuned = tmp_path / "apply", tmp_path / "tuned"
    command = [
        "application=style_mixing",
        f"ckpt_path={face_generator_checkpoint}",
        f"inputs={folder}",
        "device=cpu",
        "inversion=pti",
        *FAST,
        "inversion.tune_steps=5",
        f"inversion.save_tuned={tuned}",
    ]
    paths = apply(compose_config("apply", command, out))
    assert sorted(p.name for p in paths) == ["style_mixing.png", "style_mixing_codes.pt"]
    with Image.open(out / "style_mixing.png") as grid:
        assert grid.size[0] > 0
    # One batch was tuned; its delta moves the generator's output at the saved pivots.
    (saved,) = sorted(tuned.glob("*.safetensors"))
    generator = face_run[0].frozen_generator()
    with torch.no_grad():
        pivots = load_tuned_delta(generator, saved)
        before = face_run[0].frozen_generator().synthesize(pivots)
        assert mae(generator.synthesize(pivots), before) > 0


def test_evaluation_reports_pti_below_its_pivot_at_a_higher_cost(
    face_generator_checkpoint: Path, tmp_path: Path
) -> None:
    common = [
        f"ckpt_path={face_generator_checkpoint}",
        "device=cpu",
        "metrics.fid.enabled=false",
        "metrics.runtime.enabled=false",
        "metrics.lpips.nets=[alex]",
        "metrics.reconstruction.max_images=8",
    ]
    pivot_only = [  # the same inversion as PTI's pivot, without tuning
        "inversion=optimization",
        *(option.replace("inversion.pivot.", "inversion.") for option in FAST[:3]),
    ]
    pivot = evaluate(compose_config("evaluate", [*common, *pivot_only], tmp_path / "pivot"))
    pti = evaluate(compose_config("evaluate", [*common, "inversion=pti", *FAST], tmp_path / "pti"))
    assert pti["inversion"]["_target_"] == "invgan.inversion.pti.PivotalTuning"
    assert pti["metrics"]["test/mae"]["count"] == 8
    assert pti["metrics"]["test/mae"]["value"] < pivot["metrics"]["test/mae"]["value"]
    seconds = "test/reconstruction_seconds_per_image"
    assert pti["metrics"][seconds]["value"] > pivot["metrics"][seconds]["value"]
