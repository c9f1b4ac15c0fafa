"""Directions found by an earlier run (its `directions.pt`), so that fitting a direction and
editing with it can be separate runs."""

from __future__ import annotations

from pathlib import Path

from invgan.directions.latent_directions import LatentDirections
from invgan.inversion.protocols import InversionMethod


class SavedDirections:
    """Directions builder (`conf/application/direction/saved.yaml`): a saved file."""

    def __init__(self, path: str | Path) -> None:
        self.path = path

    def find(self, method: InversionMethod, channels: int, resolution: int) -> LatentDirections:
        """The saved directions (checked against the generator when editing)."""
        return LatentDirections.load(self.path)
