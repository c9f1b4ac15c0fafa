"""Datamodules checked against independent reads of the real files in ../shared/data."""

import gzip
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf
from PIL import Image
from torch.utils.data import RandomSampler, SequentialSampler

from datamodules import (
    CorruptDataError,
    ImageFolderDataModule,
    ImageFolderDataset,
    MNISTDataModule,
    SyntheticDataModule,
)

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
MNIST_DIR = DATA / "mnist"
FACES_DIR = DATA / "faces"
MNIST_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)

needs_mnist = pytest.mark.skipif(
    not (MNIST_DIR / "t10k-images-idx3-ubyte.gz").is_file(), reason="shared MNIST data missing"
)
needs_faces = pytest.mark.skipif(not FACES_DIR.is_dir(), reason="shared faces data missing")


def reference_idx_images(path: Path) -> np.ndarray:
    """Independent reader: the images of a gzipped IDX file as (N, 28, 28) uint8."""
    with gzip.open(path, "rb") as handle:
        data = handle.read()
    return np.frombuffer(data, dtype=np.uint8, offset=16).reshape(-1, 28, 28)


def pixel_sum_and_count(dataset: torch.utils.data.Dataset) -> tuple[float, int]:
    """Sum of all pixels and pixel count of a dataset, read through its items."""
    loader = torch.utils.data.DataLoader(dataset, batch_size=5000)
    total = sum(batch.double().sum().item() for batch in loader)
    return total, len(dataset) * dataset[0].numel()


# --------------------------------------------------------------------------- MNIST


@pytest.fixture(scope="module")
def mnist() -> MNISTDataModule:
    datamodule = MNISTDataModule(MNIST_DIR, seed=0)
    datamodule.setup("fit")
    return datamodule


@needs_mnist
def test_mnist_split_sizes_and_items(mnist: MNISTDataModule) -> None:
    assert (len(mnist.train_dataset), len(mnist.val_dataset), len(mnist.test_dataset)) == (
        55_000,
        5_000,
        10_000,
    )
    for dataset in (mnist.train_dataset, mnist.val_dataset, mnist.test_dataset):
        item = dataset[0]
        assert isinstance(item, torch.Tensor)
        assert item.shape == (1, 28, 28) and item.dtype == torch.float32
        assert 0.0 <= item.min() and item.max() <= 1.0
    assert mnist.channels == 1 and mnist.resolution == 28 and mnist.batch_size == 64


@needs_mnist
def test_mnist_test_pixels_match_direct_read(mnist: MNISTDataModule) -> None:
    reference = reference_idx_images(MNIST_DIR / "t10k-images-idx3-ubyte.gz")
    assert len(reference) == 10_000
    for index in (0, 1, 9_999):
        expected = torch.from_numpy(reference[index].astype(np.float32) / 255.0)
        torch.testing.assert_close(mnist.test_dataset[index][0], expected, rtol=0, atol=1e-7)


@needs_mnist
def test_mnist_train_pixel_mean_matches_readme(mnist: MNISTDataModule) -> None:
    train_sum, train_count = pixel_sum_and_count(mnist.train_dataset)
    val_sum, val_count = pixel_sum_and_count(mnist.val_dataset)
    # README: mean 33.3184 / 255 over all 60,000 official training images.
    assert (train_sum + val_sum) / (train_count + val_count) == pytest.approx(0.130660, abs=2e-5)
    assert train_sum / train_count == pytest.approx(0.1307, abs=2e-3)


@needs_mnist
def test_mnist_split_is_deterministic_and_disjoint(mnist: MNISTDataModule) -> None:
    again = MNISTDataModule(MNIST_DIR, seed=0)
    again.setup()
    assert torch.equal(again.val_dataset.images, mnist.val_dataset.images)
    other = MNISTDataModule(MNIST_DIR, seed=1)
    other.setup()
    assert not torch.equal(other.val_dataset.images, mnist.val_dataset.images)
    # Train and val together are exactly the official training set (as a multiset of images).
    reference = reference_idx_images(MNIST_DIR / "train-images-idx3-ubyte.gz")
    combined = torch.cat([mnist.train_dataset.images, mnist.val_dataset.images])
    assert sorted(map(bytes, combined.numpy())) == sorted(map(bytes, reference))


@needs_mnist
def test_mnist_resolution_32_pads_with_black() -> None:
    datamodule = MNISTDataModule(MNIST_DIR, resolution=32)
    datamodule.setup()
    padded = datamodule.test_dataset[0]
    assert padded.shape == (1, 32, 32)
    reference = reference_idx_images(MNIST_DIR / "t10k-images-idx3-ubyte.gz")[0] / 255.0
    torch.testing.assert_close(padded[0, 2:30, 2:30], torch.from_numpy(reference).float())
    border = torch.ones(32, 32, dtype=torch.bool)
    border[2:30, 2:30] = False
    assert padded[0][border].abs().max() == 0.0


def test_mnist_rejects_bad_resolution_and_channels() -> None:
    with pytest.raises(ValueError, match=r"28, 32"):
        MNISTDataModule("unused", resolution=64)
    with pytest.raises(ValueError, match="channels must be 1"):
        MNISTDataModule("unused", channels=3)


@needs_mnist
def test_mnist_uncompressed_files_load(tmp_path: Path, mnist: MNISTDataModule) -> None:
    for name in MNIST_FILES:
        with gzip.open(MNIST_DIR / f"{name}.gz", "rb") as src:
            (tmp_path / name).write_bytes(src.read())
    datamodule = MNISTDataModule(tmp_path, val_size=100)
    datamodule.setup()
    assert len(datamodule.test_dataset) == 10_000
    assert torch.equal(datamodule.test_dataset[5], mnist.test_dataset[5])


@needs_mnist
def test_mnist_torchvision_raw_layout(tmp_path: Path) -> None:
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for name in MNIST_FILES:
        shutil.copy(MNIST_DIR / f"{name}.gz", raw)
    datamodule = MNISTDataModule(tmp_path, val_size=100)
    datamodule.setup()
    assert (len(datamodule.train_dataset), len(datamodule.test_dataset)) == (59_900, 10_000)


def test_mnist_missing_files_message(tmp_path: Path) -> None:
    datamodule = MNISTDataModule(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError) as info:
        datamodule.setup()
    message = str(info.value)
    for expected in (*MNIST_FILES, str(tmp_path / "nowhere"), "MNIST/raw", "Place the files"):
        assert expected in message
    for expected in ("data.download=true", "INVGAN_DATA_DIR", "paths.data_dir", "mnist/"):
        assert expected in message


@needs_mnist
def _write_idx_images(path: Path, images: np.ndarray, declared: int | None = None) -> None:
    count = len(images) if declared is None else declared
    header = np.array([0x00000803, count, 28, 28], dtype=">u4").tobytes()
    path.write_bytes(header + images.tobytes())


def _write_idx_labels(path: Path, count: int) -> None:
    header = np.array([0x00000801, count], dtype=">u4").tobytes()
    path.write_bytes(header + bytes(count))


@needs_mnist
def test_mnist_truncated_or_bad_magic_idx_names_file(tmp_path: Path) -> None:
    images = reference_idx_images(MNIST_DIR / "t10k-images-idx3-ubyte.gz")[:200]
    for prefix in ("train", "t10k"):
        _write_idx_images(tmp_path / f"{prefix}-images-idx3-ubyte", images)
        _write_idx_labels(tmp_path / f"{prefix}-labels-idx1-ubyte", len(images))
    datamodule = MNISTDataModule(tmp_path, val_size=50)
    datamodule.setup()  # the well-formed small files load
    assert len(datamodule.train_dataset) == 150

    truncated = tmp_path / "t10k-images-idx3-ubyte"
    _write_idx_images(truncated, images[:100], declared=200)
    with pytest.raises(CorruptDataError, match="truncated") as info:
        MNISTDataModule(tmp_path, val_size=50).setup()
    assert str(truncated) in str(info.value)

    labels = tmp_path / "t10k-labels-idx1-ubyte"
    _write_idx_images(truncated, images)
    shutil.copy(truncated, labels)  # an images file where a labels file belongs
    with pytest.raises(CorruptDataError, match="magic") as info:
        MNISTDataModule(tmp_path, val_size=50).setup()
    assert str(labels) in str(info.value)


# --------------------------------------------------------------------------- image folder


@pytest.fixture
def faces(tmp_path: Path) -> Path:
    folder = tmp_path / "faces"
    (folder / "nested").mkdir(parents=True)
    for index, path in enumerate(sorted(FACES_DIR.glob("*.jpg"))[:12]):
        shutil.copy(path, folder / ("nested" if index % 3 == 0 else "") / path.name)
    return folder


@needs_faces
@pytest.mark.parametrize("channels", [3, 1])
def test_image_folder_on_real_faces(faces: Path, channels: int) -> None:
    datamodule = ImageFolderDataModule(
        faces, resolution=32, channels=channels, val_fraction=0.1, test_fraction=0.1, batch_size=4
    )
    datamodule.setup()
    sizes = [len(d) for d in (datamodule.train_dataset, datamodule.val_dataset)]
    assert sizes + [len(datamodule.test_dataset)] == [10, 1, 1]
    all_paths = (
        datamodule.train_dataset.paths
        + datamodule.val_dataset.paths
        + datamodule.test_dataset.paths
    )
    assert len(set(all_paths)) == 12 and any("nested" in path for path in all_paths)
    for index in range(3):
        item = datamodule.train_dataset[index]
        assert item.shape == (channels, 32, 32) and item.dtype == torch.float32
        assert 0.0 <= item.min() and item.max() <= 1.0 and item.std() > 0.05
    batch = next(iter(datamodule.train_dataloader()))
    assert batch.shape == (4, channels, 32, 32)
    same = ImageFolderDataModule(
        faces, resolution=32, channels=channels, val_fraction=0.1, test_fraction=0.1, batch_size=4
    )
    same.setup()
    assert same.val_dataset.paths == datamodule.val_dataset.paths


@needs_faces
def test_image_folder_resize_matches_pil_reference(faces: Path) -> None:
    path = sorted(faces.glob("*.jpg"))[0]
    with Image.open(path) as image:
        rgb = image.convert("RGB")
    width, height = rgb.size
    scale = 32 / min(width, height)
    resized = rgb.resize((round(width * scale), round(height * scale)), Image.Resampling.LANCZOS)
    left, top = (resized.width - 32) // 2, (resized.height - 32) // 2
    expected = np.asarray(resized.crop((left, top, left + 32, top + 32)), dtype=np.float32)
    item = ImageFolderDataset([path], resolution=32, channels=3)[0]
    torch.testing.assert_close(item, torch.from_numpy(expected / 255.0).permute(2, 0, 1))


def test_image_folder_converts_modes(tmp_path: Path) -> None:
    gray = np.tile(np.linspace(0, 255, 40, dtype=np.uint8), (40, 1))
    Image.fromarray(gray, "L").save(tmp_path / "gray.png")
    rgba = np.zeros((40, 40, 4), dtype=np.uint8)
    rgba[..., 0] = 200  # red everywhere, but only the left half is opaque
    rgba[:, :20, 3] = 255
    Image.fromarray(rgba, "RGBA").save(tmp_path / "rgba.png")
    deep = Image.fromarray(gray.astype(np.uint16) * 257)  # 16-bit grayscale, full range
    assert deep.mode == "I;16"
    deep.save(tmp_path / "deep.png")
    Image.fromarray(gray, "L").convert("P").save(tmp_path / "palette.png")
    Image.fromarray(rgba[..., :3].copy(), "RGB").convert("CMYK").save(tmp_path / "cmyk.jpg")

    def item(name: str, channels: int = 3) -> torch.Tensor:
        return ImageFolderDataset([tmp_path / name], resolution=20, channels=channels)[0]

    expected_gray = np.asarray(Image.fromarray(gray, "L").resize((20, 20), Image.LANCZOS)) / 255
    for name in ("gray.png", "deep.png", "palette.png"):
        rgb = item(name)
        assert rgb.shape == (3, 20, 20)
        assert torch.equal(rgb[0], rgb[1]) and torch.equal(rgb[1], rgb[2])
        torch.testing.assert_close(
            rgb[0].double(), torch.from_numpy(expected_gray), atol=0.01, rtol=0
        )
        assert item(name, channels=1).shape == (1, 20, 20)
    red = item("rgba.png")
    assert red[0, :, :8].min() > 0.75 and red[1:].abs().max() < 0.01
    assert red[:, :, 12:].abs().max() < 0.01  # transparent half composited over black
    cmyk = item("cmyk.jpg")
    assert cmyk.shape == (3, 20, 20) and cmyk[0, :, :8].mean() > 0.7


@needs_faces
def test_image_folder_unreadable_files_name_the_path(faces: Path) -> None:
    empty = faces / "zero.png"
    empty.touch()
    truncated = faces / "truncated.jpg"
    truncated.write_bytes(next(FACES_DIR.glob("*.jpg")).read_bytes()[:3000])
    for bad in (empty, truncated):
        dataset = ImageFolderDataset([bad], resolution=16, channels=3)  # listing is fine
        with pytest.raises(CorruptDataError, match="unreadable") as info:
            dataset[0]
        assert str(bad) in str(info.value)


@needs_faces
def test_image_folder_hflip_train_only_and_workers(faces: Path) -> None:
    datamodule = ImageFolderDataModule(
        faces, resolution=16, val_fraction=0.2, test_fraction=0.2, hflip=True, batch_size=4
    )
    datamodule.setup()
    torch.manual_seed(0)
    reads = [datamodule.train_dataset[0] for _ in range(12)]
    assert any(torch.equal(r, reads[0].flip(-1)) for r in reads)
    assert any(torch.equal(r, reads[0]) for r in reads[1:])
    val = [datamodule.val_dataset[0] for _ in range(6)]
    assert all(torch.equal(v, val[0]) for v in val)
    # Worker processes receive a pickled dataset and read the files themselves.
    multi = ImageFolderDataModule(faces, resolution=16, batch_size=4, num_workers=1)
    multi.setup()
    assert [b.shape for b in multi.val_dataloader()] == [(1, 3, 16, 16)]
    # DataLoader workers re-raise an error as type(error)(message); a worker test of this
    # costs torch's 5 s shutdown timeout, so check the constructor contract instead.
    rebuilt = pickle.loads(pickle.dumps(CorruptDataError("Image file x.png is unreadable")))
    assert isinstance(rebuilt, ValueError) and "x.png" in str(CorruptDataError(str(rebuilt)))


def test_image_folder_missing_root_and_no_images(tmp_path: Path) -> None:
    missing = tmp_path / "absent"
    with pytest.raises(FileNotFoundError, match=str(missing)):
        ImageFolderDataModule(missing, resolution=16).setup()
    (tmp_path / "notes.txt").write_text("not an image")
    with pytest.raises(ValueError) as info:
        ImageFolderDataModule(tmp_path, resolution=16).setup()
    assert str(tmp_path) in str(info.value) and ".png" in str(info.value)


# --------------------------------------------------------------------------- synthetic


def test_synthetic_shapes_range_and_determinism() -> None:
    datamodule = SyntheticDataModule(num_train=32, num_val=8, num_test=8, channels=3, seed=3)
    datamodule.setup()
    item = datamodule.train_dataset[0]
    assert item.shape == (3, 16, 16) and item.dtype == torch.float32
    images = datamodule.train_dataset.images
    assert images.min() >= 0 and images.max() <= 1 and images.max() > 0.4
    assert images[..., 0, :].mean() < images[..., 8, :].mean()  # blobs away from the border
    same = SyntheticDataModule(num_train=32, num_val=8, num_test=8, channels=3, seed=3)
    same.setup()
    assert torch.equal(same.train_dataset.images, images)
    assert torch.equal(same.test_dataset.images, datamodule.test_dataset.images)
    other = SyntheticDataModule(num_train=32, num_val=8, num_test=8, channels=3, seed=4)
    other.setup()
    assert not torch.equal(other.train_dataset.images, images)
    assert not torch.equal(datamodule.val_dataset.images, datamodule.test_dataset.images[:8])


# --------------------------------------------------------------------------- loaders


def test_loaders_batches_order_and_drop_last() -> None:
    datamodule = SyntheticDataModule(num_train=40, num_val=10, batch_size=16, eval_batch_size=4)
    datamodule.setup("validate")
    first = datamodule.train_dataset
    datamodule.setup("fit")  # a second call keeps the same datasets
    assert datamodule.train_dataset is first
    train = datamodule.train_dataloader()
    assert isinstance(train.sampler, RandomSampler) and train.drop_last
    assert [b.shape for b in train] == [(16, 1, 16, 16)] * 2
    val = datamodule.val_dataloader()
    assert isinstance(val.sampler, SequentialSampler) and not val.drop_last
    batches = list(val)
    assert [len(b) for b in batches] == [4, 4, 2]
    assert torch.equal(torch.cat(batches), datamodule.val_dataset.images)
    assert datamodule.test_dataloader().batch_size == 4
    assert not train.persistent_workers
    workers = SyntheticDataModule(num_workers=1)
    workers.setup()
    assert workers.train_dataloader().persistent_workers


def test_dataset_smaller_than_a_batch_is_an_error() -> None:
    with pytest.raises(ValueError, match=r"8 images.*batch_size=16"):
        SyntheticDataModule(num_train=8, batch_size=16).setup()


def test_loader_before_setup_is_an_error() -> None:
    with pytest.raises(RuntimeError, match="setup"):
        SyntheticDataModule().train_dataloader()


@needs_faces
def test_datamodules_pickle(faces: Path) -> None:
    for datamodule in (
        SyntheticDataModule(),
        ImageFolderDataModule(faces, resolution=16, batch_size=2, val_fraction=0.2),
    ):
        datamodule.setup()
        clone = pickle.loads(pickle.dumps(datamodule))
        assert torch.equal(clone.val_dataset[0], datamodule.val_dataset[0])


# --------------------------------------------------------------------------- configs


@pytest.mark.parametrize(
    "name", ["mnist", "image_folder", "synthetic", "celeba", "ffhq", "imagenet_patches"]
)
def test_data_configs_instantiate(name: str, tmp_path: Path) -> None:
    data = OmegaConf.load(REPO / "conf" / "data" / f"{name}.yaml")
    assert {"resolution", "channels", "batch_size", "eval_batch_size"} <= set(data)
    paths = {"data_dir": str(tmp_path), "output_dir": str(tmp_path / "run")}
    cfg = OmegaConf.create({"paths": paths, "seed": 7, "data": data})
    datamodule = instantiate(cfg.data)
    assert datamodule.resolution == cfg.data.resolution
    assert datamodule.channels == cfg.data.channels
    assert datamodule.seed == 7
    if name != "synthetic":
        assert Path(datamodule.root).parent == tmp_path


@needs_mnist
def test_mnist_config_loads_shared_data() -> None:
    data = OmegaConf.load(REPO / "conf" / "data" / "mnist.yaml")
    cfg = OmegaConf.create({"paths": {"data_dir": str(DATA)}, "seed": 0, "data": data})
    datamodule = instantiate(cfg.data)
    assert (datamodule.resolution, datamodule.channels, datamodule.batch_size) == (28, 1, 64)
    assert datamodule.root == MNIST_DIR
