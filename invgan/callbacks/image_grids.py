"""PNG grids of random samples and of real images beside their reconstructions."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol, cast

import pytorch_lightning as pl
import torch
from torchvision.utils import save_image

from invgan.utils.images import image_grid, to_signed_range


def interleave(first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
    """Stack two equal-shape image batches as first[0], second[0], first[1], second[1], ..."""
    return torch.stack([first, second], dim=1).flatten(0, 1)


class GridModel(Protocol):
    """What the grids need of the module being trained (the GAN and encoder recipes')."""

    @property
    def device(self) -> torch.device:
        """Where the networks are."""
        ...

    @property
    def iteration(self) -> torch.Tensor:
        """Training iterations done (a buffer, saved in checkpoints)."""
        ...

    @property
    def host_iteration(self) -> int:
        """The host's copy of `iteration`, readable without a device sync."""
        ...

    @property
    def z_dim(self) -> int:
        """Size of a prior sample z."""
        ...

    def generate(self, z: torch.Tensor) -> torch.Tensor:
        """Images in [-1, 1] from prior samples z (N, z_dim)."""
        ...

    def reconstruct(self, images: torch.Tensor) -> torch.Tensor:
        """G(E(x)) of images in [-1, 1]."""
        ...


class ImageGridCallback(pl.Callback):
    """Every `every_n_iterations` training iterations and at the end of fit, saves
    `samples_<iteration>.png` (fixed latent seeds, so grids compare across time) and
    `reconstructions_<iteration>.png` (real validation images beside G(D(x))) into
    `<run dir>/<subdir>` and sends them to the logger when it takes images.
    """

    def __init__(
        self,
        every_n_iterations: int = 500,
        num_images: int = 64,
        subdir: str = "images",
        seed: int = 0,
    ) -> None:
        if every_n_iterations < 1 or num_images < 1:
            raise ValueError("every_n_iterations and num_images must be >= 1")
        self.every_n_iterations = every_n_iterations
        self.num_images = num_images
        self.subdir = subdir
        self.seed = seed
        self._real: torch.Tensor | None = None

    def _output_dir(self, trainer: pl.Trainer) -> Path:
        return Path(trainer.default_root_dir) / self.subdir

    def _validation_images(self, trainer: pl.Trainer) -> torch.Tensor | None:
        if self._real is None:
            datamodule = trainer.datamodule  # type: ignore[attr-defined]  # set by Lightning
            if datamodule is None or getattr(datamodule, "val_dataset", None) is None:
                return None
            count = min(self.num_images // 2, len(datamodule.val_dataset))
            self._real = to_signed_range(
                torch.stack([datamodule.val_dataset[i] for i in range(count)])
            )
        return self._real

    def on_train_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
    ) -> None:
        """Write grids on the configured iteration interval (rank zero only)."""
        # The host's copy of the counter: reading the device's would stall every iteration.
        if cast(GridModel, pl_module).host_iteration % self.every_n_iterations == 0:
            self.write_grids(trainer, pl_module)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Write the final grids."""
        self.write_grids(trainer, pl_module)

    @torch.no_grad()
    def write_grids(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> list[Path]:
        """Render both grids now; returns the written paths (empty on non-zero ranks)."""
        if not trainer.is_global_zero:
            return []
        # The recipes' modules offer GridModel; Lightning types the argument as any module.
        model = cast(GridModel, pl_module)
        step = int(model.iteration)
        rng = torch.Generator(device="cpu").manual_seed(self.seed)
        z = torch.randn(self.num_images, model.z_dim, generator=rng)
        grids = {"samples": model.generate(z.to(model.device))}
        real = self._validation_images(trainer)
        if real is not None:
            real = real.to(model.device)
            grids["reconstructions"] = interleave(real, model.reconstruct(real))
        out_dir = self._output_dir(trainer)
        out_dir.mkdir(parents=True, exist_ok=True)
        paths = []
        for name, images in grids.items():
            path = out_dir / f"{name}_{step:07d}.png"
            grid = image_grid(images)
            save_image(grid, path)
            paths.append(path)
            self._send_to_logger(trainer, f"images/{name}", grid, step)
        return paths

    @staticmethod
    def _send_to_logger(trainer: pl.Trainer, key: str, grid: torch.Tensor, step: int) -> None:
        for logger in trainer.loggers:
            if hasattr(logger, "log_image"):  # W&B
                logger.log_image(key=key, images=[grid], step=trainer.global_step)
            elif hasattr(logger, "experiment") and hasattr(logger.experiment, "add_image"):
                logger.experiment.add_image(key, grid, step)  # TensorBoard
