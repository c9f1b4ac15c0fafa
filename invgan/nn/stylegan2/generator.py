"""StyleGAN2 generator: mapping network plus skip-architecture synthesis network."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from invgan.nn.split import check_split_layer
from invgan.nn.stylegan2.equalized import EqualLinear
from invgan.nn.stylegan2.mapping import MappingNetwork
from invgan.nn.stylegan2.synthesis_layers import ConstantInput, StyledConv, ToImage
from invgan.nn.stylegan2.widths import log2_resolution, width_schedule


class StyleGAN2Generator(nn.Module):
    """w (or W+) -> image, roughly in [-1, 1] (no output non-linearity, as in StyleGAN2).

    The generator owns its mapping network (`style`, exposed as `mapping`): InvGAN's module
    then takes `mapping: null`. The synthesis network starts from a learned 4x4 constant; each
    resolution has an upsampling and a plain styled conv, per-layer noise and a to-image layer
    whose outputs are summed across resolutions. Layer i of the n_latent = 2 * log2(res) - 2
    style inputs drives: 0 -> conv1, 1 -> to_rgb1, then (2k+1, 2k+2, 2k+3) -> convs 2k, 2k+1
    and to_rgbs k.

    It takes w, not z: the port's `g([z])` is `g(g.mapping(z))` here.
    Split points (`invgan.nn.split`): layer l is the end of the l-th resolution block (4x4 for
    l = 1), for every block but the last. The skip architecture carries two things past a
    split, the feature maps and the image summed so far; both have the block's resolution, so
    the split state is one tensor, the features with the image's channels appended
    (N, width + channels, H, W). Multi-code inversion then weights the image channels like
    any other channel.
    State-dict names match the rosinality port (`style.*`, `input.input`, `conv1.*`,
    `to_rgb1.*`, `convs.*`, `to_rgbs.*`, `noises.noise_*`), so its `g_ema` weights load with
    strict=True for equal resolution, w_dim, n_mlp, channel_multiplier and channels=3.
    Widths are min(channel_max, channel_base * channel_multiplier / res); shrink
    channel_base and channel_max for tiny test networks.
    """

    def __init__(
        self,
        w_dim: int = 512,
        resolution: int = 1024,
        channels: int = 3,
        n_mlp: int = 8,
        lr_mlp: float = 0.01,
        channel_multiplier: int = 2,
        channel_base: int = 16384,
        channel_max: int = 512,
    ) -> None:
        super().__init__()
        self.w_dim = w_dim
        self.resolution = resolution
        self.channels = channels
        log_size = log2_resolution(resolution)
        width = width_schedule(channel_base, channel_multiplier, channel_max)
        self.style = MappingNetwork(w_dim, n_mlp, lr_mlp)
        self.input = ConstantInput(width(4))
        self.conv1 = StyledConv(width(4), width(4), w_dim)
        self.to_rgb1 = ToImage(width(4), w_dim, channels, upsample=False)
        self.convs = nn.ModuleList()
        self.to_rgbs = nn.ModuleList()
        in_width = width(4)
        for log_res in range(3, log_size + 1):
            out_width = width(2**log_res)
            self.convs.append(StyledConv(in_width, out_width, w_dim, upsample=True))
            self.convs.append(StyledConv(out_width, out_width, w_dim))
            self.to_rgbs.append(ToImage(out_width, w_dim, channels))
            in_width = out_width
        self.num_layers = len(self.convs) + 1
        self.n_latent = 2 * log_size - 2
        # Fixed noise maps, one per styled conv, used when noise is not randomised.
        self.noises = nn.Module()
        for i in range(self.num_layers):
            side = 2 ** ((i + 5) // 2)
            self.noises.register_buffer(f"noise_{i}", torch.randn(1, 1, side, side))

    @property
    def mapping(self) -> MappingNetwork:
        """The mapping network M: z (N, w_dim) -> w (N, w_dim); stored as `style`."""
        return self.style

    @torch.no_grad()
    def mean_latent(self, n: int) -> torch.Tensor:
        """The average w (1, w_dim) of `n` random z, the usual truncation centre."""
        z = torch.randn(n, self.w_dim, device=self.input.input.device)
        return self.style(z).mean(dim=0, keepdim=True)

    def _styles(self, w: torch.Tensor) -> torch.Tensor:
        """W+ codes (N, n_latent, w_dim) from w (N, w_dim), broadcast, or from W+ as given."""
        if w.ndim == 2 and w.shape[1] == self.w_dim:
            return w.unsqueeze(1).expand(-1, self.n_latent, -1)
        if w.ndim == 3 and w.shape[1:] == (self.n_latent, self.w_dim):
            return w
        raise ValueError(
            f"expected w of shape (N, {self.w_dim}) or W+ of shape "
            f"(N, {self.n_latent}, {self.w_dim}), got {tuple(w.shape)}"
        )

    def _noise_maps(
        self, noise: list[torch.Tensor | None] | None, randomize_noise: bool | None
    ) -> list[torch.Tensor | None]:
        """The given maps, checked, or fresh (None entries) / stored ones (see `forward`)."""
        if noise is None:
            if self.training if randomize_noise is None else randomize_noise:
                noise = [None] * self.num_layers
            else:
                noise = [getattr(self.noises, f"noise_{i}") for i in range(self.num_layers)]
        if len(noise) != self.num_layers:
            raise ValueError(f"expected {self.num_layers} noise maps, got {len(noise)}")
        return noise

    def style_affines(self, layer: int) -> list[EqualLinear]:
        """The style affines that W+ layer `layer` drives: 0 -> conv1, 1 -> to_rgb1 and
        convs[0], then 2k -> convs[2k - 1], 2k + 1 -> to_rgbs[k - 1] and convs[2k] (the
        to-image layer shares its code with the next block's first conv)."""
        if not 0 <= layer < self.n_latent:
            raise ValueError(
                f"layer {layer} does not exist: the StyleGAN2 generator has W+ layers "
                f"0..{self.n_latent - 1}"
            )
        # nn.ModuleList items are typed as plain modules; these are ModulatedConv2d layers.
        modules: list[Any]
        if layer == 0:
            modules = [self.conv1.conv]
        elif layer == 1:
            modules = [self.to_rgb1.conv, self.convs[0].conv]
        elif layer % 2 == 0:
            modules = [self.convs[layer - 1].conv]
        else:
            modules = [self.to_rgbs[(layer - 3) // 2].conv]
            if layer - 1 < len(self.convs):
                modules.append(self.convs[layer - 1].conv)
        return [module.modulation for module in modules]

    def code_affine_weight(self, layers: Sequence[int] | None = None) -> torch.Tensor:
        """The style affines (modulation weights) of the chosen W+ layers, stacked."""
        chosen = range(self.n_latent) if layers is None else layers
        affines = [affine for layer in chosen for affine in self.style_affines(layer)]
        return torch.cat([affine.effective_weight() for affine in affines])

    @property
    def split_layers(self) -> int:
        """Number of split points: every resolution block but the last."""
        return len(self.to_rgbs)

    def _synthesis(
        self,
        x: torch.Tensor | None,
        image: torch.Tensor | None,
        styles: torch.Tensor,
        noise: list[torch.Tensor | None],
        start: int,
        stop: int,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Resolution blocks start..stop-1 on (features, image so far); block 0 starts from
        the constant input and ignores both."""
        for k in range(start, stop):
            if k == 0:
                x = self.conv1(self.input(styles.shape[0]), styles[:, 0], noise[0])
                image = self.to_rgb1(x, styles[:, 1])
                continue
            x = self.convs[2 * k - 2](x, styles[:, 2 * k - 1], noise[2 * k - 1])
            x = self.convs[2 * k - 1](x, styles[:, 2 * k], noise[2 * k])
            image = self.to_rgbs[k - 1](x, styles[:, 2 * k + 1], image)
        # Set by block 0, or passed in by `tail`, which starts after it.
        assert x is not None and image is not None
        return x, image

    def head(
        self, w: torch.Tensor, layer: int, noise: list[torch.Tensor | None] | None = None
    ) -> torch.Tensor:
        """G1_layer: features and image so far, (N, width + channels, H, W), from w or W+."""
        check_split_layer(layer, self.split_layers, type(self).__name__)
        styles = self._styles(w)
        x, image = self._synthesis(None, None, styles, self._noise_maps(noise, None), 0, layer)
        return torch.cat([x, image], dim=1)

    def tail(
        self,
        features: torch.Tensor,
        w: torch.Tensor,
        layer: int,
        noise: list[torch.Tensor | None] | None = None,
    ) -> torch.Tensor:
        """G2_layer: images from `head`'s state, the later blocks styled by w or W+."""
        check_split_layer(layer, self.split_layers, type(self).__name__)
        width = features.shape[1] - self.channels
        x, image = features.split([width, self.channels], 1)
        noise = self._noise_maps(noise, None)
        return self._synthesis(x, image, self._styles(w), noise, layer, len(self.to_rgbs) + 1)[1]

    def forward(
        self,
        w: torch.Tensor,
        truncation: float = 1.0,
        truncation_latent: torch.Tensor | None = None,
        noise: list[torch.Tensor | None] | None = None,
        randomize_noise: bool | None = None,
    ) -> torch.Tensor:
        """Images (N, channels, res, res) from w (N, w_dim) or W+ (N, n_latent, w_dim).

        truncation psi moves codes towards `truncation_latent` (see `mean_latent`): psi = 0
        gives the centre's image. `noise` lists one map per layer (None entries draw fresh
        noise); without it, fresh noise is drawn if `randomize_noise`, else the stored
        `noises` are used. By default noise is fresh in training mode and fixed in eval mode,
        so that inversion and evaluation are deterministic.
        """
        styles = self._styles(w)
        if truncation != 1.0:
            if truncation_latent is None:
                raise ValueError("truncation != 1 needs truncation_latent, e.g. mean_latent(4096)")
            styles = truncation_latent + truncation * (styles - truncation_latent)
        noise = self._noise_maps(noise, randomize_noise)
        return self._synthesis(None, None, styles, noise, 0, len(self.to_rgbs) + 1)[1]
