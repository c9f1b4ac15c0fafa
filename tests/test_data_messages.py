"""Messages for data and weights that exist but cannot be used as configured: data moved since
training (evaluation names the override that works there, `data_root=`), folders and files this
user may not read (a permission problem, never called corruption), and ArcFace weights that
pickle objects (what the file must be, never `weights_only=False`)."""

from __future__ import annotations

import builtins
import errno
import io
import json
import os
import shutil
import stat
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch
from omegaconf import DictConfig
from torch import nn

from datamodules.bad_files import skipped_files
from datamodules.errors import CorruptDataError, DataNotFoundError, DataPermissionError
from invgan.checkpoints.run_data import setup_run_data
from invgan.checkpoints.safe_load import CheckpointError
from invgan.evaluation.pipeline import METRICS_FILE, evaluate
from invgan.image_inputs import load_images
from invgan.losses.identity import IdentityLoss
from invgan.training.pipeline import train
from invgan.utils.instantiate import instantiate_datamodule
from tests.conftest import CPU_RUN, TINY_MODELS, compose_config
from tests.test_bad_data import TINY, datamodule_from_config, write_images

# What must not be suggested for a checkpoint's data: these do not reach its stored config.
TRAINING_ONLY_FIXES = ("INVGAN_DATA_DIR", "data.download", "data.root=<", "Set data.root")
DATASETS = ["mnist", "image_folder", "celeba", "ffhq", "imagenet_patches"]


# --------------------------------------------------------------------------- data moved


def run_data_config(tmp_path: Path, data: str, root: Path) -> DictConfig:
    """The `data` node of a composed training config reading ``root``, as a checkpoint's."""
    tiny = TINY.get(data, [])
    cfg = compose_config("train", [f"data={data}", f"data.root={root}", *tiny], tmp_path / "run")
    return cfg.data


@pytest.mark.parametrize("data", DATASETS)
def test_checkpoint_data_missing_names_data_root(tmp_path: Path, data: str) -> None:
    missing = tmp_path / "moved_away"
    data_cfg = run_data_config(tmp_path, data, missing)
    with pytest.raises(DataNotFoundError) as error:
        setup_run_data(data_cfg, "run/checkpoints/last.ckpt", "evaluate.py")
    message = str(error.value)
    assert str(missing) in message and "run/checkpoints/last.ckpt" in message
    assert "pass data_root=<the folder that holds it now> to evaluate.py" in message
    assert not [fix for fix in TRAINING_ONLY_FIXES if fix in message], message


def test_checkpoint_data_with_a_broken_layout_names_data_root(tmp_path: Path) -> None:
    # The official CelebA image folder without its partition file (changed since training).
    write_images(tmp_path / "celeba" / "img_align_celeba", 4)
    data_cfg = run_data_config(tmp_path, "celeba", tmp_path / "celeba")
    with pytest.raises(DataNotFoundError) as error:
        setup_run_data(data_cfg, "last.ckpt", "python -m invgan.apply")
    message = str(error.value)
    assert "list_eval_partition.txt is missing" in message
    assert "pass data_root=<the folder that holds it now> to python -m invgan.apply" in message
    assert "data.root=" not in message  # training's fix, which the checkpoint's config ignores


def test_evaluating_a_run_whose_data_moved(tmp_path: Path) -> None:
    images = tmp_path / "images"
    write_images(images, 24, size=(16, 16))
    run = [
        *CPU_RUN,
        *TINY_MODELS["DCGANGenerator"],
        "data=image_folder",
        f"data.root={images}",
        "data.resolution=16",
        "data.channels=1",
        "data.batch_size=4",
        "data.val_fraction=0.2",
        "data.test_fraction=0.2",
        "trainer.max_steps=4",
        "test=false",
    ]
    train(compose_config("train", run, tmp_path / "run"))
    ckpt = tmp_path / "run" / "checkpoints" / "last.ckpt"
    moved = tmp_path / "elsewhere" / "images"
    moved.parent.mkdir()
    shutil.move(images, moved)
    quick = ["metrics.fid.enabled=false", "metrics.lpips.nets=[alex]", "device=cpu"]
    evaluation = [f"ckpt_path={ckpt}", "metrics.runtime.enabled=false", *quick]

    with pytest.raises(DataNotFoundError) as error:
        evaluate(compose_config("evaluate", evaluation, tmp_path / "eval_fails"))
    message = str(error.value)
    assert f"image folder data {images} does not exist" in message
    assert "pass data_root=<the folder that holds it now> to evaluate.py" in message
    assert not [fix for fix in TRAINING_ONLY_FIXES if fix in message], message
    assert not (tmp_path / "eval_fails" / METRICS_FILE).exists()

    # The suggested override works.
    evaluate(compose_config("evaluate", [*evaluation, f"data_root={moved}"], tmp_path / "eval"))
    report = json.loads((tmp_path / "eval" / METRICS_FILE).read_text())
    assert report["metrics"]["test/mae"]["value"] > 0


# --------------------------------------------------------------------------- permissions


AS_ROOT = os.geteuid() == 0


@pytest.fixture
def deny(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[Path], None]]:
    """``deny(path)`` makes a file or folder unreadable for this process: with chmod 000, or,
    as root (whom file permissions do not stop), by making the calls that read it raise the
    PermissionError the kernel would raise for another user."""
    denied: list[Path] = []

    def refused(path: object) -> bool:
        if not isinstance(path, str | os.PathLike):
            return False
        path = Path(os.fsdecode(path)).absolute()
        return any(path == d or d in path.parents for d in denied)

    def permission_error(path: object) -> PermissionError:
        return PermissionError(errno.EACCES, os.strerror(errno.EACCES), os.fsdecode(path))

    def guard(function: Callable) -> Callable:
        def guarded(path: object, *args: object, **kwargs: object) -> object:
            if refused(path):
                raise permission_error(path)
            return function(path, *args, **kwargs)

        return guarded

    if AS_ROOT:
        for module, name in ((builtins, "open"), (io, "open"), (os, "scandir"), (os, "listdir")):
            monkeypatch.setattr(module, name, guard(getattr(module, name)))
    modes: dict[Path, int] = {}

    def deny_path(path: Path) -> None:
        denied.append(path.absolute())
        if not AS_ROOT:
            modes[path] = stat.S_IMODE(path.stat().st_mode)
            path.chmod(0)

    yield deny_path
    for path, mode in modes.items():  # so that pytest can clean up tmp_path
        path.chmod(mode)


def assert_permission_message(message: str, path: Path) -> None:
    """The message names ``path`` and a permission problem with its fix, not corruption."""
    assert str(path) in message and "permission denied" in message and "chmod" in message
    assert "a permission problem" in message and "run as a user who can read it" in message
    assert "unreadable (corrupt" not in message and "Replace or delete" not in message


@pytest.mark.parametrize("which", ["root", "subfolder"])
def test_unreadable_folder_is_a_permission_error(
    tmp_path: Path, deny: Callable[[Path], None], which: str
) -> None:
    images = tmp_path / "images"
    write_images(images, 4)
    write_images(images / "more", 4)
    folder = images if which == "root" else images / "more"
    deny(folder)
    with pytest.raises(DataPermissionError) as error:  # never a silently smaller dataset
        datamodule_from_config(tmp_path, "image_folder", images)
    assert_permission_message(str(error.value), folder)


def test_unreadable_image_is_a_permission_error_not_corruption(
    tmp_path: Path, deny: Callable[[Path], None]
) -> None:
    paths = write_images(tmp_path / "images", 4)
    deny(paths[1])
    datamodule = datamodule_from_config(tmp_path, "image_folder", tmp_path / "images")
    with pytest.raises(DataPermissionError) as error:
        list(datamodule.train_dataloader())
    message = str(error.value)
    assert_permission_message(message, paths[1])
    assert "data.on_bad_file=skip" in message
    # Under skip, it is skipped and listed like any other unreadable file.
    skip = ["data.on_bad_file=skip"]
    datamodule = datamodule_from_config(tmp_path, "image_folder", tmp_path / "images", *skip)
    assert [batch.shape for batch in datamodule.train_dataloader()] == [(2, 3, 16, 16)] * 2
    assert skipped_files(tmp_path / "run" / "bad_files.txt") == [str(paths[1])]


@pytest.mark.parametrize("layout", ["celeba_partition", "ffhq_zip", "mnist_files"])
def test_unreadable_dataset_files_are_permission_errors(
    tmp_path: Path, deny: Callable[[Path], None], layout: str
) -> None:
    root = tmp_path / "data"
    if layout == "celeba_partition":
        names = [path.name for path in write_images(root / "img_align_celeba", 6)]
        denied = root / "list_eval_partition.txt"
        denied.write_text("".join(f"{name} {i % 3}\n" for i, name in enumerate(names)))
    elif layout == "ffhq_zip":
        root.mkdir()
        denied = root / "faces.zip"
        with zipfile.ZipFile(denied, "w") as archive:
            for path in write_images(tmp_path / "sources", 4):
                archive.write(path, path.name)
    else:
        root.mkdir()
        denied = root / "train-images-idx3-ubyte"
        for name in ("train-images", "train-labels", "t10k-images", "t10k-labels"):
            (root / f"{name}-idx{3 if 'images' in name else 1}-ubyte").write_bytes(b"\0" * 16)
    deny(denied)
    data = layout.split("_")[0]
    datamodule = instantiate_datamodule(
        run_data_config(tmp_path, data, denied if data == "ffhq" else root)
    )
    with pytest.raises(DataPermissionError) as error:  # was a raw PermissionError traceback,
        datamodule.setup()  # "not a valid zip file" or "IDX file ... is unreadable"
    assert_permission_message(str(error.value), denied)


@pytest.mark.parametrize("which", ["file", "folder"])
def test_apply_inputs_unreadable_is_a_permission_error(
    tmp_path: Path, deny: Callable[[Path], None], which: str
) -> None:
    paths = write_images(tmp_path / "inputs", 2)
    denied = paths[0] if which == "file" else tmp_path / "inputs"
    deny(denied)
    with pytest.raises(DataPermissionError) as error:
        load_images(tmp_path / "inputs", 3, 16)
    assert_permission_message(str(error.value), denied)


def test_corrupt_image_is_still_called_corrupt(tmp_path: Path) -> None:
    write_images(tmp_path / "images", 3)
    (tmp_path / "images" / "bad.png").write_text("not an image")
    datamodule = datamodule_from_config(tmp_path, "image_folder", tmp_path / "images")
    with pytest.raises(CorruptDataError) as error:
        list(datamodule.train_dataloader())
    assert not isinstance(error.value, DataPermissionError)
    assert "Replace or delete the file" in str(error.value)


# --------------------------------------------------------------------------- ArcFace weights


def test_arcface_file_that_pickles_a_model_says_what_the_file_must_be(tmp_path: Path) -> None:
    path = tmp_path / "model_ir_se50.pth"
    torch.save(nn.Linear(2, 2), path)  # a whole module, not a state dict
    with pytest.raises(CheckpointError) as error:
        IdentityLoss(path)
    message = str(error.value)
    assert str(path) in message and "refusing to load" in message
    assert "state dict of the IR-SE50 network" in message and "model_ir_se50.pth" in message
    assert "torch.save(model.state_dict()" in message and "InsightFace_Pytorch" in message
    assert "weights_only" not in message
