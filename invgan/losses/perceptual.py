"""LPIPS perceptual distance (Zhang et al. 2018), frozen, from local weights or the standard
download."""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import lpips
import torch
import torch.nn.functional as F
from torch import nn

from invgan.checkpoints.safe_load import safe_torch_load

NETS = ("vgg", "alex")


def _build_lpips(net: str, weights_path: str | os.PathLike | None) -> lpips.LPIPS:
    """lpips.LPIPS v0.1 with the trunk and linear heads from `weights_path`, or downloaded."""
    if weights_path is None:
        try:
            return lpips.LPIPS(net=net, verbose=False)
        except (OSError, RuntimeError) as error:  # URLError is an OSError
            raise RuntimeError(
                f"LPIPS ({net}) needs torchvision's ImageNet {net} weights and could not get them "
                f"({error}). Offline, pass a full LPIPS state dict as weights_path (e.g. "
                f"../shared/weights/lpips_{net}_full.pth, or set INVGAN_LPIPS_"
                f"{net.upper()}_WEIGHTS), or put torchvision's file in "
                "$TORCH_HOME/hub/checkpoints."
            ) from error
    path = Path(weights_path)
    if not path.is_file():
        raise FileNotFoundError(
            f"LPIPS weights not found: {path}. Expected a full lpips.LPIPS(net={net!r}) state "
            f"dict such as lpips_{net}_full.pth (see ../shared/weights/README.md)."
        )
    with warnings.catch_warnings():  # torchvision's notice about the `pretrained` argument
        warnings.simplefilter("ignore", UserWarning)
        model = lpips.LPIPS(net=net, pnet_rand=True, pretrained=False, verbose=False)
    state = safe_torch_load(path)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as error:
        raise RuntimeError(
            f"{path} is not a full LPIPS {net} state dict (trunk + linear heads): {error}"
        ) from error
    return model


class PerceptualDistance(nn.Module):
    """Per-image LPIPS distance between image batches in [-1, 1], with no trainable weights.

    `resize` upsamples both batches (bilinear) to that side first when they are smaller:
    LPIPS's trunks pool five times, so tiny images leave almost no spatial extent in the deep
    layers. The module stays in eval mode; gradients flow to the inputs only.
    """

    def __init__(
        self,
        net: str = "vgg",
        weights_path: str | os.PathLike | None = None,
        resize: int | None = None,
    ) -> None:
        super().__init__()
        if net not in NETS:
            raise ValueError(f"LPIPS net {net!r}; choose one of {NETS}")
        if resize is not None and resize < 16:
            raise ValueError(f"LPIPS resize must be at least 16 pixels or null, got {resize}")
        self.net = net
        self.resize = resize
        self.lpips = _build_lpips(net, weights_path)
        self.requires_grad_(False)
        super().train(False)

    def train(self, mode: bool = True) -> PerceptualDistance:
        """Stay in eval mode (LPIPS's dropout is for training its heads, not for use)."""
        return super().train(False)

    def _prepare(self, images: torch.Tensor) -> torch.Tensor:
        if images.shape[1] == 1:
            images = images.expand(-1, 3, -1, -1)
        if self.resize is not None and images.shape[-1] < self.resize:
            images = F.interpolate(
                images, size=(self.resize, self.resize), mode="bilinear", align_corners=False
            )
        return images

    def forward(self, images: torch.Tensor, other: torch.Tensor) -> torch.Tensor:
        """LPIPS distance per image, shape (N,)."""
        if images.shape != other.shape:
            raise ValueError(f"shapes differ: {tuple(images.shape)} and {tuple(other.shape)}")
        return self.lpips(self._prepare(images), self._prepare(other)).flatten()


def loss_perceptual_distance(
    options: PerceptualDistance | Mapping[str, Any] | None, weight: float, device: torch.device
) -> PerceptualDistance | None:
    """The LPIPS distance an optimisation loss weighs by `weight`, on `device`: None when the
    weight is 0 (the network is never built), else built from `net`/`weights_path`/`resize`
    options (or given ready)."""
    if weight == 0:
        return None
    if options is None:
        raise ValueError("lpips_weight > 0 needs lpips options (net, weights_path, resize)")
    if not isinstance(options, PerceptualDistance):
        options = PerceptualDistance(**options)
    return options.to(device)
