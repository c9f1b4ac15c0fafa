"""Where the FID Inception-v3 weights come from, and the FID metric built on them."""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torchmetrics.image.fid import FrechetInceptionDistance

from invgan.checkpoints.safe_load import safe_torch_load

INCEPTION_WEIGHTS_FILE = "weights-inception-2015-12-05-6726825d.pth"
INCEPTION_WEIGHTS_ENV = "INVGAN_INCEPTION_WEIGHTS"
FID_FEATURES = 2048


def hub_weights_path() -> Path:
    """Path where torch hub (and so torchmetrics) caches the FID Inception weights."""
    return Path(torch.hub.get_dir()) / "checkpoints" / INCEPTION_WEIGHTS_FILE


def resolve_inception_weights(weights_path: str | None) -> str | None:
    """Local Inception weights file: explicit path, else env variable, else hub cache, else None.

    None means torchmetrics falls back to its own download. An explicit path or an environment
    variable that names a missing file is an error rather than a silent download.
    """
    if weights_path:
        if not Path(weights_path).is_file():
            raise FileNotFoundError(
                f"Inception weights file not found: {weights_path} (from metrics.fid.weights_path)"
            )
        return str(weights_path)
    from_env = os.environ.get(INCEPTION_WEIGHTS_ENV)
    if from_env:
        if not Path(from_env).is_file():
            raise FileNotFoundError(
                f"Inception weights file not found: {from_env} (from ${INCEPTION_WEIGHTS_ENV})"
            )
        return from_env
    cached = hub_weights_path()
    return str(cached) if cached.is_file() else None


def build_fid_metric(
    weights_path: str | None = None, device: torch.device | str = "cpu"
) -> FrechetInceptionDistance:
    """FID metric (2048 pool features, real statistics kept across resets) on local weights."""
    resolved = resolve_inception_weights(weights_path)
    if resolved is not None:
        # torch-fidelity reads the file with `weights_only=False`, which would run code pickled
        # into it: the file must load safely first.
        safe_torch_load(resolved)
    try:
        metric = FrechetInceptionDistance(
            feature=FID_FEATURES,
            reset_real_features=False,
            feature_extractor_weights_path=resolved,
        )
    except OSError as error:  # URLError, socket and HTTP errors are all OSErrors
        if resolved is not None:
            raise
        raise RuntimeError(
            f"The FID Inception weights could not be downloaded ({error}). Without network "
            f"access, set metrics.fid.weights_path or ${INCEPTION_WEIGHTS_ENV} to a local copy "
            f"of {INCEPTION_WEIGHTS_FILE}, or copy that file into {hub_weights_path().parent}/"
        ) from error
    return metric.to(device)
