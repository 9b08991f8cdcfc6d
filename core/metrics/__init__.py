"""Generator metrics (FID, KID, precision/recall and offline variants) and their building blocks.

Command line: ``python -m core.metrics --network SNAPSHOT --data DATA --metrics fid50k_full,...``.
"""

from core.metrics.distances import frechet_distance, kernel_distance, mean_cov, precision_recall
from core.metrics.evaluate import (
    METRIC_HELP,
    METRICS,
    MetricOptions,
    MetricResult,
    append_records,
    compute_metrics,
    metric_help,
    run_metrics_for_training,
)
from core.metrics.extractors import MetricsError, RandomConvExtractor

__all__ = [
    "METRICS",
    "METRIC_HELP",
    "MetricOptions",
    "MetricResult",
    "MetricsError",
    "RandomConvExtractor",
    "append_records",
    "compute_metrics",
    "frechet_distance",
    "kernel_distance",
    "mean_cov",
    "metric_help",
    "precision_recall",
    "run_metrics_for_training",
]
