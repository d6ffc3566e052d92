"""GLUE metrics against values computed by hand from the formulas, and the degenerate-case conventions."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

from deltalora.metrics.glue import (
    DegenerateMetricWarning,
    glue_metrics,
    main_metric,
    majority_baseline,
    metric_names,
)

TASKS = ("cola", "sst2", "mrpc", "qqp", "stsb", "mnli", "qnli", "rte")


def _pearson_by_hand(x: list[float], y: list[float]) -> float:
    n = len(x)
    mx, my = sum(x) / n, sum(y) / n
    cov = sum((a - mx) * (b - my) for a, b in zip(x, y, strict=False))
    vx = sum((a - mx) ** 2 for a in x)
    vy = sum((b - my) ** 2 for b in y)
    return cov / math.sqrt(vx * vy)


def test_main_metric_follows_the_lora_table_convention() -> None:
    assert {t: main_metric(t) for t in TASKS} == {
        "cola": "matthews_correlation",
        "sst2": "accuracy",
        "mrpc": "accuracy",
        "qqp": "accuracy",
        "stsb": "pearson",
        "mnli": "accuracy",
        "qnli": "accuracy",
        "rte": "accuracy",
    }
    for t in TASKS:
        assert metric_names(t)[0] == main_metric(t)
    assert metric_names("mrpc") == ("accuracy", "f1")
    assert metric_names("qqp") == ("accuracy", "f1")
    assert metric_names("stsb") == ("pearson", "spearmanr")


def test_matthews_from_a_2x2_confusion_matrix() -> None:
    # TP=3, TN=2, FP=1, FN=2
    refs = [1, 1, 1, 1, 1, 0, 0, 0]
    preds = [1, 1, 1, 0, 0, 0, 0, 1]
    tp, tn, fp, fn = 3, 2, 1, 2
    expected = (tp * tn - fp * fn) / math.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
    out = glue_metrics("cola", preds, refs)
    assert list(out) == ["matthews_correlation", "accuracy"]
    assert out["matthews_correlation"] == pytest.approx(100 * expected)  # 25.82
    assert out["accuracy"] == pytest.approx(100 * 5 / 8)


def test_accuracy_and_f1_by_counting() -> None:
    refs = [1, 0, 1, 1, 0, 0, 1]
    preds = [1, 1, 0, 1, 0, 0, 1]
    # TP=3 (idx 0,3,6), FP=1 (idx 1), FN=1 (idx 2), correct = 5
    out = glue_metrics("mrpc", preds, refs)
    assert out["accuracy"] == pytest.approx(100 * 5 / 7)
    precision, recall = 3 / 4, 3 / 4
    assert out["f1"] == pytest.approx(100 * 2 * precision * recall / (precision + recall))
    assert glue_metrics("qqp", preds, refs) == out
    assert glue_metrics("mnli", [0, 1, 2, 2], [0, 1, 1, 2]) == {"accuracy": 75.0}


def test_logits_are_argmaxed_and_regression_column_squeezed() -> None:
    logits = np.array([[0.1, 2.0, 0.3], [3.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    assert glue_metrics("mnli", logits, [1, 0, 0])["accuracy"] == pytest.approx(200 / 3)
    x, y = [1.0, 2.0, 3.0, 4.0], [2.0, 4.0, 5.0, 9.0]
    col = np.array(x).reshape(-1, 1)
    assert glue_metrics("stsb", col, y) == glue_metrics("stsb", x, y)


def test_pearson_and_spearman_by_hand() -> None:
    x = [1.0, 2.0, 3.0, 4.0, 5.0]
    y = [2.0, 1.0, 4.0, 3.0, 7.0]
    out = glue_metrics("stsb", x, y)
    assert list(out) == ["pearson", "spearmanr"]
    assert out["pearson"] == pytest.approx(100 * _pearson_by_hand(x, y))
    ranks_y = [2.0, 1.0, 4.0, 3.0, 5.0]  # y has no ties, x is already its own rank
    assert out["spearmanr"] == pytest.approx(100 * _pearson_by_hand(x, ranks_y))


def test_constant_predictions_are_defined_as_zero() -> None:
    assert glue_metrics("cola", [1, 1, 1, 1], [1, 0, 1, 0])["matthews_correlation"] == 0.0
    with pytest.warns(DegenerateMetricWarning, match="constant"):
        out = glue_metrics("stsb", [2.5, 2.5, 2.5], [1.0, 2.0, 4.0])
    assert out == {"pearson": 0.0, "spearmanr": 0.0}


def test_non_finite_regression_predictions_give_nan_with_a_warning() -> None:
    with pytest.warns(DegenerateMetricWarning, match="non-finite"):
        out = glue_metrics("stsb", [1.0, float("nan"), 3.0], [1.0, 2.0, 4.0])
    assert math.isnan(out["pearson"]) and math.isnan(out["spearmanr"])


def test_caller_errors_raise() -> None:
    with pytest.raises(ValueError, match="2 predictions but 3 references"):
        glue_metrics("sst2", [0, 1], [0, 1, 1])
    with pytest.raises(ValueError, match="no examples"):
        glue_metrics("sst2", [], [])
    with pytest.raises(ValueError, match="unknown GLUE task 'wnli'"):
        glue_metrics("wnli", [0], [0])


def test_majority_baseline() -> None:
    # train majority is 1 (3 of 4); on validation [1, 0, 1, 1, 0] that is 3/5 right
    assert majority_baseline("mrpc", [1, 1, 0, 1], [1, 0, 1, 1, 0]) == pytest.approx(60.0)
    # a tie goes to the smallest id: 0 here, right on 2 of 5
    assert majority_baseline("rte", [0, 1, 1, 0], [1, 0, 1, 1, 0]) == pytest.approx(40.0)
    assert majority_baseline("cola", [1, 1, 0], [1, 0, 1]) == 0.0
    assert majority_baseline("stsb", [1.0, 2.0], [3.0, 4.0]) == 0.0
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the baseline itself emits no degenerate-metric warning
        majority_baseline("cola", [1, 1, 0], [1, 0, 1])
