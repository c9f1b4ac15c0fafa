"""Bad input data, fed for real through the composed data configs: each case gives an error that
names the problem and the fix, or (`data.on_bad_file=skip`) a counted, logged recovery."""

from __future__ import annotations

import json
import logging
import pickle
import re
import struct
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra.errors import InstantiationException
from PIL import Image, ImageFile
from torch.utils.data import DataLoader

from datamodules.bad_files import BadFilePolicy, skipped_files
from datamodules.base import ImageDataModule
from datamodules.errors import CorruptDataError, OversizedImageError
from datamodules.image_files import DEFAULT_MAX_IMAGE_PIXELS, read_image
from datamodules.image_folder import ImageFolderDataset
from invgan.image_inputs import load_images
from invgan.utils.instantiate import instantiate_datamodule
from tests.conftest import compose_config

IMAGE_DATA = ["image_folder", "celeba", "ffhq", "imagenet_patches"]
# Small enough for 16-px items; imagenet_patches cuts 8-px patches from 16-px images.
TINY = {
    "image_folder": ["data.resolution=16"],
    "celeba": ["data.resolution=16"],
    "ffhq": ["data.resolution=16"],
    "imagenet_patches": ["data.patch_size=8", "data.image_size=16"],
}


def datamodule_from_config(
    tmp_path: Path, data: str, root: Path, *overrides: str, setup: bool = True
) -> ImageDataModule:
    """conf/data/<data>.yaml with ``root``, batches of 2, the whole folder as training split
    (unless overridden) and the run folder tmp_path/run."""
    cfg = compose_config(
        "train",
        [
            f"data={data}",
            f"data.root={root}",
            *TINY[data],
            "data.batch_size=2",
            "data.val_fraction=0",
            "data.test_fraction=0",
            *overrides,
        ],
        tmp_path / "run",
    )
    datamodule = instantiate_datamodule(cfg.data)
    if setup:
        datamodule.setup()
    return datamodule


def write_images(folder: Path, count: int, size: tuple[int, int] = (24, 20)) -> list[Path]:
    """``count`` random RGB PNGs named good_<i>.png of ``size`` (width, height)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    paths = [folder / f"good_{index}.png" for index in range(count)]
    for path in paths:
        pixels = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
        Image.fromarray(pixels).save(path)
    return paths


def truncated_jpeg(path: Path) -> Path:
    """A real JPEG with the second half of its bytes cut off."""
    pixels = np.random.default_rng(1).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path, quality=95)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    return path


def zero_byte_png(path: Path) -> Path:
    """An empty file named .png."""
    path.touch()
    return path


def text_named_png(path: Path) -> Path:
    """A text file named .png."""
    path.write_text("this is not an image\n")
    return path


def folder_with_two_bad_files(folder: Path) -> list[str]:
    """8 good PNGs plus a zero-byte PNG (sorted first) and a truncated JPEG (sorted last)."""
    write_images(folder, 8)
    bad = [zero_byte_png(folder / "empty.png"), truncated_jpeg(folder / "zz_truncated.jpg")]
    return [str(path) for path in bad]


# --------------------------------------------------------------------------- on_bad_file=skip


@pytest.mark.parametrize("workers", [0, 2], ids=["main_process", "two_workers"])
def test_skip_keeps_batches_full_and_lists_each_bad_file(tmp_path: Path, workers: int) -> None:
    bad = folder_with_two_bad_files(tmp_path / "images")
    skip = ["data.on_bad_file=skip", f"data.num_workers={workers}"]
    datamodule = datamodule_from_config(tmp_path, "image_folder", tmp_path / "images", *skip)
    # A file handler, unlike pytest's caplog, also receives what forked workers log.
    warnings = tmp_path / "warnings.log"
    handler = logging.FileHandler(warnings)
    logger = logging.getLogger("datamodules.bad_files")
    logger.addHandler(handler)
    # Two epochs (each train_dataloader() starts new workers), then a second datamodule that
    # stands for another DDP rank or a resumed run: none may report the files again.
    again = datamodule_from_config(tmp_path, "image_folder", tmp_path / "images", *skip)
    try:
        for source in (datamodule, datamodule, again):
            batches = list(source.train_dataloader())
            assert [batch.shape for batch in batches] == [(2, 3, 16, 16)] * 5  # all 10 served
            assert all(torch.isfinite(batch).all() and batch.std() > 0.1 for batch in batches)
    finally:
        logger.removeHandler(handler)
        handler.close()
    log_file = tmp_path / "run" / "bad_files.txt"  # data.bad_files_log: in the run folder
    assert sorted(skipped_files(log_file)) == sorted(bad)  # the count: 2 distinct files
    logged = warnings.read_text()
    assert all(f"Skipping unreadable image {name}" in logged for name in bad)
    if workers == 0:  # no concurrent workers: exactly one line and one warning per file
        assert sorted(log_file.read_text().splitlines()) == sorted(bad)
        assert logged.count("Skipping unreadable") == 2 and "2 skipped so far" in logged


def test_skip_substitute_is_the_next_readable_image(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder_with_two_bad_files(tmp_path / "images")
    datamodule = datamodule_from_config(
        tmp_path,
        "image_folder",
        tmp_path / "images",
        "data.on_bad_file=skip",
        "data.bad_files_log=null",
    )
    train = datamodule.train_dataset
    names = [Path(path).name for path in train.paths]
    assert names[0] == "empty.png" and names[-1] == "zz_truncated.jpg"
    good_0 = train[names.index("good_0.png")]
    with caplog.at_level(logging.WARNING, logger="datamodules.bad_files"):
        assert torch.equal(train[0], good_0)  # the next index
        assert torch.equal(train[len(train) - 1], good_0)  # wraps around, past empty.png
        assert torch.equal(train[0], good_0)  # the same every time, warned about once
    warned = [record.getMessage() for record in caplog.records]
    assert len(warned) == 2 and "2 skipped so far" in warned[1]
    clone = pickle.loads(pickle.dumps(datamodule))  # as DDP spawn and spawned workers get it
    assert torch.equal(clone.train_dataset[0], good_0) and clone.train_dataset.bad_files.skip
    assert not (tmp_path / "run" / "bad_files.txt").exists()  # bad_files_log=null: warnings only


def test_skip_with_no_readable_image_is_an_error(tmp_path: Path) -> None:
    folder = tmp_path / "images"
    folder.mkdir()
    zero_byte_png(folder / "a.png")
    text_named_png(folder / "b.png")
    datamodule = datamodule_from_config(tmp_path, "image_folder", folder, "data.on_bad_file=skip")
    with pytest.raises(CorruptDataError, match="None of the 2 images"):
        datamodule.train_dataset[0]
    assert len(skipped_files(tmp_path / "run" / "bad_files.txt")) == 2


def test_skip_in_a_zip_keeps_each_image_with_its_own_label(tmp_path: Path) -> None:
    archive = tmp_path / "faces.zip"
    sources = write_images(tmp_path / "sources", 6)
    names = [f"00000/img_{index}.png" for index in range(7)]
    with zipfile.ZipFile(archive, "w") as handle:
        for source, name in zip(sources, names, strict=False):
            handle.write(source, name)
        handle.writestr(names[6], b"")  # a zero-byte member, the last one
        labels = [[name, index] for index, name in enumerate(names)]
        handle.writestr("dataset.json", json.dumps({"labels": labels}))
    datamodule = datamodule_from_config(
        tmp_path, "ffhq", archive, "data.use_labels=true", "data.on_bad_file=skip"
    )
    train = datamodule.train_dataset
    assert train.paths == names
    for index in range(6):
        assert int(train[index][1]) == index
    image, label = train[6]  # wraps around to the first member, with that member's label
    assert int(label) == 0 and torch.equal(image, train[0][0])
    assert skipped_files(tmp_path / "run" / "bad_files.txt") == [f"{archive}/{names[6]}"]


# --------------------------------------------------------------------------- on_bad_file=fail


@pytest.mark.parametrize(
    "make_bad", [truncated_jpeg, zero_byte_png, text_named_png], ids=lambda make: make.__name__
)
def test_fail_names_the_file_and_the_fix(tmp_path: Path, make_bad: Callable[[Path], Path]) -> None:
    write_images(tmp_path / "images", 3)
    suffix = ".jpg" if make_bad is truncated_jpeg else ".png"
    bad = make_bad(tmp_path / "images" / f"bad{suffix}")
    datamodule = datamodule_from_config(tmp_path, "image_folder", tmp_path / "images")
    with pytest.raises(CorruptDataError, match="unreadable") as error:
        list(datamodule.train_dataloader())
    assert str(bad) in str(error.value) and "data.on_bad_file=skip" in str(error.value)
    assert not (tmp_path / "run" / "bad_files.txt").exists()


def test_unknown_policy_names_the_key_and_the_choices(tmp_path: Path) -> None:
    write_images(tmp_path / "images", 2)
    with pytest.raises(InstantiationException) as error:
        datamodule_from_config(
            tmp_path, "image_folder", tmp_path / "images", "data.on_bad_file=wrong", setup=False
        )
    assert "data.on_bad_file='wrong'" in str(error.value) and "fail, skip" in str(error.value)


# --------------------------------------------------------------------------- image contents


@pytest.mark.parametrize("channels", [3, 1])
def test_unusual_modes_become_the_configured_channels(tmp_path: Path, channels: int) -> None:
    folder = tmp_path / "images"
    folder.mkdir()
    size = (24, 20)
    Image.new("L", size, 100).save(folder / "a_gray.png")
    Image.new("RGBA", size, (200, 40, 10, 128)).save(folder / "b_rgba.png")  # half transparent
    Image.fromarray(np.full(size[::-1], 60 * 257, np.uint16)).save(folder / "c_16bit.png")
    Image.new("RGB", size, (20, 120, 220)).convert("CMYK").save(folder / "d_cmyk.jpg", quality=100)
    palette = Image.new("P", size, 3)
    palette.putpalette([0, 0, 0] * 3 + [30, 160, 90] + [0, 0, 0] * 252)
    palette.save(folder / "e_palette.png")
    Image.new("1", size, 1).save(folder / "f_bilevel.png")
    modes = {"a_gray": "L", "b_rgba": "RGBA", "c_16bit": "I;16", "d_cmyk": "CMYK"}
    for name, mode in {**modes, "e_palette": "P", "f_bilevel": "1"}.items():
        with Image.open(next(folder.glob(f"{name}.*"))) as image:
            assert image.mode == mode
    # Transparency is composited over black: 128/255 of (200, 40, 10).
    expected_rgb = [(100, 100, 100), (100, 20, 5), (60, 60, 60), (20, 120, 220), (30, 160, 90)]
    expected_rgb.append((255, 255, 255))
    datamodule = datamodule_from_config(
        tmp_path, "image_folder", folder, f"data.channels={channels}", "data.batch_size=6"
    )
    batch = next(iter(DataLoader(datamodule.train_dataset, batch_size=6)))
    assert batch.shape == (6, channels, 16, 16)
    assert (batch.amax(dim=(2, 3)) - batch.amin(dim=(2, 3))).max() < 2 / 255  # still flat
    rgb = torch.tensor(expected_rgb, dtype=torch.float32)
    luma = (rgb @ torch.tensor([0.299, 0.587, 0.114])).unsqueeze(1)  # ITU-R 601, as PIL's "L"
    expected = (rgb if channels == 3 else luma) / 255
    torch.testing.assert_close(batch.mean(dim=(2, 3)), expected, atol=1.5 / 255, rtol=0)


@pytest.mark.parametrize("data", IMAGE_DATA)
def test_images_smaller_than_the_resolution_are_upsampled(tmp_path: Path, data: str) -> None:
    sources = write_images(tmp_path / "images", 4, size=(7, 5))
    datamodule = datamodule_from_config(tmp_path, data, tmp_path / "images")
    batch = next(iter(datamodule.train_dataloader()))
    side = 8 if data == "imagenet_patches" else 16
    assert batch.shape == (2, 3, side, side)
    if data == "image_folder":  # shorter side 5 -> 16 px (Lanczos), then the centred square
        with Image.open(sources[0]) as image:
            resized = image.convert("RGB").resize((22, 16), Image.Resampling.LANCZOS)
        reference = np.asarray(resized.crop((3, 0, 19, 16)), dtype=np.float32) / 255
        item = datamodule.train_dataset[0]
        torch.testing.assert_close(item, torch.from_numpy(reference).permute(2, 0, 1))


# --------------------------------------------------------------------------- layout errors


@pytest.mark.parametrize("data", IMAGE_DATA)
def test_missing_root_names_the_folder_and_the_fix(tmp_path: Path, data: str) -> None:
    missing = tmp_path / "absent"
    with pytest.raises(FileNotFoundError) as error:
        datamodule_from_config(tmp_path, data, missing)
    assert str(missing) in str(error.value) and "Set data.root=" in str(error.value)


@pytest.mark.parametrize("data", IMAGE_DATA)
def test_empty_folder_names_the_folder_and_the_fix(tmp_path: Path, data: str) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("no images here")
    with pytest.raises(ValueError, match="No images found") as error:
        datamodule_from_config(tmp_path, data, empty)
    assert str(empty) in str(error.value) and "add images there" in str(error.value)


def test_split_smaller_than_a_batch_names_the_sizes(tmp_path: Path) -> None:
    write_images(tmp_path / "images", 3)
    with pytest.raises(ValueError, match=r"3 images, fewer than one.*batch_size=4") as error:
        datamodule_from_config(tmp_path, "image_folder", tmp_path / "images", "data.batch_size=4")
    assert "smaller data.batch_size" in str(error.value)


def test_celeba_without_partition_file_says_where_it_goes(tmp_path: Path) -> None:
    images = tmp_path / "celeba" / "img_align_celeba"
    write_images(images, 4)
    with pytest.raises(FileNotFoundError) as error:
        datamodule_from_config(tmp_path, "celeba", tmp_path / "celeba")
    message = str(error.value)
    assert str(tmp_path / "celeba" / "list_eval_partition.txt") in message
    assert f"data.root={images}" in message
    # The suggested fix works: the image folder itself is split by data.seed.
    datamodule = datamodule_from_config(tmp_path, "celeba", images)
    assert len(datamodule.train_dataset) == 4


def test_ffhq_zip_without_dataset_json(tmp_path: Path) -> None:
    archive = tmp_path / "faces.zip"
    with zipfile.ZipFile(archive, "w") as handle:
        for path in write_images(tmp_path / "sources", 4):
            handle.write(path, f"00000/{path.name}")
    datamodule = datamodule_from_config(tmp_path, "ffhq", archive)  # unconditional: fine
    assert next(iter(datamodule.train_dataloader())).shape == (2, 3, 16, 16)
    with pytest.raises(ValueError, match="data.use_labels=true") as error:
        datamodule_from_config(tmp_path, "ffhq", archive, "data.use_labels=true")
    assert f"{archive}/dataset.json" in str(error.value)
    assert "data.use_labels=false" in str(error.value)


def test_imagenet_tree_without_val_names_the_missing_folder(tmp_path: Path) -> None:
    write_images(tmp_path / "imagenet" / "train" / "n01440764", 4)
    with pytest.raises(FileNotFoundError) as error:
        datamodule_from_config(tmp_path, "imagenet_patches", tmp_path / "imagenet")
    assert str(tmp_path / "imagenet" / "val") in str(error.value)
    assert "data.root" in str(error.value)


def test_indexing_past_the_end_is_an_index_error_even_when_skipping(tmp_path):
    # `list(dataset)` iterates by index until IndexError: skipping must not wrap it around.
    folder = tmp_path / "three"
    folder.mkdir()
    for index in range(3):
        Image.new("RGB", (12, 12), (index * 40, 0, 0)).save(folder / f"{index}.png")
    (folder / "3_empty.png").touch()
    dataset = ImageFolderDataset(sorted(folder.iterdir()), resolution=8, channels=3)
    dataset.bad_files = BadFilePolicy("skip", None)
    assert len(list(dataset)) == 4
    with pytest.raises(IndexError):
        dataset[4]


# --------------------------------------------------------------------------- oversized images


def strip_png(path: Path, length: int = 300_000) -> Path:
    """A valid 1 x ``length`` grayscale PNG: under 1 KB on disk; resizing its 1-px side to the
    resolution would make a 16 x 4,800,000 image (230 MB) at 16 px, gigabytes at 64 px."""
    Image.new("L", (1, length), 128).save(path)
    return path


def header_only_png(path: Path, width: int, height: int) -> Path:
    """A PNG whose header declares ``width`` x ``height`` pixels, followed by a few bytes of
    image data: the shape of a decompression bomb, which only the header check can stop."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit grayscale
    data = zlib.compress(bytes(width + 1))  # one row of the many declared
    png = (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", data) + chunk(b"IEND", b"")
    )
    path.write_bytes(png)
    return path


@pytest.fixture
def decoded_sizes(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, int]]:
    """The sizes of all images whose pixels PIL decodes during the test."""
    sizes: list[tuple[int, int]] = []
    load = ImageFile.ImageFile.load

    def recording_load(image: ImageFile.ImageFile) -> object:
        sizes.append(image.size)
        return load(image)

    monkeypatch.setattr(ImageFile.ImageFile, "load", recording_load)
    return sizes


@pytest.mark.parametrize("data", IMAGE_DATA)
def test_strip_image_is_refused_before_decoding(
    tmp_path: Path, data: str, decoded_sizes: list[tuple[int, int]]
) -> None:
    write_images(tmp_path / "images", 3)
    strip = strip_png(tmp_path / "images" / "strip.png")
    datamodule = datamodule_from_config(tmp_path, data, tmp_path / "images", "data.batch_size=4")
    with pytest.raises(OversizedImageError) as error:
        list(datamodule.train_dataloader())
    message = str(error.value)
    assert f"Image file {strip} is 1x300000 pixels" in message
    assert "data.max_aspect_ratio=50" in message and "data.on_bad_file=skip" in message
    assert (24, 20) in decoded_sizes and (1, 300_000) not in decoded_sizes


def test_skip_replaces_oversized_images_and_lists_them(
    tmp_path: Path, decoded_sizes: list[tuple[int, int]]
) -> None:
    write_images(tmp_path / "images", 4)
    strip = strip_png(tmp_path / "images" / "strip.png")
    # 30,000 x 30,000 is above the default pixel limit, below PIL's own error threshold.
    bomb = header_only_png(tmp_path / "images" / "bomb.png", 30_000, 30_000)
    assert DEFAULT_MAX_IMAGE_PIXELS < 30_000**2 < 2 * DEFAULT_MAX_IMAGE_PIXELS
    datamodule = datamodule_from_config(
        tmp_path, "image_folder", tmp_path / "images", "data.on_bad_file=skip"
    )
    batches = list(datamodule.train_dataloader())
    assert [batch.shape for batch in batches] == [(2, 3, 16, 16)] * 3  # all 6 items served
    assert sorted(skipped_files(tmp_path / "run" / "bad_files.txt")) == sorted(
        [str(bomb), str(strip)]
    )
    assert set(decoded_sizes) == {(24, 20)}  # neither refused image was decoded


def test_configured_limits_are_applied_and_checked(tmp_path: Path) -> None:
    write_images(tmp_path / "images", 3)  # 24 x 20 = 480 pixels each
    big = write_images(tmp_path / "big", 1, size=(30, 30))[0]
    (tmp_path / "images" / "big.png").write_bytes(big.read_bytes())
    limited = "data.max_image_pixels=500"
    datamodule = datamodule_from_config(tmp_path, "image_folder", tmp_path / "images", limited)
    with pytest.raises(OversizedImageError) as error:
        list(datamodule.train_dataloader())
    assert "900 pixels are more than data.max_image_pixels=500" in str(error.value)
    for wrong in ("data.max_image_pixels=0", "data.max_aspect_ratio=0.5"):
        with pytest.raises(InstantiationException, match=re.escape(wrong)):
            datamodule_from_config(
                tmp_path, "image_folder", tmp_path / "images", wrong, setup=False
            )


@pytest.mark.parametrize(
    "make",
    [
        lambda path: strip_png(path),
        lambda path: header_only_png(path, 30_000, 30_000),  # refused by the pixel limit
        lambda path: header_only_png(path, 40_000, 40_000),  # refused by PIL's own limit too
    ],
    ids=["strip", "above_limit", "above_pil_limit"],
)
def test_apply_inputs_refuse_oversized_images(
    tmp_path: Path, make: Callable[[Path], Path], decoded_sizes: list[tuple[int, int]]
) -> None:
    image = make(tmp_path / "input.png")
    with pytest.raises(OversizedImageError) as error:
        load_images(image, 3, 16)
    message = str(error.value)
    assert str(image) in message and f"inputs={image}" in message and "downscaled" in message
    assert "data." not in message  # apply has no data.* limits to point to
    assert decoded_sizes == []
    with pytest.raises(OversizedImageError):  # the same for the datamodules' reader
        read_image(image, 3)
