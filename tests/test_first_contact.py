"""First contact: `python train.py` with no overrides is the benchmarked MNIST recipe and fetches
MNIST when it is missing; offline, and for every other user error, each command prints one
paragraph without a traceback and exits with status 2. Downloads are served from the shared
IDX files over a local HTTP server, so no test needs the internet."""

from __future__ import annotations

import contextlib
import functools
import hashlib
import http.server
import importlib.util
import logging
import os
import shutil
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType

import pytest
from hydra.errors import InstantiationException
from omegaconf import OmegaConf

from datamodules.errors import DataNotFoundError
from datamodules.mnist import MNIST_FILES, MNIST_MD5, MNISTDataModule
from invgan.cli.user_errors import EXIT_USER_ERROR, run_command
from invgan.training.pipeline import train
from invgan.utils.config_checks import ConfigValueError
from tests.conftest import (
    CPU_RUN,
    REPO_ROOT,
    SHARED_DATA,
    TINY_MODELS,
    compose_config,
    run_entry_point,
)

GZ_FILES = [f"{name}.gz" for name in MNIST_FILES]


# ------------------------------------------------------------------ a local MNIST mirror
class _Mirror(http.server.SimpleHTTPRequestHandler):
    requested: list[str]

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - base signature
        self.requested.append(self.path.lstrip("/"))


@contextlib.contextmanager
def serve(folder: Path) -> Iterator[tuple[str, list[str]]]:
    """An HTTP server on 127.0.0.1 serving `folder`: (base URL, paths requested so far)."""
    requested: list[str] = []
    handler = type("Handler", (_Mirror,), {"requested": requested})
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(handler, directory=str(folder))
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/", requested
    finally:
        server.shutdown()
        server.server_close()


def unreachable_mirror() -> str:
    """An address where nothing listens (a port just bound and released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/"


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


# ------------------------------------------------------------------ the default command
def test_python_train_py_is_the_benchmarked_mnist_recipe(tmp_path):
    default = compose_config("train", [], tmp_path)
    named = compose_config("train", ["experiment=mnist_dcgan_invgan"], tmp_path)
    assert OmegaConf.to_container(default) == OmegaConf.to_container(named)
    # The recipe of docs/benchmarks.md, not the slower width-64 base DCGAN.
    model = default.model
    assert (model.generator.base_width, model.discriminator.base_width) == (32, 32)
    assert model.loss.pixel_weight == 1.0 and model.optimizer_g.lr == model.optimizer_d.lr == 5e-4
    assert list(model.loss.mmd_bandwidths) == [0.02, 0.05, 0.1, 0.2, 0.5]
    assert default.trainer.max_time == "00:00:30:00" and default.data.download is True
    # Another backbone without an experiment keeps the recipe's run length, not its widths.
    other = compose_config("train", ["model=invgan_stylegan2"], tmp_path)
    assert "base_width" not in other.model.generator


# ------------------------------------------------------------------ downloading
def test_missing_mnist_files_are_downloaded_and_checked(tmp_path):
    root = tmp_path / "mnist"
    root.mkdir()
    present = GZ_FILES[:2]
    for name in present:
        shutil.copy(SHARED_DATA / "mnist" / name, root / name)
    with serve(SHARED_DATA / "mnist") as (url, requested):
        datamodule = MNISTDataModule(root, download=True, mirrors=[url])
        datamodule.prepare_data()
    assert sorted(requested) == sorted(GZ_FILES[2:]), "only the missing files are fetched"
    for name in MNIST_FILES:
        assert md5(root / f"{name}.gz") == MNIST_MD5[name]
    assert sorted(p.name for p in root.iterdir()) == sorted(GZ_FILES), "no partial files left"
    datamodule.setup()
    assert (len(datamodule.train_dataset) + len(datamodule.val_dataset)) == 60_000
    assert len(datamodule.test_dataset) == 10_000


def test_a_damaged_copy_is_refused_and_the_next_mirror_used(tmp_path):
    damaged = tmp_path / "damaged"
    damaged.mkdir()
    for name in GZ_FILES:
        data = bytearray((SHARED_DATA / "mnist" / name).read_bytes())
        data[len(data) // 2] ^= 0xFF
        (damaged / name).write_bytes(bytes(data))
    root = tmp_path / "mnist"
    with serve(damaged) as (bad, bad_requests), serve(SHARED_DATA / "mnist") as (good, _):
        MNISTDataModule(root, download=True, mirrors=[bad, good]).prepare_data()
    assert sorted(bad_requests) == sorted(GZ_FILES)  # each tried there first, then refused
    assert all(md5(root / f"{n}.gz") == MNIST_MD5[n] for n in MNIST_FILES)
    # With damaged copies only, nothing is kept and the error says why (not "offline").
    elsewhere = tmp_path / "elsewhere"
    with serve(damaged) as (bad, _), pytest.raises(DataNotFoundError) as error:
        MNISTDataModule(elsewhere, download=True, mirrors=[bad]).prepare_data()
    assert "a damaged copy" in str(error.value) and "offline" not in str(error.value)
    assert not any(elsewhere.iterdir())


def test_offline_mnist_names_where_to_put_the_files(tmp_path):
    root = tmp_path / "mnist"
    datamodule = MNISTDataModule(root, download=True, mirrors=[unreachable_mirror()])
    with pytest.raises(DataNotFoundError) as error:
        datamodule.setup()
    message = str(error.value)
    for part in (str(root), "seems to be offline", "data.root=", "INVGAN_DATA_DIR", *GZ_FILES):
        assert part in message, part
    assert not any(root.iterdir()), "a failed download leaves nothing behind"


def test_training_with_the_defaults_downloads_mnist_first(tmp_path, monkeypatch):
    monkeypatch.setenv("INVGAN_DATA_DIR", str(tmp_path / "data"))  # empty: a fresh machine
    with serve(SHARED_DATA / "mnist") as (url, requested):
        cfg = compose_config(
            "train",
            [
                *CPU_RUN,
                *TINY_MODELS["DCGANGenerator"],
                f"data.mirrors=[{url}]",
                "trainer.max_steps=4",
                "trainer.limit_val_batches=1",
                "test=false",
            ],
            tmp_path / "run",
        )
        train(cfg)
    assert sorted(requested) == sorted(GZ_FILES)
    assert (tmp_path / "data" / "mnist" / GZ_FILES[0]).is_file()
    assert (tmp_path / "run" / "checkpoints" / "last.ckpt").is_file()


# ------------------------------------------------------------------ user errors: exit 2
def test_offline_first_run_prints_one_paragraph_and_exits_2(tmp_path):
    result = run_entry_point(
        "train.py",
        f"paths.data_dir={tmp_path / 'data'}",
        f"data.mirrors=[{unreachable_mirror()}]",
        f"hydra.run.dir={tmp_path / 'run'}",
    )
    assert result.returncode == EXIT_USER_ERROR, result.stderr
    assert "Traceback" not in result.stderr
    assert "train.py: error: MNIST is not in" in result.stderr
    assert "data.root=" in result.stderr and "INVGAN_DATA_DIR" in result.stderr


def _entry_point(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"entry_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


COMMANDS: dict[str, tuple[Callable[[], ModuleType], list[str], str]] = {
    "train_bad_value": (
        lambda: _entry_point(REPO_ROOT / "train.py"),
        ["model.loss.mmd_weight=abc"],
        "model.loss.mmd_weight='abc': must be a finite number >= 0",
    ),
    "train_override_typo": (
        lambda: _entry_point(REPO_ROOT / "train.py"),
        ["model.loss.mmd_wieght=1"],
        "Could not override 'model.loss.mmd_wieght'",
    ),
    "evaluate_zero_batch": (
        lambda: _entry_point(REPO_ROOT / "evaluate.py"),
        ["ckpt_path=none.ckpt", "batch_size=0"],
        "batch_size=0: must be >= 1",
    ),
    "evaluate_missing_checkpoint": (
        lambda: _entry_point(REPO_ROOT / "evaluate.py"),
        ["ckpt_path=/nowhere/last.ckpt"],
        "/nowhere/last.ckpt",
    ),
    "apply_missing_checkpoint": (
        lambda: importlib.import_module("invgan.apply"),
        ["ckpt_path=/nowhere/last.ckpt", "inputs=/nowhere/image.png"],
        "/nowhere/last.ckpt",
    ),
    "export_missing_checkpoint": (
        lambda: importlib.import_module("invgan.export"),
        ["ckpt_path=/nowhere/last.ckpt"],
        "/nowhere/last.ckpt",
    ),
}


@pytest.fixture
def hydra_logging() -> Iterator[None]:
    """Undo the logging setup of a `@hydra.main` run in this process: its handlers write to
    this test's captured streams, which later tests must not log into."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    for handler in root.handlers:
        if handler not in handlers:
            handler.close()
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.mark.parametrize("case", sorted(COMMANDS))
def test_every_command_reports_user_errors_as_one_paragraph_with_status_2(
    case, tmp_path, monkeypatch, capsys, hydra_logging
):
    load, arguments, message = COMMANDS[case]
    module = load()
    monkeypatch.chdir(tmp_path)
    # Hydra finds conf/ next to the entry point's file, as when it runs as a script.
    monkeypatch.setenv("HYDRA_MAIN_MODULE", "__main__")
    monkeypatch.setattr(sys, "argv", ["cmd", *arguments, f"hydra.run.dir={tmp_path / 'run'}"])
    with pytest.raises(SystemExit) as exit_:
        run_command(module.main, "cmd")
    assert exit_.value.code == EXIT_USER_ERROR
    stderr = capsys.readouterr().err
    assert "cmd: error: " in stderr and message in stderr, stderr
    assert "Traceback" not in stderr


def test_comparison_of_a_missing_evaluation_exits_2(tmp_path, capsys):
    from invgan.cli import compare

    with pytest.raises(SystemExit) as exit_:
        run_command(lambda: compare.main([str(tmp_path / "none")]), "comparison")
    assert exit_.value.code == EXIT_USER_ERROR
    assert "no evaluation found at" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("module", "arguments"),
    [
        ("invgan.compare", ["/nowhere/run"]),
        ("invgan.export", ["ckpt_path=/nowhere/last.ckpt", "hydra.run.dir=run"]),
        (
            "invgan.apply",
            ["ckpt_path=/nowhere/last.ckpt", "inputs=/nowhere/x.png", "hydra.run.dir=run"],
        ),
    ],
)
def test_documented_module_commands_run_their_cli(module, arguments, tmp_path):
    # `python -m invgan.<name>` as the README shows it: the shim runs `invgan.cli.<name>`, finds
    # conf/ from another folder and reports a user error under the command's own name.
    result = subprocess.run(
        [sys.executable, "-m", module, *arguments],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == EXIT_USER_ERROR, result.stderr
    assert f"python -m {module}: error: " in result.stderr
    assert "/nowhere/" in result.stderr and "Traceback" not in result.stderr


def test_bugs_keep_their_traceback():
    def broken() -> None:
        raise RuntimeError("a bug")

    with pytest.raises(RuntimeError, match="a bug"):
        run_command(broken, "cmd")

    def broken_while_building() -> None:
        try:
            raise TypeError("unsupported operand")
        except TypeError as error:
            raise InstantiationException("Error in call to target") from error

    with pytest.raises(InstantiationException):
        run_command(broken_while_building, "cmd")

    def refused_while_building() -> None:
        raise InstantiationException("Error in call") from ConfigValueError("model.x=1: bad")

    with pytest.raises(SystemExit):
        run_command(refused_while_building, "cmd")
