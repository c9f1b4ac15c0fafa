"""The selected metrics of one model and inversion method on one datamodule.

The evaluator knows no metric by name: it asks each selected metric (`invgan.evaluation.metrics`)
which passes over image streams it needs, walks each pass once, feeding every metric that asked
for it, and collects their entries. The reconstruction grid (test images beside their
reconstructions) comes back beside the metrics, from the pass the reconstruction metrics read.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from invgan.evaluation.metrics import METRICS, Metric, MetricContext, StreamPass
from invgan.evaluation.metrics.base import Entry
from invgan.evaluation.metrics.reconstruction_pass import RECONSTRUCTION_GROUP, image_pairs
from invgan.evaluation.metrics.registry import check_names
from invgan.evaluation.streams import ImageStreams
from invgan.evaluation.world import EvaluationWorld
from invgan.inversion.protocols import GenerativeModel, InversionMethod

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EvaluationResult:
    """The entries of every metric, keyed `test/<name>...`, and the first `grid_count` test
    images with their reconstructions (None when no reconstruction pass ran)."""

    metrics: dict[str, Entry]
    grid_pairs: tuple[Tensor, Tensor] | None = None


class Evaluator:
    """Runs the selected metrics (name -> the options of its config block) for one model,
    inversion method and datamodule, in this process's share of the world."""

    def __init__(
        self,
        model: GenerativeModel,
        inversion: InversionMethod,
        datamodule: Any,
        *,
        metrics: Mapping[str, Mapping[str, Any]],
        seed: int,
        world: EvaluationWorld | None = None,
        batch_size: int | None = None,
        device: torch.device | str = "cpu",
        grid_count: int = 0,
    ) -> None:
        check_names(metrics)
        self.world = world or EvaluationWorld()
        self.device = torch.device(device)
        # Registry order, whatever the order given: passes then run as they always have.
        self.metrics = [(METRICS[name], metrics[name]) for name in METRICS if name in metrics]
        batch_size = datamodule.eval_batch_size if batch_size is None else batch_size
        self.streams = ImageStreams(
            model, inversion, datamodule, self.world, seed, int(batch_size), self.device
        )
        self.context = MetricContext(self.streams, model, inversion, self.world, seed, self.device)
        self.grid_count = grid_count

    def plan(self) -> dict[StreamPass, list[tuple[type[Metric], Mapping[str, Any]]]]:
        """Every pass to walk, in order, with the metrics it feeds."""
        passes: dict[StreamPass, list[tuple[type[Metric], Mapping[str, Any]]]] = {}
        for metric, options in self.metrics:
            if metric.main_rank_only and not self.world.is_main:
                continue
            missing = [s for s in metric.streams if not self.streams.available(s)]
            if missing:
                log.info("%s skipped: the data has no %s", metric.name, ", ".join(missing))
                continue
            for walk in metric.plan(self.context, options):
                passes.setdefault(walk, []).append((metric, options))
        return passes

    @torch.no_grad()
    def run(self) -> EvaluationResult:
        """Every selected metric's entries (the same on every rank, but for latencies timed on
        rank zero only) and the reconstruction grid's images."""
        results: dict[str, Entry] = {}
        grid_pairs = None
        for walk, subscribers in self.plan().items():
            readers = [metric(self.context, options, walk) for metric, options in subscribers]
            for batch in self.streams.batches(walk.stream, walk.count, walk.batch_size):
                for reader in readers:
                    reader.update(batch)
                if grid_pairs is None and self._holds_grid(walk, batch.positions):
                    images, reconstructions = image_pairs(batch)
                    grid_pairs = (images[: self.grid_count], reconstructions[: self.grid_count])
            for reader in readers:
                results.update(reader.result())
        return EvaluationResult(results, grid_pairs)

    def _holds_grid(self, walk: StreamPass, positions: Tensor) -> bool:
        """Whether a batch holds the grid's images: the first of the reconstruction pass."""
        first = int(positions[0]) == 0
        return self.grid_count > 0 and walk.group == RECONSTRUCTION_GROUP and first
