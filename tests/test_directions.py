"""Latent directions for attribute editing (SeFa, InterFaceGAN, label readers, the
attribute_editing application), checked against numpy references, known synthetic
boundaries, hand-written label files and real inverted images."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from invgan.applications.attribute_editing import run_attribute_editing
from invgan.cli.apply import apply
from invgan.directions.interfacegan import InterFaceGAN, stratified_holdout
from invgan.directions.label_files import (
    CelebAAttributes,
    CsvLabels,
    read_celeba_attributes,
    read_label_csv,
)
from invgan.directions.labels import MIN_PER_CLASS, balanced_subset, binary_labels
from invgan.directions.latent_directions import LatentDirections, move_codes
from invgan.directions.linear_boundary import accuracy, fit_linear_boundary, project_out
from invgan.directions.saved import SavedDirections
from invgan.directions.sefa import SeFa, first_layer_weight, sefa_directions
from invgan.nn.biggan.generator import BigGANGenerator
from invgan.nn.dcgan import DCGANGenerator
from invgan.nn.frozen_generator import FrozenGenerator
from invgan.nn.mapping import MappingMLP
from invgan.nn.stylegan2.generator import StyleGAN2Generator
from invgan.training.pipeline import train
from tests.conftest import CPU_RUN, SHARED_DATA, TINY_MODELS, compose_config

W_DIM = 16


def tiny_stylegan2() -> StyleGAN2Generator:
    """16 px, w_dim 16, n_latent 6."""
    torch.manual_seed(0)
    return StyleGAN2Generator(
        w_dim=W_DIM,
        resolution=16,
        channels=3,
        n_mlp=2,
        channel_base=256,
        channel_max=16,
        channel_multiplier=1,
    ).eval()


def tiny_dcgan() -> DCGANGenerator:
    """16 px DCGAN whose batch norm has non-trivial running statistics and affine."""
    torch.manual_seed(0)
    generator = DCGANGenerator(w_dim=W_DIM, resolution=16, channels=1, base_width=4)
    norm = generator.project[1]
    norm.running_var.uniform_(0.2, 3.0)
    norm.running_mean.normal_()
    norm.weight.data.uniform_(0.5, 2.0)
    return generator.eval()


def tiny_biggan() -> BigGANGenerator:
    """16 px BigGAN (two up-blocks)."""
    torch.manual_seed(0)
    return BigGANGenerator(W_DIM, 16, 3, base_width=4, width_multipliers=(2, 1)).eval()


def frozen(generator: nn.Module) -> FrozenGenerator:
    """The generator with a mapping network (its own for StyleGAN2)."""
    if isinstance(generator, StyleGAN2Generator):
        return FrozenGenerator(generator)
    return FrozenGenerator(generator, MappingMLP(W_DIM, W_DIM, 32, 2))


def affine_matrix(layer: nn.Module) -> np.ndarray:
    """A of an affine map f(w) = A w + b, probed as f(e_i) - f(0): independent of how the
    layer stores or rescales its weight."""
    with torch.no_grad():
        probes = torch.cat([torch.zeros(1, W_DIM), torch.eye(W_DIM)])
        out = layer(probes)
    return (out[1:] - out[:1]).T.double().numpy()


def stylegan_layer_affines(generator: StyleGAN2Generator, layer: int) -> list[nn.Module]:
    """The modulation layers that W+ layer `layer` reaches, found by running the generator
    with hooks: the ones whose input is that layer's code (all other layers' codes are 0)."""
    reached = []

    def record(module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
        if inputs[0].abs().sum() > 0:
            reached.append(module)

    modulations = [m.modulation for m in generator.modules() if hasattr(m, "modulation")]
    hooks = [m.register_forward_hook(record) for m in modulations]
    codes = torch.zeros(1, generator.n_latent, W_DIM)
    codes[:, layer] = 1.0
    with torch.no_grad():
        generator(codes)
    for hook in hooks:
        hook.remove()
    return reached


def top_singular_vector(a: np.ndarray, normalize_rows: bool = True) -> np.ndarray:
    """numpy SVD reference: the right singular vector of A with the largest singular value."""
    if normalize_rows:
        a = a / np.linalg.norm(a, axis=1, keepdims=True)
    return np.linalg.svd(a)[2][0]


# ------------------------------------------------------------------------------------- SeFa
@pytest.mark.parametrize(
    ("make", "first_affine"),
    [
        (tiny_dcgan, lambda g: g.project[:2]),  # Linear + eval-mode BN: one affine map
        (tiny_biggan, lambda g: g.project),
    ],
)
def test_sefa_matches_numpy_svd_of_the_first_affine_layer(make, first_affine):
    generator = make()
    vectors, eigenvalues = sefa_directions(first_layer_weight(generator), 4)
    assert torch.allclose(vectors @ vectors.T, torch.eye(4), atol=1e-5)  # unit, orthogonal
    assert torch.all(eigenvalues[:-1] >= eigenvalues[1:])
    reference = top_singular_vector(affine_matrix(first_affine(generator)))
    assert abs(float(vectors[0].double() @ torch.from_numpy(reference))) > 0.9999
    # Without row normalisation the eigenvalues are A^T A's: the squared singular values.
    _, raw = sefa_directions(first_layer_weight(generator), 4, normalize_rows=False)
    singular = np.linalg.svd(affine_matrix(first_affine(generator)), compute_uv=False)
    assert np.allclose(raw.numpy(), singular[:4] ** 2, rtol=1e-4)


def test_sefa_stylegan2_layers_match_the_affines_each_layer_reaches():
    generator = tiny_stylegan2()
    layers = [1, 2, 5]
    vectors, _ = sefa_directions(first_layer_weight(generator, layers), 3)
    affines = [a for layer in layers for a in stylegan_layer_affines(generator, layer)]
    assert len(affines) == 4  # layer 1 drives to_rgb1 and the first upsampling conv
    reference = top_singular_vector(np.concatenate([affine_matrix(a) for a in affines]))
    assert abs(float(vectors[0].double() @ torch.from_numpy(reference))) > 0.9999
    assert torch.allclose(vectors @ vectors.T, torch.eye(3), atol=1e-5)


def test_sefa_top_direction_moves_the_first_layer_most():
    weight = first_layer_weight(tiny_dcgan())
    vectors, _ = sefa_directions(weight, 1, normalize_rows=False)
    random = torch.nn.functional.normalize(torch.randn(500, W_DIM), dim=1)
    assert (weight @ vectors[0]).norm() >= (random @ weight.T).norm(dim=1).max()


@pytest.mark.parametrize("make", [tiny_dcgan, tiny_biggan, tiny_stylegan2])
def test_moving_along_a_sefa_direction_changes_the_image(make):
    generator = frozen(make())
    directions = SeFa(num_components=2).find(_MethodOf(generator), 3, 16)
    codes = generator.map(torch.randn(2, W_DIM))
    before = generator.synthesize(codes)
    after = generator.synthesize(move_codes(codes, directions.vectors[0], 3.0, generator))
    assert (after - before).abs().mean() > 1e-3


def test_sefa_on_chosen_stylegan2_layers_edits_only_those_layers():
    generator = frozen(tiny_stylegan2())
    directions = SeFa(num_components=2, layers=[2, 3]).find(_MethodOf(generator), 3, 16)
    assert directions.layers == [2, 3]
    codes = generator.map(torch.randn(2, W_DIM))
    moved = move_codes(codes, directions.vectors[0], 2.0, generator, directions.layers)
    delta = moved - generator.expand_to_codes(codes)
    changed = delta.abs().amax(dim=(0, 2)) > 0
    assert changed.tolist() == [i in (2, 3) for i in range(generator.n_latent)]
    assert torch.allclose(delta[:, 2], 2.0 * directions.vectors[0].expand(2, -1))


def test_sefa_refuses_layers_for_single_code_backbones():
    with pytest.raises(ValueError, match="only applies to StyleGAN2"):
        first_layer_weight(tiny_dcgan(), [0])
    with pytest.raises(ValueError, match="W\\+ layers 0..5"):
        first_layer_weight(tiny_stylegan2(), [6])


class _MethodOf:
    """An inversion method shell around a frozen generator (SeFa only needs its weights)."""

    def __init__(self, generator: FrozenGenerator) -> None:
        self.model = type("Model", (), {"frozen_generator": lambda _self: generator})()
        self.frozen_generator = self.model.frozen_generator


# ----------------------------------------------------------------------------- InterFaceGAN
def test_linear_boundary_recovers_a_known_separating_direction():
    rng = torch.Generator().manual_seed(0)
    codes = torch.randn(600, W_DIM, generator=rng) * torch.linspace(0.5, 2.0, W_DIM)
    truth = torch.nn.functional.normalize(torch.randn(W_DIM, generator=rng), dim=0)
    noise = 0.2 * torch.randn(600, generator=rng)
    labels = codes @ truth + 0.5 + noise > 0  # imbalanced, noisy, offset boundary
    boundary = fit_linear_boundary(codes[:400], labels[:400])
    assert float(boundary.normal.norm()) == pytest.approx(1.0, abs=1e-6)
    assert float(boundary.normal @ truth) > 0.9  # and not -0.9: it points to the positives
    assert accuracy(boundary, codes[400:], labels[400:])["balanced_accuracy"] > 0.85


def test_project_out_matches_the_hand_formula_and_is_orthogonal():
    n1 = torch.nn.functional.normalize(torch.tensor([1.0, 1.0, 0.0]), dim=0)
    n2 = torch.tensor([1.0, 0.0, 0.0])
    assert torch.allclose(project_out(n1, n2[None]), torch.tensor([0.0, 1.0, 0.0]), atol=1e-6)
    conditions = torch.randn(3, W_DIM)
    direction = project_out(torch.randn(W_DIM), conditions)
    assert torch.allclose(conditions @ direction, torch.zeros(3), atol=1e-5)
    with pytest.raises(ValueError, match="span of the condition"):
        project_out(conditions[0], conditions)


def test_stratified_holdout_keeps_both_classes_on_both_sides():
    labels = torch.tensor([True] * 5 + [False] * 20)
    fit, held_out = stratified_holdout(labels, 0.3)
    assert sorted(torch.cat([fit, held_out]).tolist()) == list(range(25))
    assert int(labels[held_out].sum()) == 2 and int((~labels[held_out]).sum()) == 6


# ---------------------------------------------------------------------------- label readers
CELEBA_ATTRIBUTES = """4
Smiling Male Young
a.jpg  1 -1  1
b.jpg -1 -1  1
c.jpg  1  1 -1
d.jpg -1  1  1
"""


def test_celeba_attribute_file_is_parsed_by_column(tmp_path):
    path = tmp_path / "list_attr_celeba.txt"
    path.write_text(CELEBA_ATTRIBUTES)
    names, values = read_celeba_attributes(path, "Male")
    assert names == ["a.jpg", "b.jpg", "c.jpg", "d.jpg"] and values == ["-1", "-1", "1", "1"]
    assert binary_labels(values, None, "Male", "x").tolist() == [False, False, True, True]
    with pytest.raises(ValueError, match="'Bald' is not in .*Smiling, Male, Young"):
        read_celeba_attributes(path, "Bald")
    path.write_text(CELEBA_ATTRIBUTES.replace("4\n", "5\n", 1))
    with pytest.raises(ValueError, match="declares 5 images and 4 rows"):
        read_celeba_attributes(path, "Male")
    path.write_text(CELEBA_ATTRIBUTES.replace("d.jpg -1  1  1", "d.jpg -1  1"))
    with pytest.raises(ValueError, match="lines \\[6\\] do not"):
        read_celeba_attributes(path, "Male")


def test_csv_labels_binary_and_categorical_columns(tmp_path):
    path = tmp_path / "labels.csv"
    path.write_text("file,glasses,colour\nx.png,1,red\ny.png,0,blue\nz.png,-1,red\n")
    names, values = read_label_csv(path, "glasses", None)
    assert names == ["x.png", "y.png", "z.png"]
    assert binary_labels(values, None, "glasses", "x").tolist() == [True, False, False]
    _, colours = read_label_csv(path, "colour", "file")
    assert binary_labels(colours, ["red"], "colour", "x").tolist() == [True, False, True]
    with pytest.raises(ValueError, match="not binary .*set positive="):
        binary_labels(colours, None, "colour", "x")
    with pytest.raises(ValueError, match="'hat' is not a column .*file, glasses, colour"):
        read_label_csv(path, "hat", None)


def _write_faces(folder: Path, count: int) -> list[str]:
    """`count` real face files (symlinks) in folder; their names."""
    folder.mkdir()
    faces = sorted((SHARED_DATA / "faces").glob("*.jpg"))[:count]
    for face in faces:
        (folder / face.name).symlink_to(face)
    return [face.name for face in faces]


def test_label_files_load_balanced_images_and_report_missing_ones(tmp_path):
    names = _write_faces(tmp_path / "img_align_celeba", 14)
    rows = [f"{name} {1 if i % 3 == 0 else -1} 1" for i, name in enumerate(names)]
    attributes = tmp_path / "list_attr_celeba.txt"
    attributes.write_text(
        f"{len(names) + 1}\nSmiling Young\n" + "\n".join(rows) + "\nlost.jpg 1 1\n"
    )
    with pytest.raises(FileNotFoundError, match="1 of the 15 images .*lost.jpg.*on_missing=skip"):
        CelebAAttributes(attributes, "Smiling").load(3, 16)
    labelled = CelebAAttributes(attributes, "Smiling", on_missing="skip", max_per_class=6).load(
        3, 16
    )
    assert labelled.images.shape == (11, 3, 16, 16)  # 5 smiling (all) + 6 of 9 others
    assert int(labelled.labels.sum()) == 5 and labelled.images.min() >= -1
    with pytest.raises(
        ValueError, match=f"0 without; InterFaceGAN needs at least {MIN_PER_CLASS}"
    ):
        CelebAAttributes(attributes, "Young", on_missing="skip").load(3, 16)
    csv = tmp_path / "labels.csv"
    csv.write_text(
        "name,smiling\n" + "\n".join(f"img_align_celeba/{n},{i % 2}" for i, n in enumerate(names))
    )
    assert CsvLabels(csv, "smiling").load(3, 16).labels.tolist() == [False, True] * 7


def test_balanced_subset_is_seeded_and_capped():
    labels = torch.tensor([True] * 10 + [False] * 30)
    chosen = balanced_subset(labels, 8, "a", "s", seed=1)
    assert int(labels[chosen].sum()) == 8 and len(chosen) == 16
    assert torch.equal(chosen, balanced_subset(labels, 8, "a", "s", seed=1))


# ------------------------------------------------- real inverted images and the apply command
def _train(run_dir: Path, overrides: list[str]) -> Path:
    """last.ckpt of a two-step tiny InvGAN run."""
    common = [
        "debug=fdr",
        "trainer.fast_dev_run=false",
        "trainer.max_steps=2",
        "trainer.limit_val_batches=1",
        "test=false",
    ]
    train(compose_config("train", [*CPU_RUN, *overrides, *common], run_dir))
    return run_dir / "checkpoints" / "last.ckpt"


@pytest.fixture(scope="module")
def mnist_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny DCGAN InvGAN trained two steps on the real MNIST files."""
    overrides = [
        "data=mnist",
        f"data.root={SHARED_DATA / 'mnist'}",
        "data.val_size=64",
        *TINY_MODELS["DCGANGenerator"],
    ]
    return _train(tmp_path_factory.mktemp("mnist"), overrides)


@pytest.fixture(scope="module")
def stylegan_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny StyleGAN2 InvGAN trained two steps on synthetic 16 px RGB images."""
    overrides = [
        "model=invgan_stylegan2",
        *TINY_MODELS["StyleGAN2Generator"],
        "data=synthetic",
        "data.resolution=16",
        "data.channels=3",
    ]
    return _train(tmp_path_factory.mktemp("stylegan"), overrides)


def _apply(out: Path, checkpoint: Path, inputs: Path, *overrides: str) -> dict:
    """Run the attribute_editing command; its directions.json."""
    cfg = compose_config(
        "apply",
        [
            "application=attribute_editing",
            f"ckpt_path={checkpoint}",
            f"inputs={inputs}",
            "device=cpu",
            "application.alphas=[-2,0,2]",
            *overrides,
        ],
        out,
    )
    apply(cfg)
    return json.loads((out / "directions.json").read_text())


def test_interfacegan_on_inverted_mnist_digits_beats_chance(mnist_checkpoint, tmp_path):
    """Digit 1 against the rest, from held-out codes of real test digits inverted by a barely
    trained InvGAN: the boundary must separate them better than chance (0.5 balanced)."""
    digits = tmp_path / "digits"
    digits.mkdir()
    from PIL import Image

    from datamodules.mnist import IDX_IMAGES_MAGIC, read_idx

    test_images = read_idx(SHARED_DATA / "mnist" / "t10k-images-idx3-ubyte.gz", IDX_IMAGES_MAGIC)
    for i in range(3):
        Image.fromarray(test_images[i]).save(digits / f"{i}.png")
    out = tmp_path / "out"
    report = _apply(
        out,
        mnist_checkpoint,
        digits,
        "application/direction=interfacegan",
        "application.direction.labels.max_per_class=150",
    )
    held_out = report["info"]["held_out"]
    assert held_out["count"] == 90 and held_out["balanced_accuracy"] > 0.7, report["info"]
    saved = LatentDirections.load(out / "directions.pt")
    assert saved.vectors.shape == (1, 16) and float(saved.vectors.norm()) == pytest.approx(1.0)
    # Held-out accuracy above chance also means the normal points to digit 1: the boundary
    # predicts the attribute on the side the normal points to.
    assert torch.load(out / "attribute_editing_codes.pt")["codes"].shape == (3, 16)
    assert (out / "attribute_editing_label_in_1.png").is_file()


def test_conditional_interfacegan_direction_is_orthogonal_to_the_condition(
    mnist_checkpoint, tmp_path
):
    labels = digit_labels(mnist_checkpoint, [1])
    method = _encoder(mnist_checkpoint)
    plain = InterFaceGAN(labels).find(method, 1, 28)
    conditional = InterFaceGAN(labels, condition=digit_labels(mnist_checkpoint, [7]))
    directions = conditional.find(method, 1, 28)
    condition = InterFaceGAN(digit_labels(mnist_checkpoint, [7])).find(method, 1, 28)
    assert abs(float(directions.vectors[0] @ condition.vectors[0])) < 1e-5
    assert float(directions.vectors[0] @ plain.vectors[0]) > 0  # still towards digit 1
    assert directions.info["condition"]["attribute"] == "label in [7]"


def digit_labels(checkpoint: Path, positive: list[int]):
    """Digit labels (label in positive) of the checkpoint's MNIST test split."""
    from invgan.directions.dataset_labels import DatasetLabels

    paths = {
        "data_dir": str(SHARED_DATA),
        "root_dir": ".",
        "log_dir": "logs",
        "cache_dir": ".cache",
        "output_dir": ".",
    }
    return DatasetLabels(checkpoint, positive, paths, max_per_class=60)


def _encoder(checkpoint: Path):
    """The checkpoint's own inversion (D's latent head), built as the apply command does."""
    from invgan.checkpoints.format import load_checkpoint
    from invgan.checkpoints.run_config import restore_run_config
    from invgan.evaluation.loading import build_model
    from invgan.inversion.encoder import EncoderInversion

    cfg = compose_config("apply", [f"ckpt_path={checkpoint}", "inputs=x"], Path("unused"))
    loaded = load_checkpoint(checkpoint)
    return EncoderInversion(build_model(restore_run_config(loaded, cfg), loaded, cfg))


def test_apply_sefa_on_real_faces_then_reuse_the_saved_directions(stylegan_checkpoint, tmp_path):
    faces = tmp_path / "faces"
    _write_faces(faces, 3)
    first = _apply(
        tmp_path / "sefa",
        stylegan_checkpoint,
        faces,
        "application.direction.num_components=2",
        "application.direction.layers=[0,1]",
    )
    assert first["method"] == "sefa" and first["layers"] == [0, 1]
    for name in ("component_0", "component_1", "directions"):
        assert (tmp_path / "sefa" / f"attribute_editing_{name}.png").is_file()
    again = _apply(
        tmp_path / "saved",
        stylegan_checkpoint,
        faces,
        "application/direction=saved",
        f"application.direction.path={tmp_path / 'sefa' / 'directions.pt'}",
    )
    assert again == first
    grid = (tmp_path / "sefa" / "attribute_editing_component_0.png").read_bytes()
    assert (tmp_path / "saved" / "attribute_editing_component_0.png").read_bytes() == grid


def test_apply_interfacegan_with_csv_labels_on_real_photos(stylegan_checkpoint, tmp_path):
    photos = tmp_path / "photos"
    names = _write_natural(photos, 2)
    report = _apply(
        tmp_path / "out",
        stylegan_checkpoint,
        photos / names[0],
        "application/direction=interfacegan",
        "application/direction/labels=csv",
        f"application.direction.labels.csv={SHARED_DATA / 'natural_labels.csv'}",
        "application.direction.labels.attribute=class_name",
        "application.direction.labels.positive=[tench]",
        "application.direction.labels.max_per_class=10",
    )
    assert report["info"]["positives"] == 10 and report["info"]["negatives"] == 10
    assert report["info"]["held_out"]["count"] == 6
    assert report["names"] == ["class_name in ['tench']"]


def _write_natural(folder: Path, count: int) -> list[str]:
    """`count` real photos (symlinks) in folder; their names."""
    folder.mkdir()
    photos = sorted((SHARED_DATA / "natural").glob("*.JPEG"))[:count]
    for photo in photos:
        (folder / photo.name).symlink_to(photo)
    return [photo.name for photo in photos]


def test_saved_directions_are_checked_against_the_generator(tmp_path):
    generator = frozen(tiny_stylegan2())
    wrong = LatentDirections(torch.eye(8)[:1], ["x"], "sefa")
    with pytest.raises(ValueError, match="w_dim 8 but the generator's w_dim is 16"):
        wrong.check_generator(generator)
    path = LatentDirections(torch.eye(W_DIM)[:1], ["x"], "sefa", layers=[7]).save(
        tmp_path / "d.pt"
    )
    with pytest.raises(ValueError, match="layers \\[7\\] do not exist"):
        SavedDirections(path).find(None, 3, 16).check_generator(generator)
    with pytest.raises(FileNotFoundError, match="written by the attribute_editing"):
        LatentDirections.load(tmp_path / "missing.pt")


def test_run_refuses_empty_alphas_and_unknown_units(tmp_path):
    generator = frozen(tiny_stylegan2())
    method = _MethodOf(generator)
    with pytest.raises(ValueError, match="alphas is empty"):
        run_attribute_editing(method, torch.zeros(1, 3, 16, 16), 16, tmp_path, SeFa(), alphas=[])
    with pytest.raises(ValueError, match="alpha_unit='pixels'"):
        run_attribute_editing(
            method, torch.zeros(1, 3, 16, 16), 16, tmp_path, SeFa(), alpha_unit="pixels"
        )
