"""Run an application of inversion on real images with a trained checkpoint.

    python -m invgan.apply application=<name> ckpt_path=<run>/checkpoints/last.ckpt \
        inputs=<image or folder> [inversion=<method>]

or with a pSp / e4e checkpoint instead of a run: encoder_path=<file> (or registry:<name>).

Applications (`conf/application/`, documented with examples in `docs/applications.md`):
tiled_reconstruction, deblur, frame_interpolation (images of any size, inverted patch by
patch); interpolation, style_mixing, inpainting, merging, attribute_editing, subspace_swap
(whole images at the generator's resolution). The images are inverted by the method of
`conf/inversion/` (`inversion=encoder` by default: the model's own encoder; `optimization`,
`hybrid`, `domain_regularized`, `mganprior`, `pmsfc` and, for ReStyle runs, `restyle` work
too). Outputs (PNG grids and the latent codes as .pt) go to the run directory,
logs/apply/runs/<date_time>/.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, cast

import hydra
from omegaconf import DictConfig, OmegaConf

from invgan.cli.config_dir import CONFIG_DIR
from invgan.evaluation.loading import load_inference_model, resolve_device
from invgan.image_inputs import load_images

log = logging.getLogger(__name__)


def input_size(layout: str, size: int | None, resolution: int) -> int | None:
    """The side the inputs are resized and centre-cropped to (None: kept as they are).

    `tiles` applications cut images of any size into patches of the generator's resolution;
    `whole` applications edit whole images, which default to the generator's resolution.
    """
    if layout == "tiles":
        return size
    if layout == "whole":
        return size if size is not None else resolution
    raise ValueError(f"application.input_layout={layout!r}; choose tiles or whole")


def apply(cfg: DictConfig) -> list[Path]:
    """Load the checkpoint and the input images, run the configured application."""
    device = resolve_device(cfg.device)
    model, resolution, channels = load_inference_model(cfg, device)
    application = cast(dict[str, Any], OmegaConf.to_container(cfg.application, resolve=True))
    size = input_size(application.pop("input_layout", "tiles"), cfg.get("size"), resolution)
    images = load_images(cfg.inputs, channels, size).to(device)
    method = hydra.utils.instantiate(cfg.inversion, model=model)
    run = hydra.utils.instantiate(application)
    paths = run(method, images, resolution, Path(cfg.paths.output_dir))
    for path in paths:
        log.info("wrote %s", path)
    return paths


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="apply.yaml")
def main(cfg: DictConfig) -> None:
    """Hydra entry point."""
    apply(cfg)
