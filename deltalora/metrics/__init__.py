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
    # The NLG metrics import sacrebleu/nltk/pycocoevalcap: load their module only when asked for.
    if name == "e2e_metrics":
        from deltalora.metrics.e2e import e2e_metrics

        return e2e_metrics
    if name == "webnlg_metrics":
        from deltalora.metrics.webnlg import webnlg_metrics

        return webnlg_metrics
    if name == "rouge_metrics":
        from deltalora.metrics.rouge import rouge_metrics

        return rouge_metrics
    raise AttributeError(f"module 'deltalora.metrics' has no attribute {name!r}")
