"""Metrics: GLUE (scikit-learn/scipy) here; the NLG suite lives beside it."""

from deltalora.metrics.glue import (
    DegenerateMetricWarning,
    glue_metrics,
    main_metric,
    majority_baseline,
    metric_names,
)

__all__ = ["DegenerateMetricWarning", "glue_metrics", "main_metric", "majority_baseline", "metric_names"]


def __getattr__(name: str):
    # The NLG suite imports sacrebleu/nltk/pycocoevalcap: load it only when asked for.
    if name in ("e2e_metrics", "webnlg_metrics", "rouge_metrics"):
        from deltalora.metrics import nlg

        return getattr(nlg, name)
    raise AttributeError(f"module 'deltalora.metrics' has no attribute {name!r}")
