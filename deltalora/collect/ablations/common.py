"""Pieces shared by the ablation collectors: record fields, frames, Markdown sections."""

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from ...records import RecordError
from ..tables import (
    GLUE_ORDER,
    long_frame,
)

LORA_METHODS = ("lora", "delta_lora")
RANK_THRESHOLD = "0.001"  # the headline threshold of deltalora.analysis (relative to sigma_1)


# --------------------------------------------------------------------------- shared pieces
def _hp(rec: dict[str, Any], key: str) -> Any:
    try:
        return rec["config"]["hp"][key]
    except (KeyError, TypeError):
        raise RecordError(f"{rec.get('_path', '?')}: run record has no config.hp.{key}") from None


def _only_methods(records: Sequence[dict[str, Any]], methods: Sequence[str], what: str) -> None:
    bad = [r["_path"] for r in records if r["method"] not in methods]
    if bad:
        raise RecordError(
            f"the {what} ablation takes methods {list(methods)} only; got other methods in {bad[:4]}"
        )


def _frame(
    records: Sequence[dict[str, Any]],
    params: dict[str, Callable[[dict[str, Any]], Any]],
    label: Callable[[dict[str, Any]], str],
) -> pd.DataFrame:
    """`long_frame` (one row per run) keyed by the ablation's parameters instead of the record's row name.

    The key replaces `row`, so two records for the same (task, parameters, seed) are refused.
    """
    keyed = [{**r, "row": label(r)} for r in records]
    df = long_frame(keyed)
    for col, get in params.items():
        df[col] = [get(r) for r in records]
    return df


def _tasks(df: pd.DataFrame) -> list[str]:
    present = list(dict.fromkeys(df["task"]))
    return [t for t in GLUE_ORDER if t in present] + [t for t in present if t not in GLUE_ORDER]


def _metric_names(df: pd.DataFrame, tasks: Sequence[str]) -> dict[str, str]:
    return {t: df[df["task"] == t]["metric"].iloc[0] for t in tasks}


def _metrics_line(metrics: dict[str, str]) -> str:
    return (
        "- Metrics (as in the records, best epoch): "
        + ", ".join(f"{t}: {m}" for t, m in metrics.items())
        + "."
    )


def _fixed_hp(records: Sequence[dict[str, Any]], keys: Sequence[str]) -> str:
    parts = []
    for k in keys:
        vals = sorted({repr(r["config"]["hp"][k]) for r in records if r["config"]["hp"].get(k) is not None})
        if vals:  # a method without the key (LoRA has no update_ratio) is left out
            parts.append(f"{k}={'/'.join(vals)}")
    return ", ".join(parts)


def _task_header(t: str) -> str:
    return "STS-B" if t == "stsb" else t.upper()


def _rel(paths: Sequence[str], out_csv: str | os.PathLike) -> list[str]:
    return [os.path.relpath(p, Path(out_csv).parent) for p in paths if p.endswith(".png")]


def _plots_section(rel: Sequence[str]) -> list[str]:
    return ["", "## Plots", "", *[f"![{Path(p).stem}]({p})" for p in rel]] if rel else []


def _not_comparable(profile: str) -> list[str]:
    if profile == "paper":
        return []
    return [
        "",
        f"> The {profile} profile runs small proxies on a small model: these numbers show the machinery and "
        "the direction of effects at proxy scale; they are not the paper's numbers.",
    ]


def _order(method: str) -> int:
    return LORA_METHODS.index(method) if method in LORA_METHODS else len(LORA_METHODS)


def _keys(df: pd.DataFrame, param: str) -> list[tuple[str, Any]]:
    """The (method, param) pairs present, LoRA first, then by the parameter's value."""
    pairs = {(m, v) for m, v in zip(df["method"], df[param], strict=True)}
    return sorted(pairs, key=lambda k: (_order(k[0]), k[1]))
