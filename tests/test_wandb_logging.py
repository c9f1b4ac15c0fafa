"""logger=wandb: offline without a login, with the resolved config and the image grids."""

from __future__ import annotations

from pathlib import Path

import pytest
import wandb

from invgan.training.pipeline import train
from invgan.utils.wandb_logger import logged_in_to_wandb, wandb_logger


@pytest.fixture
def no_wandb_login(monkeypatch, tmp_path):
    """No API key, an empty home (so no ~/.netrc), and W&B's own files in tmp_path."""
    for variable in ("WANDB_API_KEY", "WANDB_MODE"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("NETRC", str(tmp_path / "home" / ".netrc"))
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(tmp_path / "wandb_config"))
    monkeypatch.setenv("WANDB_CACHE_DIR", str(tmp_path / "wandb_cache"))
    monkeypatch.setenv("WANDB_SILENT", "true")


def test_login_is_found_in_the_environment_or_netrc(no_wandb_login, monkeypatch, tmp_path):
    assert not logged_in_to_wandb()
    netrc_file = tmp_path / "home" / ".netrc"
    netrc_file.parent.mkdir(parents=True)
    netrc_file.write_text("machine api.wandb.ai\n  login user\n  password abc123\n")
    netrc_file.chmod(0o600)
    assert logged_in_to_wandb()
    netrc_file.unlink()
    monkeypatch.setenv("WANDB_API_KEY", "abc123")
    assert logged_in_to_wandb()
    with pytest.raises(ValueError, match="auto, true or false"):
        wandb_logger(offline="sometimes")


def test_training_without_login_writes_an_offline_run(no_wandb_login, train_config):
    cfg = train_config(
        "data=synthetic",
        "logger=wandb",
        "trainer.max_epochs=1",
        "callbacks.image_grids.every_n_iterations=4",
        "tags=[test,offline]",
    )
    try:
        train(cfg)
    finally:
        wandb.finish()
        # W&B's service process writes the run's record asynchronously; stopping it closes
        # the file, so the record is whole before it is read.
        wandb.teardown()
    runs = list((Path(cfg.paths.output_dir) / "wandb").glob("offline-run-*"))
    assert len(runs) == 1, "the run is written offline, for a later `wandb sync`"
    # The run's record for `wandb sync` holds the resolved config (offline runs keep it there).
    (record,) = runs[0].glob("run-*.wandb")
    assert b"mmd_weight" in record.read_bytes() and b"synthetic" in record.read_bytes()
    grids = list((runs[0] / "files" / "media" / "images").rglob("*.png"))
    assert any("samples" in p.name for p in grids) and any("reconstr" in p.name for p in grids)
