"""A training run's dataset, rebuilt on this machine from the data config in its checkpoint."""

from __future__ import annotations

import pytorch_lightning as pl
from omegaconf import DictConfig

from datamodules.errors import DataNotFoundError
from invgan.utils.instantiate import instantiate_datamodule


def setup_run_data(data_cfg: DictConfig, ckpt_path: str, command: str) -> pl.LightningDataModule:
    """The set-up datamodule of the checkpoint's data config (`restore_run_config`).

    Data missing here (moved since training, or another machine) raises a
    `DataNotFoundError` whose fix is `data_root=<folder>`, the override that reaches this
    config; the datamodule's own fix names training's settings (`data.root`, `data.download`,
    `INVGAN_DATA_DIR`), which `command` does not apply to a checkpoint's config.
    """
    datamodule = instantiate_datamodule(data_cfg)
    try:
        datamodule.setup("test")  # invgan's datamodules build every split whatever the stage
    except DataNotFoundError as error:
        raise DataNotFoundError(
            error.problem,
            f"{command} reads the data where the config of the training run in {ckpt_path} "
            f"says, {data_cfg.get('root')}. If the data has moved, or this is another machine, "
            f"pass data_root=<the folder that holds it now> to {command}.",
        ) from error
    return datamodule
