"""InvGAN paper, Table 2 as a command: are reconstructions semantically consistent?

    python -m invgan.experiments.semantic_consistency ckpt_path=<run>/checkpoints/last.ckpt \
        [inversion=<method>] [classifier.architecture=resnet18 classifier.epochs=3 ...]

Protocol (Section 4.1): a classifier is trained on the originals of the training split, and
the same classifier (same initial weights, same batch order) on their reconstructions by the
inversion method; each is evaluated on the real test images and on their reconstructions.
The score is the mean over classes of the average precision (Table 2 reports it +- the
standard deviation over CelebA's attributes). Options: conf/semantic_consistency.yaml.
Outputs: metrics.json (every number with its protocol) and table.md (Table 2's layout).
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any, NamedTuple, cast

import hydra
import torch
from omegaconf import DictConfig, OmegaConf

from datamodules.base import ImageDataModule
from invgan.checkpoints.atomic import atomic_write_json, atomic_write_text
from invgan.checkpoints.run_data import setup_run_data
from invgan.cli.config_dir import CONFIG_DIR
from invgan.cli.user_errors import run_command
from invgan.evaluation.loading import load_model_and_data, resolve_device
from invgan.evaluation.pipeline import inversion_method_name
from invgan.experiments.average_precision import class_average_precision
from invgan.experiments.class_labels import LabelSettings, class_labels
from invgan.experiments.classifier import ClassifierSettings, class_scores, train_classifier
from invgan.experiments.paired_images import (
    ImageSettings,
    chosen_indices,
    paired_images,
    reconstruction_patch_size,
)
from invgan.inversion.protocols import InversionMethod
from invgan.nn.config_check import check_config
from invgan.utils.images import batch_images
from invgan.utils.instantiate import instantiate_datamodule

log = logging.getLogger(__name__)
METRICS_FILE = "metrics.json"
TABLE_FILE = "table.md"
IMAGE_KINDS = ("original", "reconstruction")
PROTOCOL = (
    "InvGAN paper Table 2: a classifier trained on the original training images and the same "
    "classifier (same initial weights and batch order) trained on their reconstructions, each "
    "evaluated on the original test images and on their reconstructions; mean over classes of "
    "the one-vs-rest average precision (no interpolation, as scikit-learn's "
    "average_precision_score), +- the population standard deviation over the classes; classes "
    "without a positive test image are left out"
)


class ConsistencySettings(NamedTuple):
    """The `images`, `labels` and `classifier` options, checked."""

    images: ImageSettings
    labels: LabelSettings
    classifier: ClassifierSettings


def consistency_results(
    method: InversionMethod,
    train_dataset: Any,
    test_dataset: Any,
    resolution: int,
    settings: ConsistencySettings,
    seed: int,
    device: torch.device,
    data_root: Path | None = None,
) -> dict[str, Any]:
    """The four cells of Table 2 (trained on / evaluated on originals or reconstructions),
    with the labels, image counts and reconstruction layout they come from."""
    image_settings, label_settings, classifier_settings = settings
    train_indices = chosen_indices(len(train_dataset), image_settings.num_train, seed)
    test_indices = chosen_indices(len(test_dataset), image_settings.num_test, seed + 1)
    labels = class_labels(
        label_settings, train_dataset, test_dataset, train_indices, test_indices, data_root
    )
    image_size = int(batch_images(test_dataset[0]).shape[-1])
    patch_size = reconstruction_patch_size(image_size, resolution)
    pairs = {
        split: paired_images(
            method, dataset, indices, patch_size, image_settings.batch_size, seed, device
        )
        for split, dataset, indices in (
            ("train", train_dataset, train_indices),
            ("test", test_dataset, test_indices),
        )
    }
    test_images = dict(zip(IMAGE_KINDS, pairs["test"], strict=True))
    results = []
    for trained_on, images in zip(IMAGE_KINDS, pairs["train"], strict=True):
        log.info("training the classifier on %d %s images", len(images), trained_on)
        classifier = train_classifier(
            images, labels.train, len(labels.names), classifier_settings, seed, device
        )
        for evaluated_on in IMAGE_KINDS:
            scores = class_scores(
                classifier, test_images[evaluated_on], labels.multilabel, classifier_settings
            )
            precision = class_average_precision(scores, labels.test)
            per_class = {
                name: None if math.isnan(value) else value  # NaN: no positive test image
                for name, value in zip(labels.names, precision.per_class.tolist(), strict=True)
            }
            results.append(
                {
                    "trained_on": trained_on,
                    "evaluated_on": evaluated_on,
                    "map": precision.mean,
                    "map_std": precision.std,
                    "per_class": per_class,
                }
            )
    return {
        "labels": {
            "source": labels.source,
            "classes": labels.names,
            "multilabel": labels.multilabel,
        },
        "images": {"train": len(train_indices), "test": len(test_indices), "size": image_size},
        "reconstruction": "whole" if patch_size is None else f"tiled, {patch_size}-px patches",
        "results": results,
    }


def table_markdown(report: dict[str, Any]) -> str:
    """Table 2's layout: rows the test images evaluated on, columns the training images."""
    method = report["label"]
    cells = {(r["trained_on"], r["evaluated_on"]): r for r in report["results"]}
    titles = {"original": "Original", "reconstruction": f"Reconstruction ({method})"}
    classes = report["labels"]["classes"]
    lines = [
        f"Mean average precision (± std over {len(classes)} classes) of a "
        f"{report['classifier']['architecture']} classifier; columns: the training images, "
        "rows: the test images it is evaluated on.",
        "",
        "| Evaluated on | " + " | ".join(f"Trained on {titles[k]}" for k in IMAGE_KINDS) + " |",
        "| --- | --- | --- |",
    ]
    for evaluated_on in IMAGE_KINDS:
        row = [cells[(trained_on, evaluated_on)] for trained_on in IMAGE_KINDS]
        values = " | ".join(f"{c['map']:.2f} ± {c['map_std']:.2f}" for c in row)
        lines.append(f"| {titles[evaluated_on]} | {values} |")
    return "\n".join(lines) + "\n"


def semantic_consistency(cfg: DictConfig) -> dict[str, Any]:
    """Load the model and the images, run the protocol, write metrics.json and table.md."""
    device = resolve_device(cfg.device)
    settings = ConsistencySettings(
        hydra.utils.instantiate(cfg.images),
        hydra.utils.instantiate(cfg.labels, _convert_="all"),
        hydra.utils.instantiate(cfg.classifier),
    )
    model, model_data_cfg, source = load_model_and_data(cfg, device)
    command = "python -m invgan.experiments.semantic_consistency"
    if cfg.get("data") is not None:  # images given on this command line (tiling, other data)
        data_cfg = cfg.data
        datamodule = cast(ImageDataModule, instantiate_datamodule(data_cfg))
        datamodule.setup()
    else:
        data_cfg = model_data_cfg
        datamodule = cast(ImageDataModule, setup_run_data(data_cfg, str(source), command))
    method = hydra.utils.instantiate(cfg.inversion, model=model)
    root = data_cfg.get("root")
    report = {
        "experiment": "semantic_consistency",
        "protocol": PROTOCOL,
        "label": cfg.get("name") or inversion_method_name(cfg),
        "source": str(Path(source).resolve()),
        "dataset": data_cfg._target_,
        "inversion": OmegaConf.to_container(cfg.inversion, resolve=True),
        "classifier": OmegaConf.to_container(cfg.classifier, resolve=True),
        "device": str(device),
        "seed": int(cfg.seed),
    }
    report.update(
        consistency_results(
            method,
            datamodule.train_dataset,
            datamodule.test_dataset,
            int(model_data_cfg.resolution),
            settings,
            int(cfg.seed),
            device,
            Path(root).expanduser() if root else None,
        )
    )
    out = Path(cfg.paths.output_dir)
    atomic_write_json(out / METRICS_FILE, report)
    table = table_markdown(report)
    atomic_write_text(out / TABLE_FILE, table)
    log.info("wrote %s and %s", out / METRICS_FILE, out / TABLE_FILE)
    print(table)
    return report


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="semantic_consistency.yaml")
def main(cfg: DictConfig) -> None:
    """Hydra entry point."""
    check_config(cfg)
    semantic_consistency(cfg)


if __name__ == "__main__":
    run_command(main, "python -m invgan.experiments.semantic_consistency")
