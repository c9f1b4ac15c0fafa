"""Table 2's semantic-consistency experiment: its mean average precision against
scikit-learn, its labels against the file names they describe, and its four cells against
what an identity or a constant reconstructor must give; the command on a tiny MNIST InvGAN."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.metrics import average_precision_score

from datamodules.image_folder import ImageFolderDataModule
from datamodules.mnist import MNISTDataModule
from invgan.cli.user_errors import user_error
from invgan.experiments.average_precision import class_average_precision
from invgan.experiments.class_labels import LabelSettings, class_labels
from invgan.experiments.classifier import ClassifierSettings
from invgan.experiments.paired_images import ImageSettings, chosen_indices, paired_images
from invgan.experiments.semantic_consistency import (
    ConsistencySettings,
    consistency_results,
    semantic_consistency,
)
from invgan.training.pipeline import train
from invgan.utils.config_checks import ConfigValueError
from tests.conftest import CPU_RUN, SHARED_DATA, TINY_MODELS, compose_config, run_entry_point

CPU = torch.device("cpu")
CELLS = [(t, e) for t in ("original", "reconstruction") for e in ("original", "reconstruction")]


# ------------------------------------------------------------------ mean average precision
def test_multiclass_map_matches_scikit_learn():
    rng = np.random.default_rng(0)
    targets = rng.integers(0, 7, size=300)
    # Rounded probabilities: many tied scores, where AP definitions differ most.
    scores = np.round(rng.dirichlet(np.ones(7), size=300), 1)
    result = class_average_precision(torch.tensor(scores), torch.tensor(targets))
    one_hot = np.eye(7)[targets]
    expected = average_precision_score(one_hot, scores, average=None)
    np.testing.assert_allclose(result.per_class.numpy(), expected, rtol=1e-5)
    assert result.mean == pytest.approx(average_precision_score(one_hot, scores), rel=1e-6)
    assert result.std == pytest.approx(float(np.std(expected)), rel=1e-5)


def test_multilabel_map_matches_scikit_learn():
    rng = np.random.default_rng(1)
    targets = rng.integers(0, 2, size=(250, 20))
    scores = np.clip(targets * 0.3 + rng.random((250, 20)), 0, 1)  # informative, not perfect
    result = class_average_precision(torch.tensor(scores), torch.tensor(targets))
    expected = average_precision_score(targets, scores, average=None)
    np.testing.assert_allclose(result.per_class.numpy(), expected, rtol=1e-5)
    assert result.mean == pytest.approx(average_precision_score(targets, scores), rel=1e-6)
    assert 0.5 < result.mean < 1.0


def test_class_without_positives_is_left_out_of_the_mean():
    rng = np.random.default_rng(2)
    targets = rng.integers(0, 3, size=100)  # class 3 never occurs
    scores = rng.dirichlet(np.ones(4), size=100)
    result = class_average_precision(torch.tensor(scores), torch.tensor(targets))
    assert math.isnan(float(result.per_class[3]))
    present = average_precision_score(np.eye(4)[targets][:, :3], scores[:, :3], average=None)
    assert result.mean == pytest.approx(float(present.mean()), rel=1e-6)


# ------------------------------------------------------------------ labels
def test_natural_photo_classes_come_from_natural_labels_csv():
    """`auto` finds natural_labels.csv beside the photos; each class must be the one the
    file name's WordNet id prefix says (the CSV's own class order is by index)."""
    datamodule = ImageFolderDataModule(
        SHARED_DATA / "natural", resolution=16, batch_size=2, test_fraction=0.05
    )
    datamodule.setup()
    train_set, test_set = datamodule.train_dataset, datamodule.test_dataset
    indices = torch.arange(20)
    labels = class_labels(
        LabelSettings(), train_set, test_set, indices, indices, SHARED_DATA / "natural"
    )
    assert not labels.multilabel and labels.names[0] == "tench" and len(labels.names) == 10
    wnids = sorted({Path(p).name.split("_")[0] for p in train_set.paths})
    for dataset, targets in ((train_set, labels.train), (test_set, labels.test)):
        expected = [wnids.index(Path(dataset.paths[i]).name.split("_")[0]) for i in indices]
        assert targets.tolist() == expected


def test_celeba_attribute_file_gives_one_binary_label_per_attribute(tmp_path):
    faces = sorted((SHARED_DATA / "faces").iterdir())[:12]
    folder = tmp_path / "faces"
    folder.mkdir()
    rows = []
    for number, face in enumerate(faces):
        shutil.copy(face, folder / face.name)
        rows.append(f"{face.name} {1 if number % 2 else -1} {1 if number % 3 == 0 else -1}")
    (tmp_path / "list_attr_celeba.txt").write_text(
        f"{len(rows)}\nSmiling Young\n" + "\n".join(rows) + "\n"
    )
    datamodule = ImageFolderDataModule(folder, resolution=16, batch_size=2, test_fraction=0.25)
    datamodule.setup()
    train_set, test_set = datamodule.train_dataset, datamodule.test_dataset
    train_idx, test_idx = torch.arange(len(train_set)), torch.arange(len(test_set))
    settings = LabelSettings(attributes=("Young", "Smiling"))
    labels = class_labels(settings, train_set, test_set, train_idx, test_idx, folder)
    assert labels.multilabel and labels.names == ["Young", "Smiling"]
    number = {face.name: n for n, face in enumerate(faces)}
    for dataset, targets in ((train_set, labels.train), (test_set, labels.test)):
        ids = [number[Path(path).name] for path in dataset.paths]
        assert targets.tolist() == [[int(n % 3 == 0), int(n % 2 == 1)] for n in ids]


def test_label_problems_name_the_key_and_the_fix():
    datamodule = MNISTDataModule(SHARED_DATA / "mnist", val_size=64)
    datamodule.setup()
    train_set, test_set = datamodule.train_dataset, datamodule.test_dataset
    indices = torch.arange(4)
    with pytest.raises(ConfigValueError, match="not read from image files"):
        class_labels(
            LabelSettings(source="csv", file=str(SHARED_DATA / "natural_labels.csv")),
            train_set,
            test_set,
            indices,
            indices,
            None,
        )
    with pytest.raises(ConfigValueError, match="labels.file=<path>"):
        class_labels(LabelSettings(source="csv"), train_set, test_set, indices, indices, None)
    with pytest.raises(ConfigValueError, match="labels.source="):
        LabelSettings(source="imagenet")
    with pytest.raises(ConfigValueError, match="images.num_train=0"):
        ImageSettings(num_train=0)
    with pytest.raises(ConfigValueError, match="classifier.architecture"):
        ClassifierSettings(architecture="vgg16")


# ------------------------------------------------------------------ the protocol
class IdentityInversion:
    """A perfect reconstructor."""

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        return images

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        return codes

    def reconstruct(self, images: torch.Tensor) -> torch.Tensor:
        return images


class GreyInversion(IdentityInversion):
    """A reconstructor that keeps nothing: every reconstruction is the same grey image."""

    def reconstruct(self, images: torch.Tensor) -> torch.Tensor:
        return torch.zeros_like(images)


@pytest.fixture(scope="module")
def mnist_splits():
    datamodule = MNISTDataModule(SHARED_DATA / "mnist", val_size=64)
    datamodule.setup()
    return datamodule.train_dataset, datamodule.test_dataset


def _cells(method, splits) -> dict[tuple[str, str], dict]:
    # 48 test images in three equal classifier batches: every reconstructed image goes
    # through the same computation, so equal inputs get bit-equal scores.
    settings = ConsistencySettings(
        ImageSettings(num_train=64, num_test=48, batch_size=32),
        LabelSettings(),
        ClassifierSettings(architecture="resnet18", epochs=1, batch_size=16),
    )
    report = consistency_results(method, *splits, 28, settings, seed=3, device=CPU)
    assert report["images"] == {"train": 64, "test": 48, "size": 28}
    return {(r["trained_on"], r["evaluated_on"]): r for r in report["results"]}


@pytest.fixture(scope="module")
def identity_cells(mnist_splits) -> dict[tuple[str, str], dict]:
    return _cells(IdentityInversion(), mnist_splits)


def test_perfect_reconstructions_give_the_originals_scores(identity_cells):
    """Trained on identical images from the same initial weights, the two classifiers are
    the same network: all four cells must agree exactly."""
    assert sorted(identity_cells) == CELLS
    values = {key: (cell["map"], cell["map_std"]) for key, cell in identity_cells.items()}
    assert len(set(values.values())) == 1, values


def test_reconstruction_cells_use_the_reconstructions(mnist_splits, identity_cells):
    """With every reconstruction one grey image, a classifier scores all reconstructed test
    images alike, so each class's AP is its share of the test images (hand-computed here);
    the classifier trained on the originals and tested on them is unaffected."""
    grey = _cells(GreyInversion(), mnist_splits)
    test_labels = mnist_splits[1].labels
    chosen = test_labels[chosen_indices(len(test_labels), 48, 3 + 1)]  # the test draw
    shares = torch.bincount(chosen, minlength=10).double() / len(chosen)
    expected = float(shares[shares > 0].mean())
    assert grey[("reconstruction", "reconstruction")]["map"] == pytest.approx(expected)
    assert grey[("original", "reconstruction")]["map"] == pytest.approx(expected)
    originals = identity_cells[("original", "original")]["map"]
    assert grey[("original", "original")]["map"] == originals
    assert grey[("reconstruction", "original")]["map"] != originals


def test_larger_images_are_reconstructed_patch_by_patch():
    """32-px images with a 16-px generator: the identity reconstructor sees 16-px patches and
    the tiles come back in place."""
    images = torch.rand(3, 1, 32, 32)

    class PatchIdentity(IdentityInversion):
        def encode(self, patches: torch.Tensor) -> torch.Tensor:
            assert patches.shape[-2:] == (16, 16)
            return patches

    pairs = paired_images(PatchIdentity(), images, torch.arange(3), 16, 2, 0, CPU)
    assert torch.equal(pairs.originals, pairs.reconstructions)
    assert pairs.originals.shape == (3, 1, 32, 32) and pairs.originals.dtype == torch.uint8


# ------------------------------------------------------------------ the command
@pytest.fixture(scope="module")
def mnist_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny DCGAN InvGAN trained two steps on the real MNIST files."""
    run_dir = tmp_path_factory.mktemp("mnist")
    overrides = [
        "data=mnist",
        f"data.root={SHARED_DATA / 'mnist'}",
        "data.val_size=64",
        *TINY_MODELS["DCGANGenerator"],
        "debug=fdr",
        "trainer.fast_dev_run=false",
        "trainer.max_steps=2",
        "trainer.limit_val_batches=1",
        "test=false",
    ]
    train(compose_config("train", [*CPU_RUN, *overrides], run_dir))
    return run_dir / "checkpoints" / "last.ckpt"


def test_command_writes_table2_for_an_mnist_invgan(mnist_checkpoint, tmp_path, monkeypatch):
    # One thread, as in-process tests run: a second one on a busy 2-core machine makes the
    # classifier ten times slower.
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    out = tmp_path / "out"
    result = run_entry_point(
        "-m",
        "invgan.experiments.semantic_consistency",
        f"ckpt_path={mnist_checkpoint}",
        "device=cpu",
        "images.num_train=64",
        "images.num_test=32",
        "classifier.architecture=resnet18",
        "classifier.epochs=1",
        "classifier.batch_size=16",
        f"hydra.run.dir={out}",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads((out / "metrics.json").read_text())
    assert report["label"] == "encoder" and report["reconstruction"] == "whole"
    assert report["labels"]["classes"] == [str(digit) for digit in range(10)]
    assert sorted((r["trained_on"], r["evaluated_on"]) for r in report["results"]) == CELLS
    for row in report["results"]:
        assert 0.0 <= row["map"] <= 1.0 and math.isfinite(row["map_std"])
    table = (out / "table.md").read_text()
    assert "| Reconstruction (encoder) |" in table and table in result.stdout


def test_command_refuses_a_bad_value_with_its_key(mnist_checkpoint, tmp_path):
    """Checked before the checkpoint is loaded; the command reports it as a user error."""
    cfg = compose_config(
        "semantic_consistency", [f"ckpt_path={mnist_checkpoint}", "classifier.epochs=0"], tmp_path
    )
    with pytest.raises(Exception) as raised:
        semantic_consistency(cfg)
    found = user_error(raised.value)
    assert isinstance(found, ConfigValueError) and "classifier.epochs=0" in str(found)
    assert not (tmp_path / "metrics.json").exists()
