"""CelebA, FFHQ and ImageNet-patch datamodules and the tiling helpers, on the real shared data."""

import csv
import json
import os
import pickle
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from datamodules import (
    CelebADataModule,
    CorruptDataError,
    FFHQDataModule,
    ImageFolderDataset,
    ImageNetPatchesDataModule,
    PatchDataset,
)
from invgan.utils.tiling import PatchGrid, image_to_patches, patches_to_image

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
FACES_DIR = DATA / "faces"
NATURAL_DIR = DATA / "natural"
NATURAL_LABELS = DATA / "natural_labels.csv"

pytestmark = pytest.mark.skipif(
    not (FACES_DIR.is_dir() and NATURAL_LABELS.is_file()), reason="shared image data missing"
)


def shared_faces(count: int) -> list[Path]:
    """The first ``count`` shared face JPEGs, by name."""
    return sorted(FACES_DIR.glob("*.jpg"))[:count]


def as_tensor(image: Image.Image) -> torch.Tensor:
    """Independent conversion of an RGB PIL image to a (3, H, W) tensor in [0, 1]."""
    return torch.from_numpy(np.asarray(image, dtype=np.float32) / 255.0).permute(2, 0, 1)


def crop_resize_reference(path: Path, crop: int, resolution: int) -> torch.Tensor:
    """CelebA preprocessing done directly with PIL: centred square crop, Lanczos resize."""
    with Image.open(path) as image:
        rgb = image.convert("RGB")
    width, height = rgb.size
    side = min(crop, width, height)
    left, top = (width - side) // 2, (height - side) // 2
    square = rgb.crop((left, top, left + side, top + side))
    return as_tensor(square.resize((resolution, resolution), Image.Resampling.LANCZOS))


def shorter_side_reference(path: Path, size: int) -> torch.Tensor:
    """The image resized with PIL so its shorter side is ``size``, as a tensor."""
    with Image.open(path) as image:
        rgb = image.convert("RGB")
    scale = size / min(rgb.size)
    target = (round(rgb.width * scale), round(rgb.height * scale))
    return as_tensor(rgb.resize(target, Image.Resampling.LANCZOS))


def centre(image: torch.Tensor, size: int) -> torch.Tensor:
    """The centred ``size`` square of a (C, H, W) tensor."""
    top, left = (image.shape[1] - size) // 2, (image.shape[2] - size) // 2
    return image[:, top : top + size, left : left + size]


# --------------------------------------------------------------------------- CelebA

# 30 faces: partition codes in an interleaved order, so the split must follow the file.
CELEBA_CODES = [0, 0, 1, 0, 2, 0, 0, 1, 0, 0, 2, 0, 0, 0, 1, 0, 0, 2, 0, 0] + [0, 1] * 5


@pytest.fixture
def celeba_official(tmp_path: Path) -> Path:
    root = tmp_path / "celeba"
    images = root / "img_align_celeba"
    images.mkdir(parents=True)
    lines = []
    for path, code in zip(shared_faces(len(CELEBA_CODES)), CELEBA_CODES, strict=True):
        (images / path.name).symlink_to(path)
        lines.append(f"{path.name} {code}")
    (root / "list_eval_partition.txt").write_text("\n".join(lines) + "\n")
    return root


@pytest.mark.parametrize("nested", [False, True])
def test_celeba_official_split_follows_partition_file(
    celeba_official: Path, tmp_path: Path, nested: bool
) -> None:
    root = celeba_official
    if nested:  # torchvision's download layout: <root>/celeba/{img_align_celeba, partition}
        root = tmp_path / "outer"
        root.mkdir()
        celeba_official.rename(root / "celeba")
    datamodule = CelebADataModule(root, batch_size=4)
    datamodule.setup()
    faces = shared_faces(len(CELEBA_CODES))
    for code, dataset in enumerate(
        (datamodule.train_dataset, datamodule.val_dataset, datamodule.test_dataset)
    ):
        expected = [face.name for face, c in zip(faces, CELEBA_CODES, strict=True) if c == code]
        assert [Path(path).name for path in dataset.paths] == expected
    assert [len(datamodule.train_dataset), len(datamodule.val_dataset)] == [19, 8]
    assert len(datamodule.test_dataset) == 3
    item = datamodule.test_dataset[0]
    assert item.shape == (3, 64, 64) and item.dtype == torch.float32
    reference = crop_resize_reference(Path(datamodule.test_dataset.paths[0]), 140, 64)
    torch.testing.assert_close(item, reference, rtol=0, atol=0)


def test_celeba_crop_larger_than_image_takes_largest_square(celeba_official: Path) -> None:
    datamodule = CelebADataModule(celeba_official, resolution=32, crop_size=400, batch_size=4)
    datamodule.setup()
    path = Path(datamodule.val_dataset.paths[1])
    with Image.open(path) as image:
        assert max(image.size) < 400
    reference = crop_resize_reference(path, 400, 32)
    torch.testing.assert_close(datamodule.val_dataset[1], reference, rtol=0, atol=0)


def test_celeba_plain_folder_on_shared_faces() -> None:
    def build(seed: int) -> CelebADataModule:
        datamodule = CelebADataModule(
            FACES_DIR, resolution=32, val_fraction=0.1, test_fraction=0.05, hflip=True,
            batch_size=8, seed=seed,
        )  # fmt: skip
        datamodule.setup()
        return datamodule

    datamodule = build(seed=0)
    splits = (datamodule.train_dataset, datamodule.val_dataset, datamodule.test_dataset)
    assert [len(split) for split in splits] == [1700, 200, 100]
    assert len({path for split in splits for path in split.paths}) == 2000
    assert build(seed=0).test_dataset.paths == datamodule.test_dataset.paths
    assert build(seed=1).test_dataset.paths != datamodule.test_dataset.paths
    batch = next(iter(datamodule.train_dataloader()))
    assert batch.shape == (8, 3, 32, 32) and 0 <= batch.min() and batch.max() <= 1
    # Training images are flipped at random; validation and test are always the same.
    torch.manual_seed(0)
    reads = [datamodule.train_dataset[0] for _ in range(10)]
    assert any(torch.equal(r, reads[0].flip(-1)) for r in reads)
    assert any(torch.equal(r, reads[0]) for r in reads[1:])
    reference = crop_resize_reference(Path(datamodule.val_dataset.paths[0]), 140, 32)
    for _ in range(3):
        torch.testing.assert_close(datamodule.val_dataset[0], reference, rtol=0, atol=0)


@pytest.mark.parametrize(
    ("datamodule_class", "layout"),
    [
        (CelebADataModule, "img_align_celeba/*.jpg and list_eval_partition.txt"),
        (FFHQDataModule, "StyleGAN2-ADA"),
        (ImageNetPatchesDataModule, "train/<wnid>/*.JPEG"),
    ],
)
def test_missing_root_says_what_belongs_there(
    datamodule_class: type, layout: str, tmp_path: Path
) -> None:
    missing = tmp_path / "absent"
    with pytest.raises(FileNotFoundError) as info:
        datamodule_class(missing).setup()
    for expected in (str(missing), layout, "INVGAN_DATA_DIR", "absent/"):
        assert expected in str(info.value)


def test_celeba_errors_name_the_file(celeba_official: Path) -> None:
    partition = celeba_official / "list_eval_partition.txt"
    lines = partition.read_text().splitlines()
    (celeba_official / "img_align_celeba" / lines[6].split()[0]).unlink()
    with pytest.raises(FileNotFoundError, match="1 images listed") as info:
        CelebADataModule(celeba_official, batch_size=4).setup()
    assert str(partition) in str(info.value) and lines[6].split()[0] in str(info.value)

    partition.write_text("\n".join([*lines[:4], "", "182999.jpg 3", *lines[4:]]) + "\n")
    with pytest.raises(CorruptDataError, match="line 6") as info:
        CelebADataModule(celeba_official, batch_size=4).setup()
    assert str(partition) in str(info.value) and "182999.jpg 3" in str(info.value)

    partition.write_text("\n".join(line for line in lines if not line.endswith(" 2")))
    with pytest.raises(ValueError, match="no test images") as info:
        CelebADataModule(celeba_official, batch_size=4).setup()
    assert str(partition) in str(info.value)

    images = celeba_official / "img_align_celeba"
    images.rename(celeba_official / "elsewhere")
    with pytest.raises(FileNotFoundError, match="image folder") as info:
        CelebADataModule(celeba_official, batch_size=4).setup()
    assert str(images) in str(info.value)


# --------------------------------------------------------------------------- FFHQ


def write_face_zip(path: Path, faces: list[Path], labels: list | None) -> None:
    """A StyleGAN2-ADA style zip: images under 00000/, and dataset.json unless no labels."""
    names = [f"00000/{face.name}" for face in faces]
    with zipfile.ZipFile(path, "w") as archive:
        for face, name in zip(faces, names, strict=True):
            archive.write(face, name)
        if labels is not None:
            entries = [[name, label] for name, label in zip(names, labels, strict=True)]
            archive.writestr("dataset.json", json.dumps({"labels": entries}))


@pytest.fixture
def face_zip(tmp_path: Path) -> Path:
    path = tmp_path / "faces.zip"
    write_face_zip(path, shared_faces(20), [index % 3 for index in range(20)])
    return path


def test_ffhq_folder_of_shared_faces() -> None:
    datamodule = FFHQDataModule(FACES_DIR, resolution=32, test_fraction=0.01, batch_size=8)
    datamodule.setup()
    sizes = [len(d) for d in (datamodule.train_dataset, datamodule.val_dataset)]
    assert sizes + [len(datamodule.test_dataset)] == [1880, 100, 20]
    name = datamodule.test_dataset.paths[3]
    reference = ImageFolderDataset([FACES_DIR / name], resolution=32, channels=3)[0]
    torch.testing.assert_close(datamodule.test_dataset[3], reference, rtol=0, atol=0)
    assert next(iter(datamodule.train_dataloader())).shape == (8, 3, 32, 32)


def test_ffhq_zip_with_dataset_json_labels(face_zip: Path) -> None:
    datamodule = FFHQDataModule(
        face_zip, resolution=16, use_labels=True, val_fraction=0.2, test_fraction=0.1,
        batch_size=4, eval_batch_size=8,
    )  # fmt: skip
    datamodule.setup()
    assert [len(datamodule.train_dataset), len(datamodule.val_dataset)] == [14, 4]
    dataset = datamodule.val_dataset
    for index, name in enumerate(dataset.paths):
        image, label = dataset[index]
        position = [f"00000/{face.name}" for face in shared_faces(20)].index(name)
        assert label.dtype == torch.int64 and int(label) == position % 3
        reference = ImageFolderDataset([FACES_DIR / Path(name).name], 16, 3)[0]
        torch.testing.assert_close(image, reference, rtol=0, atol=0)
    images, labels = next(iter(datamodule.val_dataloader()))
    assert images.shape == (4, 3, 16, 16) and labels.shape == (4,)
    unlabelled = FFHQDataModule(face_zip, resolution=16, val_fraction=0.2, batch_size=4)
    unlabelled.setup()
    assert isinstance(unlabelled.val_dataset[0], torch.Tensor)


def test_ffhq_vector_labels(tmp_path: Path) -> None:
    path = tmp_path / "vectors.zip"
    write_face_zip(path, shared_faces(6), [[i, 0.5] for i in range(6)])
    datamodule = FFHQDataModule(path, resolution=8, use_labels=True, batch_size=2)
    datamodule.setup()
    _, label = datamodule.test_dataset[0]
    assert label.dtype == torch.float32 and label.shape == (2,) and label[1] == 0.5


def test_ffhq_zip_pickles_with_open_handle_and_loads_in_workers(
    face_zip: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    datamodule = FFHQDataModule(
        face_zip, resolution=16, val_fraction=0.4, batch_size=4, eval_batch_size=3, num_workers=2
    )
    datamodule.setup()
    dataset = datamodule.val_dataset
    first = dataset[0]
    assert dataset.archive._zipfile is not None  # opened by the read above
    clone = pickle.loads(pickle.dumps(dataset))
    assert clone.archive._zipfile is None
    assert torch.equal(clone[0], first)
    direct = torch.stack([dataset[i] for i in range(len(dataset))])
    batches = list(datamodule.val_dataloader())
    assert [len(batch) for batch in batches] == [3, 3, 2]
    assert torch.equal(torch.cat(batches), direct)
    # A forked worker inherits the parent's open handle; it must open its own instead.
    inherited = dataset.archive._zipfile
    monkeypatch.setattr(os, "getpid", lambda: -1)
    assert torch.equal(dataset[0], first) and dataset.archive._zipfile is not inherited


def test_ffhq_errors_name_the_file(face_zip: Path, tmp_path: Path) -> None:
    not_zip = tmp_path / "notes.zip"
    not_zip.write_text("not a zip")
    with pytest.raises(CorruptDataError, match=str(not_zip)):
        FFHQDataModule(not_zip).setup()

    faces = shared_faces(6)
    partial = tmp_path / "partial.zip"
    write_face_zip(partial, faces, [1, 2, 3, 4, 5, 6])
    with zipfile.ZipFile(partial, "a") as archive:  # an image without a label
        archive.write(shared_faces(7)[-1], "00000/extra.jpg")
    with pytest.raises(CorruptDataError, match="extra.jpg") as info:
        FFHQDataModule(partial, use_labels=True, batch_size=2).setup()
    assert f"{partial}/dataset.json" in str(info.value)

    folder = tmp_path / "folder"
    folder.mkdir()
    for face in faces:
        (folder / face.name).symlink_to(face)
    (folder / "dataset.json").write_text("{not json")
    with pytest.raises(CorruptDataError, match="malformed") as info:
        FFHQDataModule(folder, use_labels=True, batch_size=2).setup()
    assert str(folder / "dataset.json") in str(info.value)

    broken = tmp_path / "broken.zip"
    with zipfile.ZipFile(broken, "w") as archive:
        archive.writestr("00000/cut.jpg", faces[0].read_bytes()[:2000])
        for face in faces[1:]:
            archive.write(face, f"00000/{face.name}")
    datamodule = FFHQDataModule(broken, val_fraction=0, test_fraction=0, batch_size=2)
    datamodule.setup()
    cut = datamodule.train_dataset.paths.index("00000/cut.jpg")  # listing does not decode
    with pytest.raises(CorruptDataError, match="unreadable") as info:
        datamodule.train_dataset[cut]
    assert f"{broken}/00000/cut.jpg" in str(info.value)


# --------------------------------------------------------------------------- ImageNet patches


def natural_classes() -> dict[str, list[Path]]:
    """Shared natural images grouped by WordNet id, from natural_labels.csv."""
    classes: dict[str, list[Path]] = {}
    with open(NATURAL_LABELS, newline="") as handle:
        for row in csv.DictReader(handle):
            classes.setdefault(row["wnid"], []).append(DATA / row["filename"])
    return classes


@pytest.fixture(params=["class_folders", "flat"])
def ilsvrc_tree(tmp_path: Path, request: pytest.FixtureRequest) -> Path:
    """train/<wnid>/ with 4 images per class and val/ with 2 per class, as symlinks."""
    root = tmp_path / "imagenet"
    for wnid, paths in natural_classes().items():
        (root / "train" / wnid).mkdir(parents=True)
        for path in paths[:4]:
            (root / "train" / wnid / path.name).symlink_to(path)
        val = root / "val" / (wnid if request.param == "class_folders" else "")
        val.mkdir(parents=True, exist_ok=True)
        for path in paths[4:6]:
            (val / path.name).symlink_to(path)
    return root


def test_imagenet_ilsvrc_tree(ilsvrc_tree: Path) -> None:
    datamodule = ImageNetPatchesDataModule(
        ilsvrc_tree, image_size=48, val_fraction=0.1, batch_size=4
    )
    datamodule.setup()
    train, val, test = (datamodule.train_dataset, datamodule.val_dataset, datamodule.test_dataset)
    assert [len(train), len(val), len(test)] == [36, 4, 20]
    train_files = {p.name for p in (ilsvrc_tree / "train").rglob("*.JPEG")}
    assert {Path(p).name for p in train.paths + val.paths} == train_files
    val_files = {p.name for p in (ilsvrc_tree / "val").rglob("*.JPEG")}
    assert {Path(p).name for p in test.paths} == val_files
    assert {Path(p).parent.name for p in train.paths + val.paths} == set(natural_classes())
    assert train[0].shape == (3, 32, 32) and test[0].shape == (3, 32, 32)
    assert datamodule.resolution == 32 and datamodule.grid_size == 1


@pytest.fixture(scope="module")
def natural_patches() -> ImageNetPatchesDataModule:
    datamodule = ImageNetPatchesDataModule(
        NATURAL_DIR, patch_size=16, image_size=48, val_fraction=0.01, test_fraction=0.01,
        batch_size=8, eval_batch_size=4,
    )  # fmt: skip
    datamodule.setup()
    return datamodule


def test_imagenet_flat_folder_patches(natural_patches: ImageNetPatchesDataModule) -> None:
    datamodule = natural_patches
    train, val, test = (datamodule.train_dataset, datamodule.val_dataset, datamodule.test_dataset)
    assert [len(train), len(val), len(test)] == [980, 10, 10]
    assert (datamodule.resolution, datamodule.channels, datamodule.grid_size) == (16, 3, 3)
    batch = next(iter(datamodule.train_dataloader()))
    assert batch.shape == (8, 3, 16, 16) and 0 <= batch.min() and batch.max() <= 1
    # Validation and test items: the centred patch of the resized image, at every read.
    for dataset in (val, test):
        reference = centre(shorter_side_reference(Path(dataset.paths[2]), 48), 16)
        for _ in range(2):
            torch.testing.assert_close(dataset[2], reference, rtol=0, atol=0)
    # Training items: random 16 x 16 windows of the resized image.
    resized = shorter_side_reference(Path(train.paths[0]), 48)
    windows = resized.unfold(1, 16, 1).unfold(2, 16, 1).permute(1, 2, 0, 3, 4)
    windows = windows.reshape(-1, 3, 16, 16)
    torch.manual_seed(0)
    patches = [train[0] for _ in range(6)]
    positions = set()
    for patch in patches:
        matches = (windows == patch).flatten(1).all(1).nonzero().flatten().tolist()
        assert matches, "a training patch is not a window of the resized image"
        positions.add(matches[0])
    assert len(positions) > 1


def test_imagenet_grayscale_photo_becomes_rgb() -> None:
    gray = next(path for path in sorted(NATURAL_DIR.iterdir()) if Image.open(path).mode == "L")
    patch = PatchDataset([gray], image_size=40, resolution=24, channels=3)[0]
    assert patch.shape == (3, 24, 24)
    assert torch.equal(patch[0], patch[1]) and torch.equal(patch[1], patch[2])


def test_imagenet_tiled_test_images(natural_patches: ImageNetPatchesDataModule) -> None:
    datamodule = natural_patches
    tiled = datamodule.tiled_test_dataset
    assert len(tiled) == len(datamodule.test_dataset)
    reference = centre(shorter_side_reference(Path(tiled.paths[1]), 48), 48)
    torch.testing.assert_close(tiled[1], reference, rtol=0, atol=0)
    batch = next(iter(datamodule.tiled_test_dataloader()))
    assert batch.shape == (4, 3, 48, 48)
    patches, grid = image_to_patches(batch, 16)
    assert patches.shape == (4 * 9, 3, 16, 16) and grid == PatchGrid(3, 3, 48, 48)
    # With an odd grid the middle tile is exactly the test split's centred patch.
    for index in range(4):
        assert torch.equal(patches[index * 9 + 4], datamodule.test_dataset[index])
    assert torch.equal(patches_to_image(patches, 3), batch)


def test_imagenet_errors(tmp_path: Path) -> None:
    missing = tmp_path / "absent"
    with pytest.raises(ValueError, match="must equal patch_size"):
        ImageNetPatchesDataModule(missing, patch_size=32, resolution=64)
    with pytest.raises(ValueError, match="does not fit"):
        ImageNetPatchesDataModule(missing, patch_size=32, image_size=64, grid_size=3)
    (tmp_path / "train").mkdir()
    with pytest.raises(ValueError, match="No images") as info:
        ImageNetPatchesDataModule(tmp_path).setup()
    assert str(tmp_path / "train") in str(info.value)


# --------------------------------------------------------------------------- tiling


def test_tiling_round_trip_on_multiple_of_patch_size() -> None:
    images = torch.rand(2, 3, 64, 48, generator=torch.Generator().manual_seed(0))
    patches, grid = image_to_patches(images, 16)
    assert patches.shape == (2 * 4 * 3, 3, 16, 16) and grid == PatchGrid(4, 3, 64, 48)
    # Row-major within each image: patch k of image i is at rows k // cols, columns k % cols.
    assert torch.equal(patches[12 + 5], images[1, :, 16:32, 32:48])
    assert torch.equal(patches_to_image(patches, grid), images)
    square = images[:, :, :48, :]
    assert torch.equal(patches_to_image(image_to_patches(square, 16)[0], 3), square)


def test_tiling_pads_by_reflection_and_crops_back() -> None:
    images = torch.rand(2, 3, 50, 37, generator=torch.Generator().manual_seed(1))
    patches, grid = image_to_patches(images, 16)
    assert grid == PatchGrid(4, 3, 50, 37) and patches.shape == (24, 3, 16, 16)
    padded = F.pad(images, (0, 48 - 37, 0, 64 - 50), mode="reflect")
    assert torch.equal(patches[12 + 11], padded[1, :, 48:64, 32:48])
    assert torch.equal(padded[0, :, 50, :37], images[0, :, 48, :])  # mirrored, not repeated
    restored = patches_to_image(patches, grid)
    assert restored.shape == images.shape and torch.equal(restored, images)
    with pytest.raises(ValueError, match="too small"):
        image_to_patches(torch.zeros(1, 3, 5, 5), 16)
    with pytest.raises(ValueError, match="whole"):
        patches_to_image(patches[:-1], grid)


def test_patch_size_sets_the_networks_resolution(train_config) -> None:
    cfg = train_config("data=imagenet_patches", "data.patch_size=16")
    assert cfg.data.resolution == 16 and cfg.model.generator.resolution == 16
