"""A task description shared by every task family (GLUE, E2E, WebNLG, XSum).

Why one small dataclass: the runner, the collectors and the data checks need the same few facts about a
task (which columns hold the text, what the label set is, which split is scored and with which metric)
whatever the family. Keeping those facts in one frozen record, next to the loader that produces the
data, means a new task is one registry entry instead of edits scattered over train/evaluate/collect.
Nothing here imports `datasets` or `torch`, so the collectors can read task facts cheaply.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

Family = Literal["glue", "nlg"]


@dataclass(frozen=True)
class TaskSpec:
    """Facts about one task, independent of where its data come from (hub or embedded proxy).

    name: the task's short id (``"sst2"``, ``"e2e"``); also the hub config name where there is one.
    family: ``"glue"`` (classification/regression with an encoder) or ``"nlg"`` (generation).
    hub_id / hub_config: the dataset on the Hugging Face hub for the ``paper`` profile.
    input_columns: the text column(s) the model reads, in the order they are paired.
    label_column: the column holding the gold label or target text.
    label_names: class names in id order for classification (``("negative", "positive")``); ``None``
        for regression and generation.
    label_range: inclusive (low, high) bounds of a float label (STS-B: (0.0, 5.0)); ``None`` otherwise.
    metric_name: the key of the metric the paper tables report for this task.
    extra_metrics: further metric keys recorded in each run record.
    train_split: the split trained on.
    eval_split: the split whose score goes into the tables.
    extra_eval_splits: splits evaluated and recorded but not scored in the tables
        (MNLI: ``validation_mismatched``).
    max_length: token budget for the inputs in the embedded profile (the paper profile sets its own).
    description: one line for docs and logs.
    extra: family-specific facts (e.g. a target column or reference grouping for NLG tasks).
    """

    name: str
    family: Family
    input_columns: tuple[str, ...]
    metric_name: str
    hub_id: str | None = None
    hub_config: str | None = None
    label_column: str = "label"
    label_names: tuple[str, ...] | None = None
    label_range: tuple[float, float] | None = None
    extra_metrics: tuple[str, ...] = ()
    train_split: str = "train"
    eval_split: str = "validation"
    extra_eval_splits: tuple[str, ...] = ()
    max_length: int = 64
    description: str = ""
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def is_regression(self) -> bool:
        """True for a float-label task (STS-B): one output unit, MSE loss, correlation metrics."""
        return self.label_names is None and self.label_range is not None

    @property
    def num_labels(self) -> int:
        """Output units of a classification head: number of classes, or 1 for regression."""
        if self.label_names is not None:
            return len(self.label_names)
        return 1

    @property
    def eval_splits(self) -> tuple[str, ...]:
        """Every split that is evaluated: the scored one first."""
        return (self.eval_split, *self.extra_eval_splits)

    @property
    def splits(self) -> tuple[str, ...]:
        """Every split a loader returns (train first)."""
        return (self.train_split, *self.eval_splits)

    @property
    def metrics(self) -> tuple[str, ...]:
        """All metric keys, the table's one first."""
        return (self.metric_name, *self.extra_metrics)
