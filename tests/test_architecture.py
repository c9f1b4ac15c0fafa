"""The package layering in pyproject.toml's [tool.importlinter] holds (docs/architecture.md)."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import REPO_ROOT

# In a process of its own: import-linter's analysis changes interpreter state (logging, module
# caches) that later tests would inherit.
LINT = "from importlinter.cli import lint_imports; raise SystemExit(lint_imports(no_cache=True))"


def test_import_contracts_are_kept() -> None:
    result = subprocess.run(
        [sys.executable, "-c", LINT], cwd=REPO_ROOT, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout
