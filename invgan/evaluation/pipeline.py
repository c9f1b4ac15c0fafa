"""The pipeline behind `evaluate.py`: model -> metrics -> metrics.json, table.md and a
reconstruction grid in the run directory, in one process or spread over a `trainer=` config's
processes (`trainer=ddp_sim`: 2 CPU processes; `trainer=ddp`: GPUs, nodes)."""

from __future__ import annotations

import logging
from functools import partial
from pathlib import Path
from typing import Any, cast

import hydra
import torch
from hydra.core.hydra_config import HydraConfig
from lightning_fabric import Fabric
from omegaconf import DictConfig, OmegaConf
from torch import Tensor

from invgan.checkpoints.atomic import atomic_write_json, atomic_write_text
from invgan.checkpoints.run_data import setup_run_data
from invgan.evaluation.evaluator import Evaluator
from invgan.evaluation.loading import load_model_and_data, resolve_device
from invgan.evaluation.metrics import select_metrics
from invgan.evaluation.reconstruction_grid import save_reconstruction_grid
from invgan.evaluation.report import format_table, markdown_report
from invgan.evaluation.world import EvaluationWorld
from invgan.utils.cuda_backend import apply_cuda_settings
from invgan.utils.instantiate import instantiate_datamodule

log = logging.getLogger(__name__)
METRICS_FILE = "metrics.json"


def inversion_method_name(cfg: DictConfig) -> str:
    """The `inversion=` choice (encoder, optimization, ...), else the method's class name."""
    if HydraConfig.initialized():
        choice = HydraConfig.get().runtime.choices.get("inversion")
        if choice:
            return str(choice)
    return str(cfg.inversion._target_).rsplit(".", 1)[-1]


def default_label(cfg: DictConfig, method: str) -> str:
    """`<run folder> / <method>` for a run's checkpoint, `<file stem> / <method>` otherwise."""
    if cfg.get("ckpt_path"):
        path = Path(str(cfg.ckpt_path)).resolve()
        run = path.parent.parent.name if path.parent.name == "checkpoints" else path.stem
    else:
        run = Path(str(cfg.get("generator_path") or cfg.get("encoder_path"))).stem
    return f"{run} / {method}"


def world_size(cfg: DictConfig) -> int:
    """Processes the `trainer` config asks for (1 without one)."""
    trainer = cfg.get("trainer")
    if trainer is None:
        return 1
    devices = trainer.get("devices", 1)
    per_node = devices if isinstance(devices, int) else len(devices)
    return per_node * int(trainer.get("num_nodes", 1) or 1)


def build_fabric(trainer: DictConfig) -> Fabric:
    """A Fabric with the trainer config's accelerator, devices, nodes and launch strategy.
    Evaluation has no backward pass, so DDP's unused-parameter search is dropped."""
    strategy = str(trainer.strategy).replace("_find_unused_parameters_true", "")
    return Fabric(
        accelerator=trainer.accelerator,
        devices=trainer.devices,
        num_nodes=int(trainer.get("num_nodes", 1) or 1),
        strategy=strategy,
    )


def evaluation_batch_size(cfg: DictConfig, datamodule: Any) -> int:
    """`batch_size`, or the data config's `eval_batch_size` when null (0 is refused earlier)."""
    batch_size = cfg.get("batch_size")
    return int(datamodule.eval_batch_size if batch_size is None else batch_size)


def grid_count(cfg: DictConfig) -> int:
    """Test images in reconstructions.png: `metrics.grid.count`, 0 when the grid is off."""
    grid_cfg = cfg.metrics.grid
    return int(grid_cfg.count) if grid_cfg.enabled else 0


def evaluate_on_rank(fabric: Fabric | None, cfg: DictConfig) -> dict[str, Any]:
    """One process's share of the evaluation; rank zero writes the files and returns the
    report (every rank computes the same reduced numbers)."""
    world = EvaluationWorld(fabric)
    cuda = apply_cuda_settings(**cfg.cuda)
    device = resolve_device(cfg.device) if fabric is None else fabric.device
    model, data_cfg, source = load_model_and_data(cfg, device)
    if cfg.get("ckpt_path"):  # the training run's data config, rebuilt from the checkpoint
        datamodule = setup_run_data(data_cfg, str(cfg.ckpt_path), "evaluate.py")
    else:  # the data=<dataset> config given on this command line
        datamodule = instantiate_datamodule(data_cfg)
        datamodule.setup("test")
    # Every metric that inverts images goes through the configured inversion method (the
    # model's own encoder, optimisation, hybrid, ...), so methods compare on equal terms.
    inversion = hydra.utils.instantiate(cfg.inversion, model=model)
    evaluator = Evaluator(
        model,
        inversion,
        datamodule,
        metrics=select_metrics(cfg.metrics),
        seed=int(cfg.seed),
        world=world,
        batch_size=evaluation_batch_size(cfg, datamodule),
        device=device,
        grid_count=grid_count(cfg),
    )
    evaluation = evaluator.run()
    report = {
        "label": cfg.label,
        "source": str(Path(source).resolve()),
        "iteration": int(model.iteration),
        "dataset": data_cfg._target_,
        "inversion_method": cfg.inversion_method,
        "inversion": OmegaConf.to_container(cfg.inversion, resolve=True),
        "inversion_networks": model.inversion_networks,
        "sampling_networks": model.sampling_networks,
        "device": str(device),
        "cuda": cuda,
        "processes": world.size,
        "torch_version": torch.__version__,
        "metrics": evaluation.metrics,
    }
    if world.is_main:
        write_outputs(report, evaluation.grid_pairs, cfg)
    return report


def write_outputs(
    report: dict[str, Any], grid_pairs: tuple[Tensor, Tensor] | None, cfg: DictConfig
) -> None:
    """metrics.json, table.md and reconstructions.png (when `grid_pairs`) into the run
    directory."""
    out = Path(cfg.paths.output_dir)
    path = atomic_write_json(out / METRICS_FILE, report)
    atomic_write_text(out / "table.md", markdown_report([report]))
    grid_cfg = cfg.metrics.grid
    if grid_pairs is not None:
        images, reconstructions = grid_pairs
        grid = save_reconstruction_grid(
            images, reconstructions, out / "reconstructions.png", float(grid_cfg.difference_gain)
        )
        log.info(
            "test images, reconstructions and |difference| x%s: %s", grid_cfg.difference_gain, grid
        )
    log.info("metrics written to %s", path)
    print(format_table(report["metrics"]))


def evaluate(cfg: DictConfig) -> dict[str, Any]:
    """Compute the metrics of a run or generator, write them into the run directory."""
    method = inversion_method_name(cfg)
    # Resolved here: Hydra's interpolations (the output folder) do not resolve in spawned ranks.
    cfg = cast(DictConfig, OmegaConf.create(OmegaConf.to_container(cfg, resolve=True)))
    cfg.inversion_method = method
    cfg.label = cfg.get("name") or default_label(cfg, method)
    select_metrics(cfg.metrics)  # unknown metric names: refused before anything loads
    if world_size(cfg) == 1:
        return evaluate_on_rank(None, cfg)
    return build_fabric(cfg.trainer).launch(partial(evaluate_on_rank, cfg=cfg))
