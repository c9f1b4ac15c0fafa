"""DCGAN generator and discriminator (with InvGAN latent head) for small images (28-64 px)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

import torch
from torch import nn

from invgan.nn.code_affine import refuse_layers
from invgan.nn.discriminator_output import DiscriminatorOutput
from invgan.nn.split import check_split_layer


def base_size(resolution: int, num_scales: int) -> int:
    """Return the base feature-map size, or raise if `resolution` does not divide evenly."""
    base = resolution >> num_scales
    if num_scales < 1 or base < 2 or base << num_scales != resolution:
        raise ValueError(
            f"resolution {resolution} is not divisible by 2**num_scales = {2**num_scales} "
            "with a base size of at least 2; use e.g. resolution 28 with num_scales 2 "
            "or resolution 32 with num_scales 3"
        )
    return base


# ConvTranspose2d, BatchNorm2d, ReLU: one upsampling block in `DCGANGenerator.upsample`.
_LAYERS_PER_BLOCK = 3


class DCGANGenerator(nn.Module):
    """w -> image in [-1, 1]: linear projection, transposed-conv upsampling with batch norm.

    Widths halve at each upsampling from `base_width * 2**(num_scales - 1)` down to
    `base_width`, so `base_width` scales the whole network. Split points (`invgan.nn.split`):
    layer 1 is the projection's (base_size x base_size) output, layer 1 + i the output of
    upsampling block i; G2 always keeps the to-image conv.
    """

    def __init__(
        self,
        w_dim: int,
        resolution: int,
        channels: int,
        base_width: int = 64,
        num_scales: int = 2,
    ) -> None:
        super().__init__()
        self.w_dim = w_dim
        self.resolution = resolution
        self.channels = channels
        self.base_size = base_size(resolution, num_scales)
        widths = [base_width * 2 ** (num_scales - 1 - i) for i in range(num_scales)]
        self.input_width = base_width * 2**num_scales
        self.project = nn.Sequential(
            nn.Linear(w_dim, self.input_width * self.base_size**2, bias=False),
            nn.BatchNorm1d(self.input_width * self.base_size**2),
            nn.ReLU(inplace=True),
        )
        blocks: list[nn.Module] = []
        in_width = self.input_width
        for width in widths:
            blocks += [
                nn.ConvTranspose2d(in_width, width, 4, stride=2, padding=1, bias=False),
                nn.BatchNorm2d(width),
                nn.ReLU(inplace=True),
            ]
            in_width = width
        self.upsample = nn.Sequential(*blocks)
        self.to_image = nn.Conv2d(in_width, channels, 3, padding=1)

    @property
    def split_layers(self) -> int:
        """Number of split points: the projection and each upsampling block."""
        return 1 + len(self.upsample) // _LAYERS_PER_BLOCK

    def code_affine_weight(self, layers: Sequence[int] | None = None) -> torch.Tensor:
        """The projection's weight with its eval-mode batch norm (a per-unit scale and shift,
        hence part of the same affine map) folded in."""
        refuse_layers(self, layers)
        linear = cast(nn.Linear, self.project[0])
        norm = cast(nn.BatchNorm1d, self.project[1])
        running_var = cast(torch.Tensor, norm.running_var)  # typed optional; tracked here
        scale = norm.weight / torch.sqrt(running_var + norm.eps)
        return scale[:, None] * linear.weight

    def _upsampling(self, x: torch.Tensor, start: int, stop: int) -> torch.Tensor:
        """Upsampling blocks start..stop-1 (each ConvTranspose-BN-ReLU) applied to x."""
        return self.upsample[start * _LAYERS_PER_BLOCK : stop * _LAYERS_PER_BLOCK](x)

    def head(self, w: torch.Tensor, layer: int) -> torch.Tensor:
        """G1_layer: the feature maps after the first `layer` layers, from w (N, w_dim)."""
        check_split_layer(layer, self.split_layers, type(self).__name__)
        x = self.project(w).view(-1, self.input_width, self.base_size, self.base_size)
        return self._upsampling(x, 0, layer - 1)

    def tail(self, features: torch.Tensor, w: torch.Tensor, layer: int) -> torch.Tensor:
        """G2_layer: images from `head`'s features (w is unused: no layer after the
        projection takes the code)."""
        check_split_layer(layer, self.split_layers, type(self).__name__)
        x = self._upsampling(features, layer - 1, self.split_layers - 1)
        return torch.tanh(self.to_image(x))

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        """Generate images (N, channels, resolution, resolution) in [-1, 1] from w (N, w_dim)."""
        return self.tail(self.head(w, self.split_layers), w, self.split_layers)


class DCGANDiscriminator(nn.Module):
    """Image -> (real/fake logit, inferred w, features) with a shared strided-conv trunk.

    Each scale is one 4x4 stride-2 convolution followed by `convs_per_scale - 1` 3x3
    convolutions at the new size (DCGAN's trunk is `convs_per_scale=1`). An InvGAN iteration
    runs the trunk on several batches, so each extra convolution costs training speed as well
    as inversion time (measured in docs/benchmarks.md). The two heads branch from the trunk's
    features rather than one being derived from the other: deriving the real/fake decision
    from the inferred code would force real and generated codes to be linearly separable
    (InvGAN paper, Section 3.2).
    """

    def __init__(
        self,
        w_dim: int,
        resolution: int,
        channels: int,
        base_width: int = 64,
        num_scales: int = 2,
        latent_hidden_dim: int = 256,
        convs_per_scale: int = 1,
    ) -> None:
        super().__init__()
        if convs_per_scale < 1:
            raise ValueError(
                "convs_per_scale must be at least 1 (the strided convolution), "
                f"got {convs_per_scale}"
            )
        self.w_dim = w_dim
        self.base_size = base_size(resolution, num_scales)
        blocks = []
        in_width = channels
        for i in range(num_scales):
            width = base_width * 2**i
            layers = [nn.Conv2d(in_width, width, 4, stride=2, padding=1)]
            layers += [nn.Conv2d(width, width, 3, padding=1) for _ in range(convs_per_scale - 1)]
            blocks.append(
                nn.Sequential(*(m for conv in layers for m in (conv, nn.LeakyReLU(0.2, True))))
            )
            in_width = width
        self.blocks = nn.ModuleList(blocks)
        feature_dim = in_width * self.base_size**2
        self.adversarial_head = nn.Linear(feature_dim, 1)
        self.latent_head = nn.Sequential(
            nn.Linear(feature_dim, latent_hidden_dim),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Linear(latent_hidden_dim, w_dim),
        )

    def forward(self, x: torch.Tensor) -> DiscriminatorOutput:
        """Return logits (N,), inferred latents (N, w_dim) and each trunk block's output."""
        features = []
        for block in self.blocks:
            x = block(x)
            features.append(x)
        flat = x.flatten(1)
        return DiscriminatorOutput(
            self.adversarial_head(flat).squeeze(1), self.latent_head(flat), features
        )

    def latents_from_features(self, features: list[torch.Tensor]) -> torch.Tensor:
        """Apply the latent head to trunk features returned by `forward`."""
        return self.latent_head(features[-1].flatten(1))

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Infer latent codes only (the model-based inversion path)."""
        for block in self.blocks:
            x = block(x)
        return self.latent_head(x.flatten(1))
