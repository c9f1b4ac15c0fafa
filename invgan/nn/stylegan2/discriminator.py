"""StyleGAN2 residual discriminator with the InvGAN latent head."""

from __future__ import annotations

import torch
from torch import nn

from invgan.nn.discriminator_output import DiscriminatorOutput
from invgan.nn.stylegan2.discriminator_blocks import ConvLayer, ResBlock
from invgan.nn.stylegan2.equalized import EqualLinear
from invgan.nn.stylegan2.minibatch_stddev import minibatch_stddev
from invgan.nn.stylegan2.widths import log2_resolution, width_schedule


class StyleGAN2Discriminator(nn.Module):
    """Image -> (real/fake logit, inferred w, features) with a shared residual trunk.

    The trunk (`convs`: a 1x1 from-image conv, then residual blocks down to 4x4) is the
    official one, and so is the adversarial head (minibatch stddev, `final_conv`,
    `final_linear`). The latent head (`latent_head`: 3x3 conv, two linear layers to w_dim)
    branches from the same 4x4 features, not from the adversarial head (InvGAN paper,
    Section 3.2). It skips the minibatch stddev so that the code inferred for an image does
    not depend on the rest of its batch. Widths follow the generator's rule.
    """

    def __init__(
        self,
        w_dim: int = 512,
        resolution: int = 1024,
        channels: int = 3,
        channel_multiplier: int = 2,
        channel_base: int = 16384,
        channel_max: int = 512,
        stddev_group: int = 4,
    ) -> None:
        super().__init__()
        self.w_dim = w_dim
        self.stddev_group = stddev_group
        log_size = log2_resolution(resolution)
        width = width_schedule(channel_base, channel_multiplier, channel_max)
        trunk: list[nn.Module] = [ConvLayer(channels, width(resolution), 1)]
        for log_res in range(log_size, 2, -1):
            trunk.append(ResBlock(width(2**log_res), width(2 ** (log_res - 1))))
        self.convs = nn.Sequential(*trunk)
        base = width(4)
        self.final_conv = ConvLayer(base + 1, base, 3)
        self.final_linear = nn.Sequential(
            EqualLinear(base * 4 * 4, base, activate=True), EqualLinear(base, 1)
        )
        self.latent_head = nn.Sequential(
            ConvLayer(base, base, 3),
            nn.Flatten(),
            EqualLinear(base * 4 * 4, base, activate=True),
            EqualLinear(base, w_dim),
        )

    def _logits(self, trunk_output: torch.Tensor) -> torch.Tensor:
        x = self.final_conv(minibatch_stddev(trunk_output, self.stddev_group))
        return self.final_linear(x.flatten(1)).squeeze(1)

    def forward(self, x: torch.Tensor) -> DiscriminatorOutput:
        """Return logits (N,), inferred latents (N, w_dim) and each trunk stage's output."""
        features = []
        for stage in self.convs:
            x = stage(x)
            features.append(x)
        return DiscriminatorOutput(self._logits(x), self.latent_head(x), features)

    def latents_from_features(self, features: list[torch.Tensor]) -> torch.Tensor:
        """Apply the latent head to trunk features returned by `forward`."""
        return self.latent_head(features[-1])

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Infer latent codes only (the model-based inversion path)."""
        return self.latent_head(self.convs(x))
