"""The training pipeline behind `train.py`: seed, instantiate, fit, test."""

from __future__ import annotations

import logging
import signal
from typing import Any, cast

import hydra
import pytorch_lightning as pl
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.utilities.exceptions import SIGTERMException

from invgan.callbacks.cuda_backend import CudaBackend
from invgan.callbacks.run_config import RunConfigInCheckpoint
from invgan.checkpoints.format import check_resume_checkpoint, trusted_stored_path
from invgan.modules.nonfinite import NonFiniteGuardModule
from invgan.nn.config_check import check_config
from invgan.training.resume import checkpoint_to_resume
from invgan.training.run_folder import clear_earlier_run
from invgan.utils.instantiate import (
    instantiate_callbacks,
    instantiate_datamodule,
    instantiate_loggers,
)

log = logging.getLogger(__name__)


def gradient_accumulation(model: pl.LightningModule, trainer_cfg: DictConfig) -> dict[str, int]:
    """Trainer overrides that route `trainer.accumulate_grad_batches` to the recipe.

    Lightning accumulates gradients only for automatic optimisation; manually optimised
    recipes accumulate themselves (`NonFiniteGuardModule`), so they get the setting and the
    Trainer gets 1.
    """
    batches = trainer_cfg.get("accumulate_grad_batches", 1)
    if not isinstance(batches, int) or batches < 1:
        raise ValueError(f"trainer.accumulate_grad_batches must be an integer >= 1, got {batches}")
    if model.automatic_optimization:
        return {}
    if isinstance(model, NonFiniteGuardModule):
        model.accumulate_grad_batches = batches
    return {"accumulate_grad_batches": 1}


def validate_if_unmeasured(
    trainer: pl.Trainer,
    model: pl.LightningModule,
    datamodule: pl.LightningDataModule,
    metric: str | None,
) -> None:
    """Validate the final model once when fitting ended without logging the optimized `val/`
    metric: a run shorter than its first validation (`max_steps` within the first epoch,
    `max_epochs=0`) still returns a value to sweeps."""
    if not metric or not metric.startswith("val/") or metric in trainer.callback_metrics:
        return
    log.info("fitting ended before any validation: validating the final model for %s", metric)
    trainer.validate(model=model, datamodule=datamodule, verbose=False)


def train(cfg: DictConfig) -> dict[str, Any]:
    """Fit (and optionally test) the configured model; returns the final callback metrics."""
    check_config(cfg)
    pl.seed_everything(cfg.seed, workers=True)
    log.info("Instantiating datamodule <%s>", cfg.data._target_)
    datamodule: pl.LightningDataModule = instantiate_datamodule(cfg.data)
    log.info("Instantiating model <%s>", cfg.model._target_)
    model: pl.LightningModule = hydra.utils.instantiate(cfg.model)
    resume = checkpoint_to_resume(cfg)
    if resume:
        check_resume_checkpoint(model, resume)
    if cfg.get("overwrite"):
        clear_earlier_run(cfg.paths.output_dir)
    callbacks = instantiate_callbacks(cfg.get("callbacks"))
    callbacks.append(RunConfigInCheckpoint(OmegaConf.to_yaml(cfg)))
    callbacks.append(CudaBackend(**cfg.cuda))
    loggers = instantiate_loggers(cfg.get("logger"))
    trainer: pl.Trainer = hydra.utils.instantiate(
        cfg.trainer,
        callbacks=callbacks,
        logger=loggers or False,
        **gradient_accumulation(model, cfg.trainer),
    )
    for logger in loggers:
        logger.log_hyperparams(cast(dict[str, Any], OmegaConf.to_container(cfg, resolve=True)))

    try:
        trainer.fit(model=model, datamodule=datamodule, ckpt_path=resume, weights_only=True)
    except SIGTERMException as stop:
        # Lightning's SIGTERM exit carries no code (status 0): exit 143 (128 + SIGTERM) so that
        # a scheduler sees an interrupted job. last.ckpt was written on the way out.
        raise SystemExit(128 + signal.SIGTERM) from stop
    validate_if_unmeasured(trainer, model, datamodule, cfg.get("optimized_metric"))
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
    if cfg.get("test"):
        # The best path is callback state that a resumed checkpoint restores: only an existing
        # file in this run's checkpoint folder is tested, loaded with weights_only whatever
        # TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD says (else the final weights are tested).
        callback = trainer.checkpoint_callback
        best = trusted_stored_path(
            getattr(callback, "best_model_path", None), getattr(callback, "dirpath", None)
        )
        trainer.test(model=model, datamodule=datamodule, ckpt_path=best, weights_only=True)
        metrics.update({k: float(v) for k, v in trainer.callback_metrics.items()})
    return metrics


def optimized_metric(metrics: dict[str, float], name: str | None) -> float | None:
    """The value of the metric a sweep optimises, with a clear error when it was not logged."""
    if not name:
        return None
    if name not in metrics:
        validation = name.startswith("val/")
        hint = " (trainer.limit_val_batches=0 runs no validation)" if validation else ""
        raise KeyError(
            f"optimized_metric={name!r} was not logged{hint}; logged metrics: {sorted(metrics)}; "
            f"set optimized_metric to one of them, or to null"
        )
    return metrics[name]
