"""What the studio's controls compute, without the web page: reading an upload, comparing
the inversion methods on it, and running an edit through the apply command's own
applications (so that the edit and the command it shows agree by construction).

Every function here is plain Python on tensors and files; `invgan.studio.ui` only lays out
controls that call them.
"""

from __future__ import annotations

import hashlib
import itertools
import shutil
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import hydra
import torch
import yaml
from omegaconf import DictConfig, OmegaConf
from PIL import Image

from datamodules.errors import CorruptDataError
from datamodules.image_files import ImageLimits, read_image, resize_center_crop
from invgan.applications.editing import invert
from invgan.cli.apply import input_size
from invgan.evaluation.loading import load_model_and_data, resolve_device
from invgan.image_inputs import load_images
from invgan.inversion.protocols import GenerativeModel
from invgan.losses.perceptual import PerceptualDistance
from invgan.metrics.reconstruction import per_image_reconstruction_errors
from invgan.nn.frozen_generator import FrozenGenerator
from invgan.studio.apply_config import compose_apply, with_values
from invgan.studio.cached_inversion import CachedInversion, image_key
from invgan.studio.directions import Slider, combine, studio_sliders
from invgan.studio.display import (
    enlarge,
    enlargement,
    error_map,
    grid_cells,
    grid_columns,
    save_animation,
    strip,
    to_picture,
)
from invgan.studio.progress import InversionCancelled, expected_steps, watch_steps
from invgan.studio.settings import DirectionEdit, Edit, EditSettings, InpaintingEdit, MethodChoice

# What a long computation tells the page: steps done, steps expected (None: unknown), and
# what is running.
Report = Callable[[int, int | None, str], None]


def _silent(done: int, total: int | None, what: str) -> None:
    """A Report that shows nothing (scripts and tests)."""


def _plain(node: DictConfig) -> dict[str, Any]:
    """A config mapping as a plain dict, interpolations resolved."""
    return cast(dict[str, Any], OmegaConf.to_container(node, resolve=True))


class UploadError(ValueError):
    """An upload the studio refuses: too large, or not an image it can read."""


@dataclass(frozen=True)
class UploadLimits:
    """The largest upload read: bytes on disk, and decoded pixels and side ratio (checked
    from the header, before decoding)."""

    max_bytes: int
    image: ImageLimits

    def check_file(self, path: Path, name: str) -> None:
        """Refuse a file larger than `max_bytes`."""
        size = path.stat().st_size
        if size > self.max_bytes:
            raise UploadError(
                f"{name} is {size / 2**20:.1f} MiB, more than the studio accepts "
                f"(upload.max_mb={self.max_bytes / 2**20:g}): upload a smaller image or raise "
                "upload.max_mb"
            )


@dataclass
class MethodEntry:
    """A configured inversion method: its choice, and the built method or why it is
    unavailable."""

    choice: MethodChoice
    method: CachedInversion | None = None
    problem: str | None = None


@dataclass(frozen=True)
class Reconstruction:
    """One method's reconstruction of an image, its error map, MAE and LPIPS (None when the
    LPIPS network has no weights here), and the seconds inverting took; or the problem."""

    method: str
    picture: Image.Image | None = None
    errors: Image.Image | None = None
    mae: float | None = None
    lpips: float | None = None
    seconds: float | None = None
    problem: str | None = None


@dataclass(frozen=True)
class EditResult:
    """An edit's result pictures (model resolution), the files to download, and its
    settings (with the reproducing command)."""

    settings: EditSettings
    pictures: list[Image.Image]
    files: list[Path]
    animation: Path | None = None
    seconds: float = 0.0


class Studio:
    """A loaded model with its inversion methods and direction sliders, and a folder for the
    uploads and edits (`workdir`)."""

    def __init__(
        self,
        model: GenerativeModel,
        checkpoint: str | None,
        source: str,
        resolution: int,
        channels: int,
        methods: dict[str, MethodEntry],
        sliders: list[Slider],
        workdir: Path,
        upload: UploadLimits,
        device: torch.device,
        seed: int,
        lpips: PerceptualDistance | None = None,
        lpips_problem: str | None = None,
        display_size: int = 256,
    ) -> None:
        self.model = model
        self.checkpoint = checkpoint
        self.source = source
        self.resolution = resolution
        self.channels = channels
        self.methods = methods
        self.sliders = sliders
        self.workdir = Path(workdir)
        self.upload = upload
        self.device = device
        self.seed = seed
        self.lpips = lpips
        self.lpips_problem = lpips_problem
        self.factor = enlargement(resolution, display_size)
        self._edit_numbers = itertools.count(1)
        self._lock = threading.Lock()

    # ---------------------------------------------------------------- facts
    @property
    def available_methods(self) -> list[str]:
        """Methods that were built (the others have a problem to show)."""
        return [name for name, entry in self.methods.items() if entry.method is not None]

    @property
    def generator(self) -> FrozenGenerator:
        """The generator every method decodes with."""
        return self._method(self.available_methods[0]).generator

    @property
    def n_latent(self) -> int:
        """W+ layers of the generator (1: one code per image, no style mixing)."""
        return int(self.generator.n_latent)

    def _method(self, name: str) -> CachedInversion:
        """The built method `name`, or an error saying why there is none."""
        entry = self.methods.get(name)
        if entry is None:
            raise ValueError(
                f"inversion method {name!r} is not configured: choose one of "
                f"{sorted(self.methods)} (studio config `methods`)"
            )
        if entry.method is None:
            raise ValueError(f"inversion method {name} is unavailable: {entry.problem}")
        return entry.method

    # ---------------------------------------------------------------- inputs
    def align(self, path: str | Path, name: str | None = None) -> Path:
        """Read an uploaded or picked image, resize its shorter side to the generator's
        resolution and centre-crop it (as the apply command reads inputs), and save it as a
        PNG under `workdir/inputs` (named by content). Refuses oversized files and
        non-images with an `UploadError` that says what to do."""
        path = Path(path)
        name = name or path.name
        if not path.is_file():
            raise UploadError(f"{name} does not exist: upload an image file")
        self.upload.check_file(path, name)
        try:
            picture = read_image(path, self.channels, name, self.upload.image)
        except CorruptDataError as error:
            raise UploadError(
                f"{name} is not an image the studio can read ({error}): upload a PNG, JPEG, "
                "BMP or WebP image"
            ) from error
        aligned = resize_center_crop(picture, self.resolution)
        folder = self.workdir / "inputs"
        folder.mkdir(parents=True, exist_ok=True)
        digest = hashlib.sha256(aligned.tobytes() + f"{aligned.mode}{aligned.size}".encode())
        target = folder / f"{digest.hexdigest()[:16]}.png"
        aligned.save(target)
        return target

    def images(self, paths: Sequence[Path]) -> torch.Tensor:
        """Aligned inputs as the apply command reads them, on the model's device."""
        return torch.cat([load_images(p, self.channels, self.resolution) for p in paths]).to(
            self.device
        )

    def preview(self, path: Path) -> Image.Image:
        """An aligned input enlarged for the page."""
        with Image.open(path) as picture:
            return enlarge(picture.convert("RGB"), self.factor)

    # ---------------------------------------------------------------- comparison
    def compare(
        self,
        image: Path,
        names: Sequence[str],
        report: Report = _silent,
        cancel: threading.Event | None = None,
    ) -> list[Reconstruction]:
        """Each named method's reconstruction of the aligned `image`, its error map, MAE,
        LPIPS and seconds (codes kept for the edits). A method that fails gives its problem;
        a cancel (`InversionCancelled`) stops them all."""
        images = self.images([image])
        cancel = cancel or threading.Event()
        results = []
        for name in names:
            entry = self.methods.get(name)
            if entry is None or entry.method is None:
                problem = "not configured" if entry is None else entry.problem
                results.append(Reconstruction(name, problem=problem))
                continue
            method = entry.method

            def step(done: int, total: int | None, name: str = name) -> None:
                report(done, total, f"inverting with {name}")

            try:
                with watch_steps(step, cancel, expected_steps(method.method)):
                    _, reconstruction = invert(method, images)
            except InversionCancelled:
                raise
            except (ValueError, RuntimeError, FileNotFoundError) as error:
                results.append(Reconstruction(name, problem=str(error)))
                continue
            results.append(self._measure(name, method, images, reconstruction))
        return results

    def _measure(
        self, name: str, method: CachedInversion, images: torch.Tensor, rec: torch.Tensor
    ) -> Reconstruction:
        """The reconstruction's pictures and errors."""
        mae = float(per_image_reconstruction_errors(images, rec, ssim=False)["mae"][0])
        lpips = None
        if self.lpips is not None:
            with torch.no_grad():
                lpips = float(self.lpips(images, rec)[0])
        return Reconstruction(
            name,
            picture=enlarge(to_picture(rec[0]).convert("RGB"), self.factor),
            errors=enlarge(error_map(images[0], rec[0]).convert("RGB"), self.factor),
            mae=mae,
            lpips=lpips,
            seconds=method.seconds.get(image_key(images[0])),
        )

    # ---------------------------------------------------------------- edits
    def settings(
        self, edit: Edit, method: str, labels: dict[str, Any] | None = None
    ) -> EditSettings:
        """The settings of an edit with `method`'s codes, in a new folder under
        `workdir/edits`."""
        choice = self.methods[method].choice
        with self._lock:
            number = next(self._edit_numbers)
        folder = self.workdir / "edits" / f"{number:04d}_{edit.application}"
        return EditSettings(
            edit,
            choice,
            folder,
            self.checkpoint,
            self.seed,
            str(self.device),
            labels or {},
        )

    def config(self, settings: EditSettings) -> DictConfig:
        """conf/apply.yaml as the settings' apply command composes it."""
        return with_values(compose_apply(settings.groups()), settings.values())

    def edit(
        self,
        edit: Edit,
        method: str,
        images: Sequence[Path],
        report: Report = _silent,
        cancel: threading.Event | None = None,
    ) -> EditResult:
        """Run `edit` on the aligned `images` with `method`'s codes: the application the
        apply command would run, built from the same config, writing into the edit's folder.
        Returns the result pictures, the downloads and the settings."""
        start = time.perf_counter()
        if len(images) != edit.image_count:
            second = " and a second image" if edit.image_count == 2 else ""
            raise ValueError(f"{edit.application} needs an image{second}: pick or upload it")
        cached = self._method(method)
        labels = self._labels(edit)
        settings = self.settings(edit, method, labels)
        for source, target in zip(images, settings.input_files(), strict=True):
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, target)
        if isinstance(edit, DirectionEdit):
            combined = combine(self.sliders, edit.strengths, self.generator, edit.direction_name)
            combined.save(settings.folder / "directions.pt")
        cfg = self.config(settings)
        application = _plain(cfg.application)
        size = input_size(
            application.pop("input_layout", "tiles"), cfg.get("size"), self.resolution
        )
        inputs = load_images(cfg.inputs, self.channels, size).to(self.device)
        run = hydra.utils.instantiate(application)
        # Inpainting inverts a damaged image, new every time, and its masked inversion needs
        # the optimisation method itself; the other edits reuse the image's kept codes.
        chosen = cached.method if isinstance(edit, InpaintingEdit) else cached
        outputs = settings.folder / "outputs"

        def step(done: int, total: int | None) -> None:
            report(done, total, f"inverting with {method}")

        total = expected_steps(cached.method)
        with watch_steps(step, cancel or threading.Event(), total):
            run(chosen, inputs, self.resolution, outputs)
        return self._collect(settings, outputs, start)

    def _labels(self, edit: Edit) -> dict[str, Any]:
        """What the settings file says besides the numbers: the sliders' names."""
        if isinstance(edit, DirectionEdit):
            named = zip((s.label for s in self.sliders), edit.strengths, strict=True)
            return {"directions": {label: float(value) for label, value in named}}
        return {}

    def _collect(self, settings: EditSettings, outputs: Path, start: float) -> EditResult:
        """The result pictures from the application's grid, and the files to download
        (`start`: when the edit began, for its seconds)."""
        edit = settings.edit
        grid = outputs / edit.result_grid()
        columns = edit.result_columns(grid_columns(grid, self.resolution))
        pictures = grid_cells(grid, self.resolution, columns)
        folder = settings.folder
        result = folder / "result.png"
        strip(pictures).save(result)
        codes = edit.edited_codes(outputs, self.generator)
        code = folder / "code.pt"
        torch.save({"codes": codes.cpu(), "settings": settings.to_dict()}, code)
        settings_file = folder / "settings.yaml"
        settings_file.write_text(yaml.safe_dump(settings.to_dict(), sort_keys=False))
        files = [result, code, settings_file]
        if isinstance(edit, DirectionEdit):
            files.append(folder / "directions.pt")
        animation = None
        if len(pictures) > 1:
            enlarged = [enlarge(p.convert("RGB"), self.factor) for p in pictures]
            animation = save_animation(enlarged, folder / "animation.gif")
            files.append(animation)
        return EditResult(settings, pictures, files, animation, time.perf_counter() - start)


# -------------------------------------------------------------------- building a studio
def build_methods(
    model: GenerativeModel, choices: dict[str, MethodChoice], seed: int
) -> dict[str, MethodEntry]:
    """Each configured method built from conf/inversion as the apply command builds it; one
    that cannot be built here (e.g. LPIPS weights missing offline) keeps its problem."""
    entries = {}
    for name, choice in choices.items():
        entry = MethodEntry(choice)
        try:
            cfg = compose_apply([*choice.apply_overrides(), f"seed={seed}"])
            problem = _offline_problem(name, cfg.inversion)
            if problem:
                entry.problem = problem
            else:
                entry.method = CachedInversion(hydra.utils.instantiate(cfg.inversion, model=model))
        except (ValueError, RuntimeError, FileNotFoundError, OSError) as error:
            entry.problem = str(error)
        entries[name] = entry
    return entries


def _offline_problem(name: str, inversion: DictConfig) -> str | None:
    """Why method `name` would download LPIPS weights (the studio never downloads)."""
    weight = inversion.get("lpips_weight", 0)
    options = inversion.get("lpips")
    if weight and options is not None and options.get("weights_path") is None:
        net = options.get("net", "vgg")
        return (
            f"its LPIPS loss ({net}) has no local weights and the studio does not download: "
            f"set INVGAN_LPIPS_{str(net).upper()}_WEIGHTS to a lpips_{net}_full.pth, or "
            f"+methods.{name}.lpips_weight=0"
        )
    return None


def build_studio(cfg: DictConfig, workdir: Path) -> Studio:
    """A studio from conf/studio.yaml: the model of `ckpt_path` (or `generator_path` with
    `data`), its methods and sliders, LPIPS for the comparison."""
    device = resolve_device(cfg.device)
    model, data_cfg, source = load_model_and_data(cfg, device)
    methods_cfg = _plain(cfg.methods)
    choices = {
        str(name): MethodChoice.from_options(str(name), options)
        for name, options in methods_cfg.items()
        if options is not None  # methods.<name>=null drops one
    }
    if not choices:
        raise ValueError(
            "methods is empty: configure at least one inversion method, e.g. methods.encoder={}"
        )
    methods = build_methods(model, choices, int(cfg.seed))
    available = [entry.method for entry in methods.values() if entry.method is not None]
    if not available:
        problems = "; ".join(f"{name}: {e.problem}" for name, e in methods.items())
        raise ValueError(f"no configured inversion method can run here ({problems})")
    resolution, channels = int(data_cfg.resolution), int(data_cfg.channels)
    generator = available[0].generator
    directions = cfg.directions
    sefa = None
    if directions.sefa is not None:
        sefa = _plain(directions.sefa)
    sliders = studio_sliders(
        available[0], generator, channels, resolution, sefa, list(directions.saved or [])
    )
    lpips, lpips_problem = _lpips(cfg.lpips, device)
    upload = UploadLimits(
        int(float(cfg.upload.max_mb) * 2**20),
        ImageLimits(
            int(cfg.upload.max_image_pixels), float(cfg.upload.max_aspect_ratio), "upload"
        ),
    )
    return Studio(
        model,
        str(cfg.ckpt_path) if cfg.get("ckpt_path") else None,
        source,
        resolution,
        channels,
        methods,
        sliders,
        workdir,
        upload,
        device,
        int(cfg.seed),
        lpips,
        lpips_problem,
        int(cfg.display_size),
    )


def _lpips(
    options: DictConfig, device: torch.device
) -> tuple[PerceptualDistance | None, str | None]:
    """The comparison's LPIPS network, or why there is none (no local weights)."""
    if options.weights_path is None:
        net = options.net
        return None, (
            f"LPIPS needs local weights: set INVGAN_LPIPS_{str(net).upper()}_WEIGHTS (or "
            "lpips.weights_path) to a lpips_<net>_full.pth"
        )
    distance = PerceptualDistance(options.net, options.weights_path, options.resize)
    return distance.to(device), None
