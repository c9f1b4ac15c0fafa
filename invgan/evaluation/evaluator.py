"""The evaluation pipeline behind `evaluate.py`: checkpoint -> Table 1 metrics -> metrics.json.

Protocol (InvGAN paper, Table 1): MAE per pixel per colour channel with images in [-1, 1] on
the test split; each FID compares N generated or reconstructed images against Inception
statistics of the whole training set (train and validation splits, i.e. all 60,000 MNIST
training images), computed once and cached.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import hydra
import torch
from omegaconf import DictConfig, OmegaConf
from torch.utils.data import ConcatDataset, DataLoader

from invgan.callbacks.run_config import CONFIG_KEY
from invgan.inversion.pretrained_generator import PretrainedGenerator
from invgan.inversion.tiled import reconstruct_tiled
from invgan.losses.perceptual import PerceptualDistance
from invgan.metrics.fid import fid_against_real, real_statistics_cached
from invgan.metrics.inception import build_fid_metric
from invgan.metrics.perceptual import PerceptualDistanceAccumulator
from invgan.metrics.reconstruction import MeanAbsoluteErrorAccumulator
from invgan.metrics.runtime import measure_seconds_per_item, synchronize
from invgan.modules.encoder_module import GENERATOR_ARCHITECTURE_KEY
from invgan.utils.atomic import atomic_write_json
from invgan.utils.checkpoint import load_checkpoint
from invgan.utils.generator_import import load_frozen_generator
from invgan.utils.images import to_signed_range
from invgan.utils.instantiate import instantiate_datamodule

log = logging.getLogger(__name__)

ImageBatches = Callable[[], Iterator[torch.Tensor]]
FID_PROTOCOL = (
    "{count} {what} vs Inception-v3 (2015-12-05, pool 2048) statistics of the whole training "
    "set ({real_count} images), torchmetrics FID"
)


def resolve_device(name: str) -> torch.device:
    """`auto` picks CUDA when available, else CPU; anything else is passed to torch.device."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def restore_run_config(checkpoint: dict[str, Any], cfg: DictConfig) -> DictConfig:
    """The training run's config with this run's `paths` (so data paths re-resolve here)."""
    run_cfg = OmegaConf.create(checkpoint[CONFIG_KEY])
    run_cfg.paths = cfg.paths
    run_cfg.seed = cfg.seed
    if cfg.get("data_root"):
        run_cfg.data.root = cfg.data_root
    return run_cfg


def _batches(loader: DataLoader, limit: int | None = None) -> Iterator[torch.Tensor]:
    """Images of a loader in [-1, 1], stopping after `limit` images."""
    seen = 0
    for batch in loader:
        images = to_signed_range(batch[0] if isinstance(batch, list | tuple) else batch)
        if limit is not None:
            images = images[: limit - seen]
        yield images
        seen += images.shape[0]
        if limit is not None and seen >= limit:
            return


class Evaluator:
    """Computes the configured metrics for one model on one datamodule."""

    def __init__(self, model: Any, datamodule: Any, cfg: DictConfig, device: torch.device):
        self.model = model
        # Every metric that inverts images goes through the configured inversion method (the
        # model's own encoder, optimisation, hybrid, ...), so methods compare on equal terms.
        self.inversion = hydra.utils.instantiate(cfg.inversion, model=model)
        self.datamodule = datamodule
        self.cfg = cfg
        self.device = device
        self.batch_size = int(datamodule.eval_batch_size)

    def _loader(
        self, dataset: Any, shuffle: bool = False, batch_size: int | None = None
    ) -> DataLoader:
        generator = torch.Generator().manual_seed(int(self.cfg.seed))
        return DataLoader(
            dataset,
            batch_size=batch_size or self.batch_size,
            shuffle=shuffle,
            generator=generator,
            num_workers=0,
        )

    def test_images(
        self, limit: int | None = None, shuffle: bool = False
    ) -> Iterator[torch.Tensor]:
        """Test images in [-1, 1] on the evaluation device."""
        for images in _batches(self._loader(self.datamodule.test_dataset, shuffle), limit):
            yield images.to(self.device)

    # ------------------------------------------------------------ image streams for FID
    def random_samples(self, count: int) -> Iterator[torch.Tensor]:
        """G(M(z)) for `count` seeded prior samples."""
        rng = torch.Generator(device=self.device).manual_seed(int(self.cfg.seed))
        for start in range(0, count, self.batch_size):
            yield self.model.sample(min(self.batch_size, count - start), generator=rng)

    def random_reconstructions(self, count: int) -> Iterator[torch.Tensor]:
        """G(D(G(M(z)))): random samples inverted and regenerated."""
        for samples in self.random_samples(count):
            yield self.inversion.reconstruct(samples)

    def test_reconstructions(self, count: int) -> Iterator[torch.Tensor]:
        """G(D(x)) for the first `count` test images."""
        for images in self.test_images(count):
            yield self.inversion.reconstruct(images)

    def test_interpolations(self, count: int) -> Iterator[torch.Tensor]:
        """G((D(x_a) + D(x_b)) / 2) for random pairs of test images (paper's IntTsFID)."""
        for images_a in self.test_images(count, shuffle=True):
            # The loader shuffles, so pairing each image with its neighbour gives random pairs
            # of distinct images.
            images_b = images_a.roll(1, dims=0)
            midpoint = (self.inversion.encode(images_a) + self.inversion.encode(images_b)) / 2
            yield self.inversion.decode(midpoint)

    # ------------------------------------------------------------ metrics
    def reconstruction_errors(self) -> dict[str, Any]:
        """Test-set MAE and LPIPS of the reconstructions, from one inversion pass."""
        mae_cfg, lpips_cfg = self.cfg.metrics.mae, self.cfg.metrics.lpips
        mae = MeanAbsoluteErrorAccumulator()
        lpips = None
        if lpips_cfg.enabled:
            distance = PerceptualDistance(
                lpips_cfg.net, lpips_cfg.weights_path, lpips_cfg.get("resize")
            )
            lpips = PerceptualDistanceAccumulator(distance.to(self.device))
        limit = mae_cfg.max_images
        seconds = 0.0
        for images in self.test_images(limit):
            synchronize(self.device)
            start = time.perf_counter()
            reconstructions = self.inversion.reconstruct(images)
            synchronize(self.device)
            seconds += time.perf_counter() - start
            mae.update(images, reconstructions)
            if lpips is not None:
                lpips.update(images, reconstructions)
        results = {
            "test/reconstruction_seconds_per_image": {
                "value": seconds / mae.count,
                "count": mae.count,
                "batch_size": self.batch_size,
                "device": str(self.device),
                "protocol": (
                    "wall-clock seconds of inversion plus regeneration over the test images "
                    "above, divided by their number, at the evaluation batch size"
                ),
            }
        }
        if mae_cfg.enabled:
            results["test/mae"] = {
                "value": mae.compute(),
                "count": mae.count,
                "protocol": "mean |x - x_rec| per pixel and channel in [-1, 1], test split",
            }
        if lpips is not None:
            results["test/lpips"] = {
                "value": lpips.compute(),
                "count": lpips.count,
                "protocol": (
                    f"mean LPIPS v0.1 ({lpips_cfg.net}) of (x, x_rec), test split, images "
                    f"under {lpips_cfg.get('resize')} px upsampled (bilinear) to it first"
                ),
            }
        return results

    def tiled_mean_absolute_error(self) -> dict[str, Any]:
        """MAE of whole test images reconstructed patch by patch (paper Sections 3.3, 4.3)."""
        tiled_cfg = self.cfg.metrics.tiled_mae
        patch_size = int(self.datamodule.resolution)
        loader = self._loader(
            self.datamodule.tiled_test_dataset, batch_size=int(tiled_cfg.batch_size)
        )
        accumulator = MeanAbsoluteErrorAccumulator()
        for images in _batches(loader, tiled_cfg.max_images):
            images = images.to(self.device)
            accumulator.update(images, reconstruct_tiled(self.inversion, images, patch_size))
        size = images.shape[-1]
        return {
            "value": accumulator.compute(),
            "count": accumulator.count,
            "protocol": (
                f"mean |x - tiled G(D(x))| per pixel per channel, images in [-1, 1], test split "
                f"as {size}x{size} images of {patch_size}x{patch_size} patches"
            ),
        }

    def real_statistics(self, fid_metric: Any) -> Any:
        """Inception statistics of the whole training set (train + val splits), cached."""
        fid_cfg = self.cfg.metrics.fid
        dataset = ConcatDataset([self.datamodule.train_dataset, self.datamodule.val_dataset])
        real_count = len(dataset) if fid_cfg.real_count is None else int(fid_cfg.real_count)
        key = {
            "dataset": type(self.datamodule).__name__,
            "root": str(Path(str(getattr(self.datamodule, "root", "in-memory"))).resolve()),
            "split": "train+val",
            "resolution": int(self.datamodule.resolution),
            "channels": int(self.datamodule.channels),
            "count": real_count,
            "extractor": "inception-v3-2015-12-05-pool2048",
        }
        return real_statistics_cached(
            fid_cfg.cache_dir,
            key,
            lambda: _batches(self._loader(dataset), real_count),
            fid_metric,
            real_count,
        )

    def frechet_distances(self) -> dict[str, Any]:
        """RandFID, RandRecFID, TsRecFID and IntTsFID, as enabled in `metrics.fid.which`."""
        fid_cfg = self.cfg.metrics.fid
        fid_metric = build_fid_metric(fid_cfg.weights_path, self.device)
        real = self.real_statistics(fid_metric)
        streams: dict[str, tuple[Callable[[int], Iterator[torch.Tensor]], str]] = {
            "rand_fid": (self.random_samples, "random samples G(M(z))"),
            "rand_rec_fid": (self.random_reconstructions, "reconstructed random samples"),
            "ts_rec_fid": (self.test_reconstructions, "test-set reconstructions G(D(x))"),
            "int_ts_fid": (self.test_interpolations, "test-pair latent midpoints"),
        }
        results = {}
        for name in fid_cfg.which:
            if name not in streams:
                raise ValueError(f"metrics.fid.which has {name!r}; allowed: {list(streams)}")
            stream, what = streams[name]
            value, count = fid_against_real(
                stream(int(fid_cfg.num_samples)), real, fid_metric, int(fid_cfg.num_samples)
            )
            results[f"test/{name}"] = {
                "value": value,
                "count": count,
                "real_count": real.count,
                "protocol": FID_PROTOCOL.format(count=count, what=what, real_count=real.count),
            }
        return results

    def inversion_runtime(self) -> dict[str, Any]:
        """Seconds per image of model-based inversion (D's latent head) at a fixed batch size."""
        rt_cfg = self.cfg.metrics.runtime
        images = torch.cat(list(self.test_images()))[: int(rt_cfg.batch_size)]
        repeats = -(-int(rt_cfg.batch_size) // images.shape[0])
        batch = images.repeat(repeats, 1, 1, 1)[: int(rt_cfg.batch_size)]
        timing = measure_seconds_per_item(
            self.inversion.encode, batch, warmup=int(rt_cfg.warmup), repeats=int(rt_cfg.repeats)
        )
        return {
            "value": timing["seconds_per_image"],
            **timing,
            "protocol": (
                f"median over timed batches of {self.cfg.inversion._target_} inversion "
                "(images to codes), after warm-up"
            ),
        }

    @torch.no_grad()
    def run(self) -> dict[str, Any]:
        """Every enabled metric, keyed by `test/<name>`."""
        metrics: dict[str, Any] = {}
        if self.cfg.metrics.mae.enabled or self.cfg.metrics.lpips.enabled:
            metrics.update(self.reconstruction_errors())
        has_tiles = getattr(self.datamodule, "tiled_test_dataset", None) is not None
        if self.cfg.metrics.tiled_mae.enabled and has_tiles:
            metrics["test/tiled_mae"] = self.tiled_mean_absolute_error()
        if self.cfg.metrics.fid.enabled:
            metrics.update(self.frechet_distances())
        if self.cfg.metrics.runtime.enabled:
            metrics["test/inversion_seconds_per_image"] = self.inversion_runtime()
        return metrics


def build_model(run_cfg: DictConfig, checkpoint: dict[str, Any], cfg: DictConfig) -> Any:
    """Instantiate the run's model, load its weights, apply network-set overrides."""
    architecture = checkpoint.get(GENERATOR_ARCHITECTURE_KEY)
    if architecture is not None:
        # Encoder runs: rebuild the frozen generator from the checkpoint itself, not from the
        # weights file it was first loaded from (which may not exist here).
        run_cfg.model.generator = {
            "_target_": "invgan.utils.generator_import.build_frozen_generator",
            "_recursive_": False,
            "architecture": architecture,
        }
    model = hydra.utils.instantiate(run_cfg.model)
    model.load_state_dict(checkpoint["state_dict"])
    if cfg.get("inversion_networks"):
        model.inversion_networks = cfg.inversion_networks
    if cfg.get("sampling_networks"):
        model.sampling_networks = cfg.sampling_networks
    return model.eval()


def format_table(metrics: dict[str, Any]) -> str:
    """A plain-text table: metric, value, sample count."""
    rows = [("metric", "value", "count")]
    for name, entry in metrics.items():
        rows.append((name, f"{entry['value']:.6g}", str(entry.get("count", ""))))
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in rows
    )


def load_model_and_data(cfg: DictConfig, device: torch.device) -> tuple[Any, DictConfig, str]:
    """The model, its data config and the file it came from: a run's checkpoint
    (`ckpt_path`), or a pretrained generator file (`generator_path`) with `data=<dataset>`."""
    if bool(cfg.get("ckpt_path")) == bool(cfg.get("generator_path")):
        raise ValueError(
            "pass exactly one of ckpt_path=<run>/checkpoints/last.ckpt and "
            "generator_path=<generator weights> (the latter with data=<dataset>)"
        )
    if cfg.get("ckpt_path"):
        checkpoint = load_checkpoint(cfg.ckpt_path)
        run_cfg = restore_run_config(checkpoint, cfg)
        model = build_model(run_cfg, checkpoint, cfg).to(device)
        return model, run_cfg.data, str(cfg.ckpt_path)
    if cfg.get("data") is None:
        raise ValueError(
            "generator_path needs the images to invert: add data=<dataset> "
            "(e.g. data=celeba data.root=/path/to/faces)"
        )
    frozen = load_frozen_generator(
        cfg.generator_path, resolution=cfg.data.resolution, channels=cfg.data.channels
    )
    return PretrainedGenerator(frozen).to(device), cfg.data, str(cfg.generator_path)


def evaluate(cfg: DictConfig) -> dict[str, Any]:
    """Compute the metrics of a run or generator, write `metrics.json` into the run directory."""
    device = resolve_device(cfg.device)
    model, data_cfg, source = load_model_and_data(cfg, device)
    datamodule = instantiate_datamodule(data_cfg)
    datamodule.setup()
    metrics = Evaluator(model, datamodule, cfg, device).run()
    report = {
        "checkpoint": str(Path(source).resolve()),
        "iteration": int(model.iteration),
        "dataset": data_cfg._target_,
        "inversion_networks": model.inversion_networks,
        "sampling_networks": model.sampling_networks,
        "inversion": OmegaConf.to_container(cfg.inversion, resolve=True),
        "device": str(device),
        "torch_version": torch.__version__,
        "metrics": metrics,
    }
    path = atomic_write_json(Path(cfg.paths.output_dir) / "metrics.json", report)
    log.info("metrics written to %s", path)
    print(format_table(metrics))
    return report
