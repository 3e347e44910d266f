"""exsvd-bench metrics: temporal flickering, motion smoothness, condition consistency and video
quality.

>>> from metrics import list_metrics, create_metric, evaluate

The names below load on first use (PEP 562), so importing a light module of the package (e.g.
``metrics.errors``) does not import torch; code that reads the registry itself imports it from
``metrics.evaluator``, which registers every family.
"""

from __future__ import annotations

from metrics.lazy import lazy_exports

_EXPORTS = {
    "Metric": "metrics.base",
    "MetricInfo": "metrics.base",
    "MetricResult": "metrics.base",
    "Evaluator": "metrics.evaluator",
    "VideoEvaluation": "metrics.evaluator",
    "create_metric": "metrics.evaluator",
    "evaluate": "metrics.evaluator",
    "list_metrics": "metrics.evaluator",
    "Video": "metrics.video_io",
    "read_video": "metrics.video_io",
    "write_video": "metrics.video_io",
}
__all__ = sorted(_EXPORTS)

__getattr__ = lazy_exports(__name__, _EXPORTS)
