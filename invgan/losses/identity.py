"""pSp's identity loss: 1 - cosine similarity of ArcFace face embeddings of an image and its
reconstruction, from a frozen IR-SE50 face-recognition network loaded from a local file."""

from __future__ import annotations

import os

import torch
import torch.nn.functional as F
from torch import nn

from invgan.checkpoints.arcface import read_arcface_weights
from invgan.nn.encoders.ir_se import IRBackbone

# ArcFace's aligned-face input side; the body's four halvings leave 7x7 maps.
ARCFACE_INPUT = 112
EMBEDDING_DIM = 512
# pSp crops rows 35:223 and columns 32:220 of 256-px FFHQ images, the 188-px face region.
PSP_CROP_FRACTION = 188 / 256


class ArcFace(IRBackbone):
    """IR-SE face recognition network: 112x112 RGB faces in [-1, 1] -> unit embeddings (N, 512).

    State dict as in `model_ir_se50.pth`: `input_layer.*`, `body.*` (see
    `invgan.nn.encoders.ir_se`) and `output_layer.{0,3,4}` (batch norm 2-d, linear
    512*7*7 -> 512, batch norm 1-d; index 1 is dropout and 2 flattening, without weights).
    """

    def __init__(self, depth: int = 50) -> None:
        super().__init__(channels=3, depth=depth, base_width=64, mode="ir_se")
        width = self.body.widths[-1]
        side = ARCFACE_INPUT // 16
        self.output_layer = nn.Sequential(
            nn.BatchNorm2d(width),
            # ArcFace trains with dropout 0.6; the loss only ever runs the network in eval mode.
            nn.Dropout(0.6),
            nn.Flatten(),
            nn.Linear(width * side * side, EMBEDDING_DIM),
            nn.BatchNorm1d(EMBEDDING_DIM),
        )

    def forward(self, faces: torch.Tensor) -> torch.Tensor:
        """L2-normalised embeddings of (N, 3, 112, 112) faces."""
        features = self.body(self.input_layer(faces))
        return F.normalize(self.output_layer(features), dim=1)


class IdentityLoss(nn.Module):
    """mean(1 - cos(ArcFace(x), ArcFace(y))) over a batch, with frozen weights from a file.

    Images in [-1, 1] (grayscale is repeated to RGB) are centre-cropped to `crop_fraction` of
    their side, where the face is, then resized to 112x112. The reference embeddings carry no
    gradient (pSp detaches them); the network stays in eval mode and untrained.
    """

    def __init__(
        self,
        weights_path: str | os.PathLike | None,
        crop_fraction: float = PSP_CROP_FRACTION,
        depth: int = 50,
    ) -> None:
        super().__init__()
        if not 0.0 < crop_fraction <= 1.0:
            raise ValueError(f"crop_fraction must be in (0, 1], got {crop_fraction}")
        self.crop_fraction = crop_fraction
        self.net = ArcFace(depth)
        state = read_arcface_weights(weights_path)
        try:
            self.net.load_state_dict(state)
        except RuntimeError as error:
            raise RuntimeError(
                f"{weights_path} is not an IR-SE{depth} ArcFace state dict "
                f"(input_layer.*, body.*, output_layer.*): {error}"
            ) from error
        self.requires_grad_(False)
        super().train(False)

    def train(self, mode: bool = True) -> IdentityLoss:
        """Stay in eval mode: batch-norm statistics and dropout belong to ArcFace's training."""
        return super().train(False)

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        """Unit ArcFace embeddings (N, 512) of the centred face crops of images in [-1, 1]."""
        side = images.shape[-1]
        crop = max(1, round(side * self.crop_fraction))
        top, left = (images.shape[-2] - crop) // 2, (side - crop) // 2
        faces = images[..., top : top + crop, left : left + crop]
        if faces.shape[1] == 1:
            faces = faces.expand(-1, 3, -1, -1)
        faces = F.interpolate(
            faces, size=(ARCFACE_INPUT, ARCFACE_INPUT), mode="bilinear", antialias=True
        )
        return self.net(faces)

    def forward(self, images: torch.Tensor, reconstructions: torch.Tensor) -> torch.Tensor:
        """Mean over the batch of 1 - cosine similarity between the faces' embeddings."""
        target = self.embed(images).detach()
        return (1.0 - (self.embed(reconstructions) * target).sum(dim=1)).mean()
