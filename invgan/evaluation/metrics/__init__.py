"""The registry of named metrics (`registry.py`), one file per metric or metric family.

Importing this package registers every metric below. Their order is the order metrics run and
results are listed, and passes over the same images run in it too, so a method whose output
depends on how often it was called (PTI seeds each batch by its count) sees the same calls.
"""

# isort: off
from invgan.evaluation.metrics import reconstruction_time  # noqa: F401
from invgan.evaluation.metrics import pixel_errors  # noqa: F401
from invgan.evaluation.metrics import ssim  # noqa: F401
from invgan.evaluation.metrics import lpips  # noqa: F401
from invgan.evaluation.metrics import tiled_mae  # noqa: F401
from invgan.evaluation.metrics import fid  # noqa: F401
from invgan.evaluation.metrics import kid  # noqa: F401
from invgan.evaluation.metrics import runtime  # noqa: F401

# isort: on
from invgan.evaluation.metrics.base import Metric, MetricContext, StreamPass
from invgan.evaluation.metrics.registry import METRICS, metric_names, register, select_metrics

__all__ = [
    "METRICS",
    "Metric",
    "MetricContext",
    "StreamPass",
    "metric_names",
    "register",
    "select_metrics",
]
