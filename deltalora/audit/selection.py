"""Selection on dev, comparison on validation: the audit's one rule for every choice it makes.

Why: a choice made on the split that is then reported (the best learning rate of a sweep, the best
LoRA control) favours what was chosen. Runs evaluate a ``dev`` split carved from train
(:mod:`deltalora.tasks.dev_split`); the audit picks the row with the best median dev score and then
compares on validation. Records without a dev score (older builds, NLG) fall back to validation, and
the evidence says so.
"""

from __future__ import annotations

import math
import re
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..collect.selection import best_by_median
from ..tasks.dev_split import DEV_SPLIT
from .evidence import Evidence
from .stats import pair_by_seed

#: Delta-LoRA's learning-rate sweep rows, as ``lora_lr<value>`` is LoRA's (same values, same runs).
DELTA_LR_ROW = re.compile(r"^delta_lora_lr(?P<lr>[0-9.eE+-]+)$")


def selection_split(ev: Evidence, task: str, rows: Sequence[str]) -> str | None:
    """``"dev"`` when every run of these rows on the task has a dev score, else None (validation)."""
    recs = [rec for r in rows for rec in ev.runs(task, r).values()]
    if recs and all(((rec.get("best") or {}).get("extra_splits") or {}).get(DEV_SPLIT) for rec in recs):
        return DEV_SPLIT
    return None


def select_best(
    ev: Evidence, task: str, rows: Sequence[str], split: str | None
) -> tuple[str | None, dict[str, float]]:
    """The row with the best median score on ``split`` (dev), and every row's median there.

    Ties (a small dev split saturates: many rows reach the same count of correct examples) go to the
    lower median loss on the same split, then to the row name that sorts last, deterministically.
    """
    med: dict[str, float] = {}
    loss: dict[str, float] = {}
    for r in rows:
        vals = list(ev.scores(task, r, split=split).values())
        if vals:
            med[r] = float(statistics.median(vals))
            losses = list(ev.scores(task, r, "loss", split=split).values())
            loss[r] = float(statistics.median(losses)) if losses else math.inf
    return best_by_median(med, loss), med


def sweep_rows(ev: Evidence, task: str, base: str, pattern: re.Pattern[str]) -> list[str]:
    """The base row and its learning-rate sweep rows present for the task."""
    return [r for r in ev.rows(task) if r == base or pattern.match(r)]


@dataclass(frozen=True)
class TunedPair:
    """Two methods on one task, each at its own selected row (learning rate), paired by seed."""

    split: str | None  # the selection split ("dev"), None: validation
    best_x: str
    medians_x: dict[str, float]
    best_y: str
    medians_y: dict[str, float]
    diffs: dict[Any, float]  # seed -> X - Y on validation, at the selected rows


def tuned_pair(ev: Evidence, task: str, x_rows: Sequence[str], y_rows: Sequence[str]) -> TunedPair | None:
    """Select X's and Y's rows on dev by the one rule, then pair their validation scores by seed.

    None when either side has no row with a score, or no seed is shared.
    """
    split = selection_split(ev, task, [*x_rows, *y_rows])
    bx, xmed = select_best(ev, task, x_rows, split)
    by, ymed = select_best(ev, task, y_rows, split)
    if bx is None or by is None:
        return None
    d = pair_by_seed(ev.scores(task, bx), ev.scores(task, by))
    return TunedPair(split, bx, xmed, by, ymed, d) if d else None


def describe_selection(split: str | None, medians: dict[str, float], best: str | None) -> str:
    where = "dev" if split else "validation (no dev split in these records: selection favours the chosen row)"
    vals = ", ".join(f"{r} {v:.2f}" for r, v in sorted(medians.items()))
    return f"medians on {where}: {vals}; selected {best}"


def extra_of(best: str | None, medians: dict[str, float]) -> dict[str, Any]:
    return {"best": best, "medians": medians}
