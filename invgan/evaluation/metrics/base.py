"""What a metric is: a name (its result keys), the streams it reads, its protocol text, and the
little it is given: a shared context and the options of its own config block.

A metric class plans the walks over image streams it needs (`plan`); the evaluator makes one
instance per walk, feeds it every batch (`update`) and takes its entries (`result`), each
`test/<name>` or `test/<name>_<suffix>` with a value, a count and the protocol that produced it.
Metrics of one `group` asking for the same walk are fed by one pass, so they score the same
images at the cost of one; groups never share a pass, so an inversion method is called
exactly as often, in the same order, whichever metrics run.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

import torch

from invgan.evaluation.streams import ImageStreams, StreamBatch
from invgan.evaluation.world import EvaluationWorld
from invgan.inversion.protocols import GenerativeModel, InversionMethod

Entry = dict[str, Any]  # one result: value, count, protocol and what else describes it
Shared = TypeVar("Shared")


@dataclass(frozen=True)
class StreamPass:
    """One walk over a stream: its first `count` images (None: all) in batches of
    `batch_size` (None: the evaluation's), shared by the metrics of `group` that ask for it."""

    stream: str
    count: int | None
    group: str
    batch_size: int | None = None


@dataclass
class MetricContext:
    """What every metric may use: the streams over the data, the model, the inversion method,
    the processes of the run, the seed, and work several metrics share (built once)."""

    streams: ImageStreams
    model: GenerativeModel
    inversion: InversionMethod
    world: EvaluationWorld
    seed: int
    device: torch.device
    shared: dict[Hashable, Any] = field(default_factory=dict)

    def share(self, key: Hashable, build: Callable[[], Shared]) -> Shared:
        """The one object under `key` (an Inception network, the real-image reference)."""
        if key not in self.shared:
            self.shared[key] = build()
        return self.shared[key]


class Metric(ABC):
    """A named metric; subclasses register with `invgan.evaluation.metrics.registry.register`."""

    name: ClassVar[str]  # the result key family: test/<name> or test/<name>_<suffix>
    block: ClassVar[str]  # its options: the `metrics.<block>` tree of conf/metrics/default.yaml
    streams: ClassVar[tuple[str, ...]]  # the image streams it reads (`STREAMS`)
    group: ClassVar[str] = ""  # metrics of a group share passes; "" = its own name
    main_rank_only: ClassVar[bool] = False  # latencies: timed in one process

    @classmethod
    def stream_pass(
        cls, stream: str, count: int | None, batch_size: int | None = None
    ) -> StreamPass:
        """A walk over `stream` that the metrics of its group share."""
        return StreamPass(stream, count, cls.group or cls.name, batch_size)

    @classmethod  # noqa: B027 (an optional hook: most metrics have nothing to check)
    def check(cls, metrics_cfg: Mapping[str, Any]) -> None:
        """Refuse unusable options of the `metrics` tree before anything runs."""

    @classmethod
    def enabled(cls, metrics_cfg: Mapping[str, Any]) -> bool:
        """Whether `metrics.which: null` runs it: its block is there and enabled."""
        block = metrics_cfg.get(cls.block)
        return block is not None and bool(block.get("enabled", False))

    @classmethod
    @abstractmethod
    def plan(cls, context: MetricContext, options: Mapping[str, Any]) -> list[StreamPass]:
        """The walks it is fed, in order (one per result family member, e.g. per FID count)."""

    def __init__(
        self, context: MetricContext, options: Mapping[str, Any], walk: StreamPass
    ) -> None:
        self.context = context
        self.options = options
        self.walk = walk

    @abstractmethod
    def update(self, batch: StreamBatch) -> None:
        """Take one batch of the walk (this rank's share)."""

    @abstractmethod
    def result(self) -> dict[str, Entry]:
        """Its entries once the walk is over: the same on every rank (ranks reduce first)."""
