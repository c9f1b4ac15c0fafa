"""Where the commands' Hydra configs are: conf/ at the repository root."""

from __future__ import annotations

from pathlib import Path

# Absolute, so that Hydra finds the same folder however a command starts (`python train.py`,
# `python -m invgan.apply`, a SLURM job re-composing a sweep's config in another process):
# a relative path would resolve against the entry point's file or, run as a module, to the
# `pkg://conf` namespace package, which another installed `conf` package could shadow.
CONFIG_DIR = str(Path(__file__).resolve().parents[2] / "conf")
