"""evaluate.py with inversion methods from conf/inversion/, and with a bare generator file."""

from __future__ import annotations

import pytest

from invgan.evaluation.pipeline import evaluate
from tests.conftest import SHARED_DATA, compose_config

NO_FID = [
    "metrics.fid.enabled=false",
    "metrics.runtime.enabled=false",
    "metrics.lpips.nets=[alex]",
    "device=cpu",
]
FACES_16 = [
    "data=celeba",
    f"data.root={SHARED_DATA / 'faces'}",
    "data.resolution=16",
    "data.eval_batch_size=8",
    "metrics.reconstruction.max_images=8",
]


def _evaluate(tmp_path, *overrides: str) -> dict:
    return evaluate(compose_config("evaluate", [*NO_FID, *overrides], tmp_path / "eval"))


def test_generator_file_is_inverted_by_optimisation(face_generator_checkpoint, tmp_path):
    common = [
        f"generator_path={face_generator_checkpoint}",
        *FACES_16,
        "inversion=optimization",
        "inversion.space=w_plus",
        "inversion.lpips_weight=0",
    ]
    one_step = _evaluate(tmp_path, *common, "inversion.steps=1")["metrics"]
    fitted = _evaluate(tmp_path, *common, "inversion.steps=60")["metrics"]
    assert fitted["test/mae"]["count"] == 8
    assert fitted["test/mae"]["value"] < 0.8 * one_step["test/mae"]["value"]
    assert fitted["test/lpips_alex"]["value"] < one_step["test/lpips_alex"]["value"]
    seconds = fitted["test/reconstruction_seconds_per_image"]["value"]
    assert seconds > one_step["test/reconstruction_seconds_per_image"]["value"]


@pytest.mark.parametrize("method", ["hybrid", "domain_regularized"])
def test_refining_a_runs_encoder_output_beats_the_encoder(
    face_generator_checkpoint, tmp_path, method
):
    common = [f"ckpt_path={face_generator_checkpoint}", "metrics.reconstruction.max_images=8"]
    head = _evaluate(tmp_path, *common, "inversion=encoder")
    refined = _evaluate(
        tmp_path, *common, f"inversion={method}", "inversion.steps=40", "inversion.lr=0.05"
    )
    assert refined["inversion"]["init"] == "encoder"
    assert refined["metrics"]["test/mae"]["value"] < head["metrics"]["test/mae"]["value"]


def test_bad_sources_get_clear_errors(face_generator_checkpoint, tmp_path):
    with pytest.raises(ValueError, match="exactly one of ckpt_path"):
        _evaluate(tmp_path)
    with pytest.raises(ValueError, match="needs the images to invert"):
        _evaluate(tmp_path, f"generator_path={face_generator_checkpoint}")
    with pytest.raises(ValueError, match="has no encoder"):
        _evaluate(tmp_path, f"generator_path={face_generator_checkpoint}", *FACES_16)
