"""exsvd-bench metrics: temporal flickering, motion smoothness and motion amount (so far).

>>> from metrics import list_metrics, create_metric, evaluate
"""

from metrics.base import Metric, MetricInfo, MetricResult
from metrics.evaluate import Evaluator, VideoEvaluation, create_metric, evaluate, list_metrics
from metrics.video_io import Video, read_video, write_video

__all__ = [
    "Evaluator",
    "Metric",
    "MetricInfo",
    "MetricResult",
    "Video",
    "VideoEvaluation",
    "create_metric",
    "evaluate",
    "list_metrics",
    "read_video",
    "write_video",
]
