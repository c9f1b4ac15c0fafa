"""A pSp / e4e checkpoint evaluated or applied as it is (`encoder_path=<file>` of evaluate.py
and `python -m invgan.apply`): its encoder, decoder and average latent in a `PSPModule` whose
options (w or W+ codes, offsets from the average latent, encoder input size) come from the
file's `opts` and weights."""

from __future__ import annotations

import functools
import os

import torch

from invgan.checkpoints.generator_import import frozen_generator_from_content
from invgan.checkpoints.psp_checkpoint import read_psp_checkpoint
from invgan.modules.psp import PSPModule


def load_pretrained_encoder_model(
    path: str | os.PathLike, resolution: int | None = None, channels: int | None = None
) -> PSPModule:
    """The pSp / e4e checkpoint at `path` (or `registry:<name>`) as an evaluation-ready
    `PSPModule` in eval mode; `resolution` and `channels`, when given, are checked against its
    decoder."""
    checkpoint = read_psp_checkpoint(path)
    generator = frozen_generator_from_content(
        checkpoint.path, checkpoint.content, resolution=resolution, channels=channels
    )
    encoder_resolution = checkpoint.input_resolution
    model = PSPModule(
        generator=generator,
        encoder=checkpoint.build_encoder,
        # Never stepped: evaluation and applications only encode and decode.
        optimizer=functools.partial(torch.optim.Adam, lr=1e-4),
        learn_in_w=checkpoint.learn_in_w,
        start_from_latent_avg=checkpoint.start_from_latent_avg,
        encoder_resolution=encoder_resolution,
        l2_weight=1.0,
        lpips_weight=0.0,
    )
    return model.eval()
