"""Evaluation: what each image stream feeds the generator, sharding over ranks, distributed
runs against one process, the paper-layout tables and the comparison of several evaluations."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from torch.utils.data import TensorDataset

from invgan.evaluation.pipeline import evaluate
from invgan.evaluation.report import paper_table
from invgan.evaluation.streams import ImageStreams
from invgan.evaluation.world import EvaluationWorld
from invgan.inversion.encoder import EncoderInversion
from tests.conftest import INCEPTION_WEIGHTS, compose_config, run_entry_point

SIZE = 4


class RecordingModel:
    """Codes are per-image channel means; decoding paints each image with its code. Records
    what it encodes, decodes and samples."""

    iteration = 0
    device = torch.device("cpu")

    def __init__(self) -> None:
        self.encoded: list[torch.Tensor] = []
        self.decoded: list[torch.Tensor] = []
        self.sampled: list[torch.Tensor] = []

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        self.encoded.append(images)
        return images.mean(dim=(2, 3))

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        self.decoded.append(codes)
        return codes[:, :, None, None].expand(-1, -1, SIZE, SIZE).clone()

    def sample(self, count: int, *, generator: torch.Generator | None = None) -> torch.Tensor:
        self.sampled.append(torch.rand(count, 3, SIZE, SIZE, generator=generator) * 2 - 1)
        return self.sampled[-1]

    def reconstruct(self, images: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(images))

    def frozen_generator(self) -> None:
        raise AssertionError("evaluation inverts through the inversion method only")


def images_datamodule(images: torch.Tensor) -> SimpleNamespace:
    """The test split of `images` (N, 3, SIZE, SIZE) in [0, 1], as evaluation reads data."""
    return SimpleNamespace(
        test_dataset=TensorDataset(images), eval_batch_size=4, resolution=SIZE, channels=3
    )


def _streams(world: EvaluationWorld | None = None, test_count: int = 10) -> ImageStreams:
    # Distinct test images: image i is filled with i / test_count (in [0, 1]).
    images = torch.arange(test_count).float().div(test_count)[:, None, None, None]
    datamodule = images_datamodule(images.expand(-1, 3, SIZE, SIZE).clone())
    model = RecordingModel()
    world = world or EvaluationWorld()
    return ImageStreams(
        model, EncoderInversion(model), datamodule, world, 7, 4, torch.device("cpu")
    )


def _world(rank: int, size: int) -> EvaluationWorld:
    world = EvaluationWorld()
    world.rank, world.size = rank, size
    return world


def test_interpolation_decodes_midpoints_of_random_pairs_of_test_images():
    streams = _streams()
    model = streams.model
    outputs = [images for _, images in streams.test_interpolations(10)]
    assert sum(images.shape[0] for images in outputs) == 10
    first_images = []
    for batch, (images_a, images_b) in enumerate(
        zip(model.encoded[::2], model.encoded[1::2], strict=True)
    ):
        codes = model.decoded[batch]
        # G was given exactly the midpoints of the two images' codes ...
        torch.testing.assert_close(
            codes, (images_a.mean(dim=(2, 3)) + images_b.mean(dim=(2, 3))) / 2
        )
        # ... of two different test images.
        assert (images_a[:, 0, 0, 0] != images_b[:, 0, 0, 0]).all()
        first_images += images_a[:, 0, 0, 0].tolist()
    # Each test image is the first of one pair, and the order is not the dataset's.
    expected = (torch.arange(10) / 10 * 2 - 1).tolist()
    assert sorted(first_images) == pytest.approx(expected)
    assert first_images != pytest.approx(expected)


def test_random_reconstructions_invert_the_generated_samples():
    streams = _streams()
    model = streams.model
    outputs = [images for _, images in streams.random_reconstructions(10)]
    assert [images.shape[0] for images in outputs] == [4, 4, 2]
    # The inversion saw exactly G(M(z)), and the output regenerates from its codes.
    for samples, encoded, output in zip(model.sampled, model.encoded, outputs, strict=True):
        assert encoded is samples
        torch.testing.assert_close(output[:, :, 0, 0], samples.mean(dim=(2, 3)))


@pytest.mark.parametrize("stream", ["random_samples", "test_interpolations"])
def test_ranks_share_the_batches_of_one_process(stream):
    def images_by_position(world: EvaluationWorld | None) -> dict[int, torch.Tensor]:
        batches = getattr(_streams(world), stream)(10)
        return {
            int(p): image
            for positions, images in batches
            for p, image in zip(positions, images, strict=True)
        }

    whole = images_by_position(None)
    shares = [images_by_position(_world(rank, 2)) for rank in range(2)]
    assert sorted(whole) == list(range(10))
    assert not set(shares[0]) & set(shares[1])
    for position, image in {**shares[0], **shares[1]}.items():
        torch.testing.assert_close(image, whole[position], rtol=0, atol=0)


def test_ddp_sim_evaluation_equals_one_process(face_generator_checkpoint, tmp_path):
    overrides = [
        f"ckpt_path={face_generator_checkpoint}",
        f"metrics.fid.weights_path={INCEPTION_WEIGHTS}",
        "metrics.fid.num_samples=12",
        "metrics.fid.real_count=24",
        "metrics.kid.real_count=24",
        "metrics.kid.subsets=5",
        "metrics.lpips.nets=[alex]",
        "metrics.reconstruction.max_images=20",
        "metrics.runtime.enabled=false",
        "batch_size=4",  # odd batch counts: the ranks get unequal shares
    ]
    one = evaluate(compose_config("evaluate", [*overrides, "device=cpu"], tmp_path / "one"))
    # One thread in this process as in each spawned rank: float round-off then matches too.
    two = evaluate(compose_config("evaluate", [*overrides, "trainer=ddp_sim"], tmp_path / "two"))
    assert two["processes"] == 2 and one["processes"] == 1
    assert set(two["metrics"]) == set(one["metrics"])
    for name, entry in one["metrics"].items():
        if name != "test/reconstruction_seconds_per_image":
            # FID of 12 samples takes the square root of a rank-11 covariance product: it
            # magnifies the float64 round-off of summing features in another order.
            rel = 1e-7 if "fid" in name else 1e-9
            assert two["metrics"][name]["value"] == pytest.approx(entry["value"], rel=rel), name
            assert two["metrics"][name]["count"] == entry["count"], name
    assert one["metrics"]["test/rand_fid_12"]["count"] == 12
    assert one["metrics"]["test/mae"]["count"] == 20
    assert (tmp_path / "two" / "metrics.json").is_file()


def test_paper_table_joins_sample_counts_like_the_paper():
    def report(label: str, fids: dict[str, float]) -> dict:
        metrics = {name: {"value": value} for name, value in fids.items()}
        metrics["test/mae"] = {"value": 0.07}
        metrics["test/inversion_seconds_per_image"] = {"value": 3.3e-5}
        return {"label": label, "metrics": metrics}

    reports = [
        report("a", {"test/rand_fid_500": 17.444, "test/rand_fid_50000": 6.1}),
        report("b", {"test/rand_fid_500": 20.0, "test/int_ts_fid_500": 26.04}),
    ]
    lines = paper_table(reports).splitlines()
    assert lines[0] == (
        "| model | RandFID (500/50000) | IntTsFID (500) | MAE ±1 | run time (s/img) |"
    )
    assert lines[2] == "| a | 17.44/6.10 | - | 0.0700 | 3.30e-05 |"
    assert lines[3] == "| b | 20.00/- | 26.04 | 0.0700 | 3.30e-05 |"


def test_multirun_over_checkpoints_writes_one_comparison(face_generator_checkpoint, tmp_path):
    other = tmp_path / "other_run" / "checkpoints" / "last.ckpt"
    other.parent.mkdir(parents=True)
    shutil.copy(face_generator_checkpoint, other)
    sweep = tmp_path / "sweep"
    result = run_entry_point(
        "evaluate.py",
        "-m",
        f"ckpt_path={face_generator_checkpoint},{other}",
        "inversion=encoder",
        "metrics.fid.enabled=false",
        "metrics.lpips.enabled=false",
        "metrics.runtime.enabled=false",
        "metrics.reconstruction.max_images=8",
        "device=cpu",
        f"hydra.sweep.dir={sweep}",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    reports = json.loads((sweep / "comparison.json").read_text())
    run = Path(face_generator_checkpoint).parent.parent.name
    assert [r["label"] for r in reports] == [f"{run} / encoder", "other_run / encoder"]
    table = (sweep / "comparison.md").read_text()
    for job, report in enumerate(reports):
        mae = json.loads((sweep / str(job) / "metrics.json").read_text())["metrics"]["test/mae"]
        assert report["metrics"]["test/mae"] == mae
        assert f"| {report['label']} | {mae['value']:.4f} |" in table
    # The same weights under two names: the same numbers.
    assert reports[0]["metrics"]["test/mae"] == reports[1]["metrics"]["test/mae"]
