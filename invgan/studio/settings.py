"""What one studio edit is, as data: the inversion method, the images, the edit's parameters,
the `python -m invgan.apply` overrides that reproduce it, and where its result lies among the
application's outputs.

The studio runs an edit by composing conf/apply.yaml with exactly these overrides and calling
the application that config builds, so the command it shows cannot drift from what it
computed: both come from one `EditSettings` object.
"""

from __future__ import annotations

import math
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import torch

from invgan.checkpoints.safe_load import safe_torch_load
from invgan.directions.latent_directions import LatentDirections, move_codes
from invgan.nn.frozen_generator import FrozenGenerator

APPLY_COMMAND = ("python", "-m", "invgan.apply")
# Hydra reads these unquoted values as something other than a string.
_HYDRA_WORDS = {"null", "true", "false", "none", "nan", "inf", "-inf"}
_PLAIN_STRING = re.compile(r"[A-Za-z0-9_./-]+")
_NUMBER = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")


def hydra_literal(value: Any) -> str:
    """`value` written as a Hydra override value that parses back to it (None, str, Path,
    bool, int, finite float, or a list of these)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"cannot write the non-finite number {value} as an override")
        return repr(value)
    if isinstance(value, list | tuple):
        return "[" + ",".join(hydra_literal(item) for item in value) + "]"
    if isinstance(value, str | Path):
        text = str(value)
        plain = _PLAIN_STRING.fullmatch(text) and not _NUMBER.fullmatch(text)
        if plain and text.lower() not in _HYDRA_WORDS:
            return text
        return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"
    raise TypeError(f"cannot write {type(value).__name__} {value!r} as a Hydra override value")


@dataclass(frozen=True)
class MethodChoice:
    """An inversion method as the apply command picks it: conf/inversion/<name>.yaml with
    `inversion.*` overrides (studio config `methods.<name>`)."""

    name: str
    overrides: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        stray = [item for item in self.overrides if not item.startswith("inversion.")]
        if stray:
            raise ValueError(
                f"methods.{self.name} may only set the method's own options "
                f"(inversion.<key>=<value>), got {stray}"
            )

    @classmethod
    def from_options(cls, name: str, options: Mapping[str, Any] | None) -> MethodChoice:
        """The method `name` with option values (nested mappings for nested options, e.g.
        {steps: 50, lpips: {net: alex}}) written as its `inversion.*` overrides."""

        def flatten(prefix: str, values: Mapping[str, Any]) -> list[str]:
            items = []
            for key, value in values.items():
                if isinstance(value, Mapping):
                    items += flatten(f"{prefix}{key}.", value)
                else:
                    items.append(f"{prefix}{key}={hydra_literal(value)}")
            return items

        return cls(name, tuple(flatten("inversion.", options or {})))

    def apply_overrides(self) -> list[str]:
        """`inversion=<name>` and the method's overrides."""
        return [f"inversion={self.name}", *self.overrides]


@dataclass(frozen=True)
class DirectionEdit:
    """Move the code along the studio's directions, `strengths` in standard deviations of the
    prior codes along each (one per direction, in the studio's order).

    The moves are summed into one direction, saved as `directions.pt` in the edit's folder,
    and applied by the attribute_editing application at alpha 1 in latent units: exactly
    x' = G(w + sum_k strength_k * spread_k * n_k), reproducible from the file.
    """

    strengths: tuple[float, ...]
    application: ClassVar[str] = "attribute_editing"
    image_count: ClassVar[int] = 1
    # The combined direction's name, hence the application's grid attribute_editing_edit.png.
    direction_name: ClassVar[str] = "edit"

    def groups(self) -> list[str]:
        """Config group choices."""
        return [f"application={self.application}", "application/direction=saved"]

    def values(self, folder: Path) -> dict[str, Any]:
        """The application's option values."""
        return {
            "application.direction.path": folder / "directions.pt",
            "application.alphas": [1.0],
            "application.alpha_unit": "latent",
        }

    def result_grid(self) -> str:
        """The PNG grid the application writes."""
        return f"attribute_editing_{self.direction_name}.png"

    def result_columns(self, columns: int) -> list[int]:
        """Grid columns that hold the result (the grid is [image, edited])."""
        return [1]

    def edited_codes(self, outputs: Path, generator: FrozenGenerator) -> torch.Tensor:
        """The codes that decode to the result: the inverted codes moved along the saved
        direction, as the application moved them."""
        codes = safe_torch_load(outputs / "attribute_editing_codes.pt")["codes"]
        direction = LatentDirections.load(outputs / "directions.pt")
        vector = direction.vectors[0].to(generator.latent_avg)
        return move_codes(codes.to(vector), vector, 1.0, generator, direction.layers)


@dataclass(frozen=True)
class StyleMixingEdit:
    """The first image with the W+ layers start..end-1 (coarse first) of the second."""

    start: int
    end: int
    application: ClassVar[str] = "style_mixing"
    image_count: ClassVar[int] = 2

    def groups(self) -> list[str]:
        """Config group choices."""
        return [f"application={self.application}"]

    def values(self, folder: Path) -> dict[str, Any]:
        """The application's option values."""
        return {"application.layers": [self.start, self.end], "application.show_inputs": True}

    def result_grid(self) -> str:
        """The PNG grid the application writes."""
        return "style_mixing.png"

    def result_columns(self, columns: int) -> list[int]:
        """Grid columns that hold the result (the grid is [image 1, mixed, image 2])."""
        return [1]

    def edited_codes(self, outputs: Path, generator: FrozenGenerator) -> torch.Tensor:
        """The mixed W+ code (1, L, D)."""
        return safe_torch_load(outputs / "style_mixing_codes.pt")["codes"][:, 0]


@dataclass(frozen=True)
class InterpolationEdit:
    """`steps` images from the first image's code to the second's, both ends included."""

    steps: int
    application: ClassVar[str] = "interpolation"
    image_count: ClassVar[int] = 2

    def groups(self) -> list[str]:
        """Config group choices."""
        return [f"application={self.application}"]

    def values(self, folder: Path) -> dict[str, Any]:
        """The application's option values."""
        return {
            "application.steps": self.steps,
            "application.space": "w",
            "application.show_inputs": True,
        }

    def result_grid(self) -> str:
        """The PNG grid the application writes."""
        return "interpolation.png"

    def result_columns(self, columns: int) -> list[int]:
        """Grid columns that hold the result (the steps between the two inputs)."""
        return list(range(1, 1 + self.steps))

    def edited_codes(self, outputs: Path, generator: FrozenGenerator) -> torch.Tensor:
        """The codes of the steps (steps, ...)."""
        return safe_torch_load(outputs / "interpolation_codes.pt")["codes"][0]


@dataclass(frozen=True)
class InpaintingEdit:
    """The pixels of `box` = (top, left, height, width) set to `fill` and repaired from the
    generator's prior (masked inversion for optimisation methods)."""

    box: tuple[int, int, int, int]
    fill: float = 0.0
    application: ClassVar[str] = "inpainting"
    image_count: ClassVar[int] = 1

    def groups(self) -> list[str]:
        """Config group choices."""
        return [f"application={self.application}"]

    def values(self, folder: Path) -> dict[str, Any]:
        """The application's option values."""
        return {"application.box": list(self.box), "application.fill": float(self.fill)}

    def result_grid(self) -> str:
        """The PNG grid the application writes."""
        return "inpainting.png"

    def result_columns(self, columns: int) -> list[int]:
        """Grid columns that hold the result: the composite, always the last."""
        return [columns - 1]

    def edited_codes(self, outputs: Path, generator: FrozenGenerator) -> torch.Tensor:
        """The code that fills the hole: masked inversion's, else the repaired image's."""
        saved = safe_torch_load(outputs / "inpainting_codes.pt")
        return saved.get("masked", saved["repair"])


Edit = DirectionEdit | StyleMixingEdit | InterpolationEdit | InpaintingEdit


@dataclass(frozen=True)
class EditSettings:
    """Everything that decides one edit's result, and where its files go (`folder`: the
    inputs as `inputs/1.png` and `inputs/2.png`, the application's outputs, the downloads).

    `checkpoint` is the run checkpoint the apply command loads; None when the studio runs on
    a bare generator file, which the apply command cannot load (no command then).
    """

    edit: Edit
    method: MethodChoice
    folder: Path
    checkpoint: str | None
    seed: int
    device: str
    labels: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def inputs(self) -> Path:
        """What apply's `inputs` names: the one image, or the folder holding the pair."""
        folder = self.folder / "inputs"
        return folder / "1.png" if self.edit.image_count == 1 else folder

    def input_files(self) -> list[Path]:
        """The input files, in the order the application pairs them."""
        return [self.folder / "inputs" / f"{k}.png" for k in range(1, self.edit.image_count + 1)]

    def groups(self) -> list[str]:
        """Overrides that choose config groups and what their options resolve against; the
        studio composes conf/apply.yaml with these once and reuses it."""
        return [*self.edit.groups(), *self.method.apply_overrides(), f"seed={self.seed}"]

    def values(self) -> dict[str, Any]:
        """Option values set on the composed config, `key: value`."""
        values: dict[str, Any] = {} if self.checkpoint is None else {"ckpt_path": self.checkpoint}
        values.update(inputs=self.inputs, device=self.device)
        return {**values, **self.edit.values(self.folder)}

    def apply_overrides(self) -> list[str]:
        """The overrides of the apply command that reproduces this edit; its outputs go to
        `<folder>/apply`."""
        values = [f"{key}={hydra_literal(value)}" for key, value in self.values().items()]
        return [*self.groups(), *values, f"hydra.run.dir={hydra_literal(self.folder / 'apply')}"]

    def command(self) -> str | None:
        """The shell command that reproduces the edit (None without a run checkpoint)."""
        if self.checkpoint is None:
            return None
        return shlex.join([*APPLY_COMMAND, *self.apply_overrides()])

    def to_dict(self) -> dict[str, Any]:
        """Plain data for settings.yaml: the edit, the method, the inputs, the command."""
        command = self.command()
        return {
            "application": self.edit.application,
            "edit": {
                key: list(value) if isinstance(value, tuple) else value
                for key, value in vars(self.edit).items()
            },
            **self.labels,
            "inversion": {"name": self.method.name, "overrides": list(self.method.overrides)},
            "inputs": [str(path) for path in self.input_files()],
            "checkpoint": self.checkpoint,
            "seed": self.seed,
            "device": self.device,
            "apply_overrides": self.apply_overrides(),
            "command": command
            or "none: the apply command loads run checkpoints (ckpt_path), not a bare generator",
        }
