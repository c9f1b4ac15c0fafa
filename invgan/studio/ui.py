"""The studio's web page (Gradio): controls laid out around `Studio`'s plain functions.

The handlers here only translate between page values and `Studio` calls: which image the
session holds, slider values into edit settings, errors into messages on the page. Requests
go through Gradio's queue, each kind of request in its own concurrency group, so a long
optimisation never holds up a slider edit; a session's Cancel stops its optimisation at the
next step.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

# Gradio reads these when it is imported and when an app starts: no usage reports, no
# version check, no Hugging Face telemetry.
os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

import gradio as gr  # noqa: E402

from datamodules.image_files import list_images  # noqa: E402
from invgan.studio.display import enlarge, strip  # noqa: E402
from invgan.studio.progress import CancelFlags, InversionCancelled  # noqa: E402
from invgan.studio.settings import (  # noqa: E402
    DirectionEdit,
    Edit,
    InpaintingEdit,
    InterpolationEdit,
    StyleMixingEdit,
)
from invgan.studio.studio import EditResult, Reconstruction, Studio  # noqa: E402

# Problems a request can meet that the page shows as a message, not a crash.
SHOWN_ERRORS = (ValueError, FileNotFoundError, RuntimeError, OSError)


def example_choices(folder: str | Path | None, count: int) -> list[tuple[str, str]]:
    """(label, path) of the first `count` images of `folder`; none when it is not there."""
    if folder is None or count < 1 or not Path(folder).is_dir():
        return []
    try:
        paths = list_images(folder)[:count]
    except (ValueError, OSError):
        return []
    return [(path.name, str(path)) for path in paths]


def mask_box(layers: list[np.ndarray], resolution: int) -> tuple[int, int, int, int]:
    """(top, left, height, width) in generator pixels of the box around every pixel drawn on
    the editor's layers (RGBA arrays of the enlarged image)."""
    drawn = [layer for layer in layers if layer is not None and layer.ndim == 3]
    if not drawn:
        raise ValueError("draw over the part of the image to repair first (the brush)")
    painted: np.ndarray = np.zeros(drawn[0].shape[:2], dtype=bool)
    for layer in drawn:
        painted |= layer[..., -1] > 0 if layer.shape[-1] == 4 else layer.max(axis=-1) > 0
    if not painted.any():
        raise ValueError("draw over the part of the image to repair first (the brush)")
    rows, cols = np.nonzero(painted)
    scale_y, scale_x = painted.shape[0] / resolution, painted.shape[1] / resolution
    top, left = int(rows.min() // scale_y), int(cols.min() // scale_x)
    bottom = min(resolution, int(rows.max() // scale_y) + 1)
    right = min(resolution, int(cols.max() // scale_x) + 1)
    return top, left, bottom - top, right - left


def comparison_table(
    results: list[Reconstruction], lpips_problem: str | None, net: str = "alex"
) -> str:
    """A Markdown table: method, MAE, LPIPS (`net`), seconds (or the method's problem)."""
    lines = [f"| method | MAE | LPIPS ({net}) | seconds |", "| --- | --- | --- | --- |"]
    for result in results:
        if result.problem is not None:
            lines.append(f"| {result.method} | unavailable: {result.problem} | | |")
            continue
        lpips = "n/a" if result.lpips is None else f"{result.lpips:.4f}"
        seconds = "" if result.seconds is None else f"{result.seconds:.2f}"
        lines.append(f"| {result.method} | {result.mae:.4f} | {lpips} | {seconds} |")
    if lpips_problem is not None:
        lines.append(f"\nLPIPS n/a: {lpips_problem}")
    lines.append("\nMAE in [-1, 1] units; the error maps are white at an error of 0.5.")
    return "\n".join(lines)


def _reporter(progress: gr.Progress) -> Callable[[int, int | None, str], None]:
    """A `Studio` report that moves the page's progress bar."""

    def report(done: int, total: int | None, what: str) -> None:
        progress((min(done, total), total) if total else None, desc=what)

    return report


class StudioPage:
    """The handlers of one studio's page (each a thin call into `Studio`)."""

    def __init__(self, studio: Studio, edit_method: str | None = None) -> None:
        self.studio = studio
        self.flags = CancelFlags()
        available = studio.available_methods
        self.edit_method = edit_method if edit_method in available else available[0]

    # ------------------------------------------------------------ inputs
    def load(self, path: str | None, state: dict, slot: str) -> tuple[Any, dict, str]:
        """Align an uploaded or picked image into the session's `slot` (image or second)."""
        if not path:
            return gr.skip(), state, gr.skip()
        try:
            aligned = self.studio.align(path)
        except SHOWN_ERRORS as error:
            raise gr.Error(str(error), print_exception=False) from error
        state = {**state, slot: str(aligned)}
        which = "image" if slot == "image" else "second image"
        return self.studio.preview(aligned), state, f"Loaded {Path(path).name} as the {which}."

    def editor_background(self, state: dict) -> Any:
        """The inpainting editor's value: the aligned image, nothing drawn."""
        if not state.get("image"):
            return gr.skip()
        picture = np.asarray(self.studio.preview(Path(state["image"])).convert("RGBA"))
        return {"background": picture, "layers": [], "composite": picture}

    # ------------------------------------------------------------ comparison
    def compare(
        self,
        state: dict,
        names: list[str],
        request: gr.Request,
        progress: gr.Progress = gr.Progress(),  # noqa: B008 (Gradio's injection idiom)
    ) -> list[Any]:
        """Every chosen method's reconstruction, error map and numbers."""
        if not state.get("image"):
            raise gr.Error("upload or pick an image first", print_exception=False)
        try:
            with self.flags.running(request.session_hash) as cancel:
                report = _reporter(progress)
                results = self.studio.compare(Path(state["image"]), names, report, cancel)
        except InversionCancelled as stopped:
            return [gr.skip()] * (2 * len(self.studio.methods) + 1) + [f"Cancelled: {stopped}."]
        by_name = {result.method: result for result in results}
        pictures: list[Any] = []
        for name in self.studio.methods:
            result = by_name.get(name)
            pictures += [None, None] if result is None else [result.picture, result.errors]
        net = "alex" if self.studio.lpips is None else self.studio.lpips.net
        table = comparison_table(results, self.studio.lpips_problem, net)
        return [*pictures, table, "Inverted; edits start from the chosen method's code."]

    def cancel(self, request: gr.Request) -> None:
        """Stop this session's running optimisations at their next step (each then writes
        the status line: written here too, it could arrive after and hide that)."""
        if self.flags.cancel(request.session_hash):
            gr.Info("Cancelling: the running inversion stops at its next step.")
        else:
            gr.Info("Nothing is running to cancel.")

    # ------------------------------------------------------------ edits
    def _run(
        self,
        edit: Edit,
        state: dict,
        method: str,
        request: gr.Request,
        progress: gr.Progress,
    ) -> list[Any]:
        """Run an edit on the session's images; the page's result outputs."""
        if not state.get("image"):
            raise gr.Error("upload or pick an image first", print_exception=False)
        images = [Path(state["image"])]
        if edit.image_count == 2:
            if not state.get("second"):
                raise gr.Error(
                    f"{edit.application.replace('_', ' ')} needs a second image: upload or "
                    "pick one under 'Second image'",
                    print_exception=False,
                )
            images.append(Path(state["second"]))
        try:
            with self.flags.running(request.session_hash) as cancel:
                result = self.studio.edit(edit, method, images, _reporter(progress), cancel)
        except InversionCancelled as stopped:
            return [gr.skip()] * 4 + [f"Cancelled: {stopped}."]
        except SHOWN_ERRORS as error:
            raise gr.Error(str(error), print_exception=False) from error
        return self._outputs(result)

    def _outputs(self, result: EditResult) -> list[Any]:
        """Result picture (enlarged), animation, downloads, command, status."""
        picture = enlarge(strip([p.convert("RGB") for p in result.pictures]), self.studio.factor)
        animation = gr.update(
            value=str(result.animation) if result.animation else None,
            visible=result.animation is not None,
        )
        command = result.settings.command() or result.settings.to_dict()["command"]
        status = (
            f"Done: {result.settings.edit.application} in {result.seconds:.2f} s "
            f"(files in {result.settings.folder})."
        )
        return [picture, animation, [str(path) for path in result.files], command, status]

    def directions(
        self,
        request: gr.Request,
        progress: gr.Progress = gr.Progress(),  # noqa: B008
        state: dict | None = None,
        method: str = "",
        *strengths: float,
    ) -> list[Any]:
        """Edit along every slider's direction at once (Gradio passes the request and the
        progress first: the slider values come last, as many as there are sliders)."""
        edit = DirectionEdit(tuple(float(v) for v in strengths))
        return self._run(edit, state or {}, method, request, progress)

    def style_mixing(
        self,
        state: dict,
        method: str,
        start: float,
        end: float,
        request: gr.Request,
        progress: gr.Progress = gr.Progress(),  # noqa: B008
    ) -> list[Any]:
        """The first image with layers start..end-1 of the second."""
        return self._run(StyleMixingEdit(int(start), int(end)), state, method, request, progress)

    def interpolation(
        self,
        state: dict,
        method: str,
        steps: float,
        request: gr.Request,
        progress: gr.Progress = gr.Progress(),  # noqa: B008
    ) -> list[Any]:
        """A strip from the first image to the second."""
        return self._run(InterpolationEdit(int(steps)), state, method, request, progress)

    def inpainting(
        self,
        state: dict,
        method: str,
        drawn: dict | None,
        request: gr.Request,
        progress: gr.Progress = gr.Progress(),  # noqa: B008
    ) -> list[Any]:
        """Repair the box around what was drawn."""
        try:
            box = mask_box((drawn or {}).get("layers") or [], self.studio.resolution)
        except ValueError as error:
            raise gr.Error(str(error), print_exception=False) from error
        return self._run(InpaintingEdit(box), state, method, request, progress)


def empty_after(loaded: Any, box: gr.File) -> None:
    """Empty an upload box once its upload is taken or refused, so that the next file can be
    dropped on it (the aligned image shows what was taken)."""
    # `.then` is skipped after an error on this Gradio: success and failure both listed.
    for follow in (loaded.success, loaded.failure):
        follow(lambda: None, None, box, queue=False)


def build_page(
    studio: Studio,
    examples: list[tuple[str, str]],
    edit_method: str | None = None,
    max_strength: float = 3.0,
) -> gr.Blocks:
    """The studio's Blocks: inputs and comparison on top, edits in tabs, results below."""
    page = StudioPage(studio, edit_method)
    names = list(studio.methods)
    header = (
        f"# InvGAN studio\n`{studio.source}`: {studio.resolution} px, "
        f"{studio.n_latent} W+ layer(s). Upload or pick an image, invert it, then edit its code."
    )
    with gr.Blocks(analytics_enabled=False, title="InvGAN studio") as blocks:
        state = gr.State({"image": None, "second": None})
        gr.Markdown(header)
        with gr.Row():
            with gr.Column(scale=1, min_width=220):
                upload = gr.File(label="Upload an image", elem_id="upload")
                example = gr.Dropdown(
                    examples, value=None, label="or pick a test image", elem_id="example"
                )
                aligned = gr.Image(
                    label="aligned input", format="png", interactive=False, elem_id="aligned"
                )
            with gr.Column(scale=3):
                with gr.Row():
                    reconstructions = []
                    for name in names:
                        with gr.Column(min_width=140):
                            reconstructions.append(
                                gr.Image(
                                    label=f"{name}: reconstruction",
                                    format="png",
                                    interactive=False,
                                    elem_id=f"rec-{name}",
                                )
                            )
                            reconstructions.append(
                                gr.Image(
                                    label=f"{name}: |error|",
                                    format="png",
                                    interactive=False,
                                    elem_id=f"err-{name}",
                                )
                            )
                table = gr.Markdown(elem_id="comparison")
        with gr.Row():
            chosen = gr.CheckboxGroup(
                names,
                value=studio.available_methods,
                label="inversion methods to compare",
                elem_id="methods",
            )
            method = gr.Dropdown(
                studio.available_methods,
                value=page.edit_method,
                label="edit the code of",
                elem_id="edit-method",
            )
            invert_button = gr.Button("Invert", variant="primary", elem_id="invert")
            cancel_button = gr.Button("Cancel", variant="stop", elem_id="cancel")
        status = gr.Markdown(elem_id="status")
        with gr.Accordion("Second image (style mixing, interpolation)", open=False):
            with gr.Row():
                second_upload = gr.File(label="Upload a second image", elem_id="second-upload")
                second_example = gr.Dropdown(
                    examples, value=None, label="or pick one", elem_id="second-example"
                )
                second = gr.Image(
                    label="second input", format="png", interactive=False, elem_id="second"
                )
        with gr.Row(elem_id="edit-area"):
            with gr.Column(scale=1):
                with gr.Tabs():
                    with gr.Tab("Directions", elem_id="tab-directions"):
                        gr.Markdown(
                            "Strengths in standard deviations of the prior codes along each "
                            "direction; every slider's move is added to the code."
                        )
                        sliders = [
                            gr.Slider(
                                -max_strength,
                                max_strength,
                                value=0.0,
                                step=0.1,
                                label=slider.label,
                                elem_id=f"direction-{k}",
                            )
                            for k, slider in enumerate(studio.sliders)
                        ]
                        reset = gr.Button("Reset directions", elem_id="reset")
                    with gr.Tab("Style mixing", elem_id="tab-style"):
                        start = gr.Slider(
                            0,
                            studio.n_latent - 1,
                            value=0,
                            step=1,
                            label="from layer",
                            elem_id="start",
                        )
                        end = gr.Slider(
                            1,
                            studio.n_latent,
                            value=max(1, studio.n_latent // 2),
                            step=1,
                            label="to layer (excluded): from the second image, coarse first",
                            elem_id="end",
                        )
                        mix_button = gr.Button("Mix styles", elem_id="mix")
                    with gr.Tab("Interpolation", elem_id="tab-interpolation"):
                        steps = gr.Slider(2, 16, value=8, step=1, label="steps", elem_id="steps")
                        interpolate_button = gr.Button("Interpolate", elem_id="interpolate")
                    with gr.Tab("Inpainting", elem_id="tab-inpainting"):
                        editor = gr.ImageEditor(
                            label="draw over the part to repair (the box around it is refilled)",
                            type="numpy",
                            image_mode="RGBA",
                            sources=[],
                            transforms=[],
                            layers=False,
                            brush=gr.Brush(colors=["#ff0000"], color_mode="fixed"),
                            elem_id="editor",
                        )
                        inpaint_button = gr.Button("Inpaint", elem_id="inpaint")
            with gr.Column(scale=1):
                result = gr.Image(
                    label="result", format="png", interactive=False, elem_id="result"
                )
                animation = gr.Image(
                    label="animation", type="filepath", visible=False, elem_id="animation"
                )
        with gr.Row():
            downloads = gr.File(
                label="downloads: result, code (.pt), settings",
                file_count="multiple",
                interactive=False,
                elem_id="downloads",
            )
            command = gr.Textbox(
                label="reproduce from the command line",
                lines=5,
                buttons=["copy"],
                interactive=False,
                elem_id="command",
            )
        results = [result, animation, downloads, command, status]

        # ------------------------------------------------------------ events
        def loader(slot: str) -> Callable[..., Any]:
            return lambda path, session: page.load(path, session, slot)

        for source, event in ((upload, upload.upload), (example, example.input)):
            loaded = event(loader("image"), [source, state], [aligned, state, status])
            loaded.success(page.editor_background, state, editor)
            if source is upload:
                empty_after(loaded, upload)
        for source, event in (
            (second_upload, second_upload.upload),
            (second_example, second_example.input),
        ):
            loaded = event(loader("second"), [source, state], [second, state, status])
            if source is second_upload:
                empty_after(loaded, second_upload)
        invert_button.click(
            page.compare,
            [state, chosen],
            [*reconstructions, table, status],
            concurrency_id="invert",
        )
        cancel_button.click(page.cancel, None, None, concurrency_id="cancel")

        for slider in sliders:
            slider.release(
                page.directions,
                [state, method, *sliders],
                results,
                trigger_mode="always_last",
                concurrency_id="edit",
            )
        reset.click(lambda: [0.0] * len(sliders), None, sliders, queue=False)
        mix_button.click(
            page.style_mixing, [state, method, start, end], results, concurrency_id="edit"
        )
        interpolate_button.click(
            page.interpolation, [state, method, steps], results, concurrency_id="edit"
        )
        inpaint_button.click(
            page.inpainting, [state, method, editor], results, concurrency_id="edit"
        )
    return blocks


def serve(
    blocks: gr.Blocks,
    host: str,
    port: int | None,
    concurrency: int,
    queue_size: int,
    max_upload_bytes: int,
    workdir: Path,
    block: bool = True,
) -> str:
    """Start the page on http://host:port through the queue (`concurrency` requests of one
    kind at once, `queue_size` waiting), never as a public share link; returns its URL.
    Uploads over `max_upload_bytes` are refused by the server before they reach the studio."""
    blocks.queue(default_concurrency_limit=concurrency, max_size=queue_size)
    _, url, _ = blocks.launch(
        server_name=host,
        server_port=port,
        share=False,
        ssr_mode=False,
        mcp_server=False,
        quiet=True,
        show_error=True,
        max_file_size=max_upload_bytes,
        allowed_paths=[str(workdir)],
        prevent_thread_lock=not block,
    )
    return url
