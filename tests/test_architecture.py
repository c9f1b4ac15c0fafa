"""The package layering in pyproject.toml's [tool.importlinter] holds (docs/architecture.md)."""

from __future__ import annotations

import os

import pytest
from importlinter.cli import lint_imports

from tests.conftest import REPO_ROOT


def test_import_contracts_are_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO_ROOT)
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")])
    )
    assert lint_imports(config_filename=str(REPO_ROOT / "pyproject.toml"), no_cache=True) == 0
