"""GLUE metrics with the LoRA paper's conventions, computed with scikit-learn and scipy only.

Conventions (LoRA paper, Table 2, which Delta-LoRA follows):

* CoLA: Matthews correlation, key ``matthews_correlation``.
* STS-B: Pearson correlation, key ``pearson`` (Spearman recorded as ``spearmanr``).
* every other task: accuracy, key ``accuracy``; MRPC and QQP also record binary ``f1`` (positive class
  ``equivalent`` / ``duplicate`` = 1).
* MNLI: the caller scores each validation split separately (matched is the table's number, mismatched
  is recorded); this module does not know about splits.

All values are **percentages** (x100), as the paper tables print them: an accuracy of 0.875 is
returned as 87.5 and a Matthews correlation of 0.634 as 63.4.

Why not the ``evaluate`` library: ``evaluate.load`` fetches metric scripts from the hub and fails
offline; the formulas are short and are tested here against hand-computed values.

Degenerate cases are decided, not left to library warnings:

* constant predictions (or constant references): Matthews correlation is 0.0 (the formula's 0/0 is
  the correlation of an uninformative predictor, the convention scikit-learn uses too); Pearson and
  Spearman of a constant vector are mathematically undefined and are reported as 0.0, for the same
  reason, with a :class:`DegenerateMetricWarning`. A model that collapsed to one output therefore
  scores like the majority baseline instead of poisoning every average with NaN.
* non-finite regression predictions (a diverged run): correlations are NaN with a warning, because
  silently scoring a diverged run as 0 would hide a bug; accuracy-type metrics never see this case
  since class predictions come from an argmax.
* mismatched lengths or empty inputs are caller bugs and raise ``ValueError``.
"""

from __future__ import annotations

import math
import warnings
from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np

GLUE_TASK_NAMES: tuple[str, ...] = ("cola", "sst2", "mrpc", "qqp", "stsb", "mnli", "qnli", "rte")

_MAIN_METRIC: dict[str, str] = {
    "cola": "matthews_correlation",
    "sst2": "accuracy",
    "mrpc": "accuracy",
    "qqp": "accuracy",
    "stsb": "pearson",
    "mnli": "accuracy",
    "qnli": "accuracy",
    "rte": "accuracy",
}

_METRIC_KEYS: dict[str, tuple[str, ...]] = {
    "cola": ("matthews_correlation", "accuracy"),
    "sst2": ("accuracy",),
    "mrpc": ("accuracy", "f1"),
    "qqp": ("accuracy", "f1"),
    "stsb": ("pearson", "spearmanr"),
    "mnli": ("accuracy",),
    "qnli": ("accuracy",),
    "rte": ("accuracy",),
}


class DegenerateMetricWarning(UserWarning):
    """A metric was undefined for these inputs (constant or non-finite) and a convention was applied."""


def _check_task(task: str) -> str:
    key = task.lower()
    if key not in _MAIN_METRIC:
        raise ValueError(f"unknown GLUE task {task!r}; known: {', '.join(GLUE_TASK_NAMES)}")
    return key


def main_metric(task: str) -> str:
    """The metric key the paper tables report for `task`.

    ``matthews_correlation`` (CoLA), ``pearson`` (STS-B) or ``accuracy`` (the others).
    """
    return _MAIN_METRIC[_check_task(task)]


def metric_names(task: str) -> tuple[str, ...]:
    """Every key :func:`glue_metrics` returns for `task`, main metric first."""
    return _METRIC_KEYS[_check_task(task)]


def _as_class_predictions(predictions: Any) -> np.ndarray:
    """Class ids from ids or from a (n, num_classes) array of logits (argmax)."""
    arr = np.asarray(predictions)
    if arr.ndim == 2:
        arr = arr.argmax(axis=-1)
    if arr.ndim != 1:
        raise ValueError(f"class predictions must be 1-D ids or 2-D logits, got shape {arr.shape}")
    return arr.astype(np.int64)


def _as_scores(predictions: Any) -> np.ndarray:
    """Float scores from a 1-D vector or an (n, 1) regression-head output."""
    arr = np.asarray(predictions, dtype=np.float64)
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim != 1:
        raise ValueError(f"regression predictions must be 1-D or (n, 1), got shape {arr.shape}")
    return arr


def _correlation(kind: str, x: np.ndarray, y: np.ndarray) -> float:
    """Pearson or Spearman correlation x100 with the module's conventions for degenerate inputs."""
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
        warnings.warn(
            f"{kind}: non-finite values in the inputs; reporting NaN", DegenerateMetricWarning, stacklevel=3
        )
        return math.nan
    if len(x) < 2 or np.ptp(x) == 0 or np.ptp(y) == 0:
        warnings.warn(
            f"{kind}: constant input, correlation undefined; reporting 0.0",
            DegenerateMetricWarning,
            stacklevel=3,
        )
        return 0.0
    from scipy import stats  # imported here: task registries import this module and need no scipy

    if kind == "pearson":
        value = stats.pearsonr(x, y)[0]
    else:
        value = stats.spearmanr(x, y)[0]
    return float(value) * 100.0


def _matthews(pred: np.ndarray, ref: np.ndarray) -> float:
    if len(np.unique(pred)) < 2 or len(np.unique(ref)) < 2:
        return 0.0  # 0/0 in the formula: an uninformative predictor (scikit-learn's convention too).
    from sklearn.metrics import matthews_corrcoef

    return float(matthews_corrcoef(ref, pred)) * 100.0


def glue_metrics(
    task: str, predictions: Sequence[Any] | np.ndarray, references: Sequence[Any] | np.ndarray
) -> dict[str, float]:
    """Score one split of one GLUE task; values are percentages (x100) like the paper tables.

    predictions: class ids, or (n, num_classes) logits (argmax is taken); for ``stsb`` float scores,
        1-D or (n, 1).
    references: gold label ids (floats for ``stsb``).

    Returns the keys of :func:`metric_names` (``main_metric(task)`` first). See the module docstring for
    the degenerate-case conventions.
    """
    key = _check_task(task)
    if key == "stsb":
        pred = _as_scores(predictions)
        ref = np.asarray(references, dtype=np.float64).reshape(-1)
    else:
        pred = _as_class_predictions(predictions)
        ref = np.asarray(references).astype(np.int64).reshape(-1)
    if len(pred) != len(ref):
        raise ValueError(f"{task}: {len(pred)} predictions but {len(ref)} references")
    if len(ref) == 0:
        raise ValueError(f"{task}: no examples to score")

    if key == "stsb":
        return {
            "pearson": _correlation("pearson", pred, ref),
            "spearmanr": _correlation("spearmanr", pred, ref),
        }
    from sklearn.metrics import accuracy_score, f1_score

    out: dict[str, float] = {}
    if key == "cola":
        out["matthews_correlation"] = _matthews(pred, ref)
    out["accuracy"] = float(accuracy_score(ref, pred)) * 100.0
    if key in ("mrpc", "qqp"):
        out["f1"] = float(f1_score(ref, pred, pos_label=1, average="binary", zero_division=0)) * 100.0
    return {k: out[k] for k in _METRIC_KEYS[key]}


def majority_baseline(
    task: str, train_labels: Sequence[Any] | np.ndarray, val_labels: Sequence[Any] | np.ndarray
) -> float:
    """Main-metric score (percent) of always predicting the most frequent training label.

    The majority class is taken from the train labels (ties go to the smallest id) and scored on the
    validation labels. CoLA's Matthews correlation of a constant predictor is 0 by definition. For STS-B
    the analogue, predicting the train mean, has an undefined Pearson correlation; it is defined as 0.0,
    the score of an uninformative predictor.
    """
    key = _check_task(task)
    if key == "stsb":
        return 0.0
    train = [int(x) for x in np.asarray(train_labels).reshape(-1)]
    if not train:
        raise ValueError(f"{task}: no train labels to take a majority from")
    counts = Counter(train)
    top = max(counts.values())
    majority = min(label for label, c in counts.items() if c == top)
    val = np.asarray(val_labels).astype(np.int64).reshape(-1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DegenerateMetricWarning)
        return glue_metrics(key, np.full(len(val), majority), val)[main_metric(key)]
