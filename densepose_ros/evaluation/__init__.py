"""DensePose evaluation: box AP, AP over GPS and GPSm, and point-level diagnostics."""

from densepose_ros.evaluation.evaluator import (
    APSummary,
    DenseDiagnostics,
    DensePoseEvaluator,
    EvaluationConfig,
    EvaluationReport,
    evaluate,
    format_report,
)
from densepose_ros.evaluation.gps import ImagePredictions
from densepose_ros.evaluation.surface import (
    PART_KAPPA,
    SampledSurfaceMetric,
    SurfaceMetric,
    load_surface_metric,
)

__all__ = [
    "APSummary", "DenseDiagnostics", "DensePoseEvaluator", "EvaluationConfig",
    "EvaluationReport", "ImagePredictions", "PART_KAPPA", "SampledSurfaceMetric",
    "SurfaceMetric", "evaluate", "format_report", "load_surface_metric",
]
