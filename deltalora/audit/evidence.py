"""Evidence for the audit: run records and the optional measurement CSVs, read once and indexed.

The caller passes record paths and, optionally, the memory table, the dropout-ablation summary and
the gradient-cosine file. Records of another profile are refused (``collect.tables.load_records``);
a truncated or incomplete record is refused by ``records.read_record``. A CSV that is not given, does
not exist, cannot be parsed or lacks its columns is *absent evidence*: it is noted (with the reason)
in ``Evidence.absent`` and every claim that needs it comes out ``inconclusive``; nothing crashes.
"""

from __future__ import annotations

import math
import os
import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from .. import smoke
from ..collect.tables import load_records
from ..records import RecordError

MEMORY_COLUMNS = ("model", "dtype", "config", "peak_ratio_to_lora", "step_ratio_to_lora")
COSINE_COLUMNS = ("method", "dropout", "step", "layer", "cosine")
DROPOUT_COLUMNS = ("method", "dropout")

GLUE_TASKS = (
    "glue/mnli",
    "glue/sst2",
    "glue/mrpc",
    "glue/cola",
    "glue/qnli",
    "glue/qqp",
    "glue/rte",
    "glue/stsb",
)
TASK_LABELS = {
    "glue/mnli": "MNLI",
    "glue/sst2": "SST-2",
    "glue/mrpc": "MRPC",
    "glue/cola": "CoLA",
    "glue/qnli": "QNLI",
    "glue/qqp": "QQP",
    "glue/rte": "RTE",
    "glue/stsb": "STS-B",
    "e2e": "E2E",
    "webnlg": "WebNLG",
    "xsum": "XSum",
}
TASK_ORDER = (*GLUE_TASKS, "e2e", "webnlg", "xsum")

LR_ROW = re.compile(r"^lora_lr(?P<lr>[0-9.eE+-]+)$")
DROPOUT_ROW = re.compile(r"^dropout_(?P<method>delta_lora|lora)_p(?P<p>[0-9.eE+-]+)$")


def task_label(task: str) -> str:
    return TASK_LABELS.get(task, task)


def task_sort_key(task: str) -> tuple[int, str]:
    return (TASK_ORDER.index(task) if task in TASK_ORDER else len(TASK_ORDER), task)


@dataclass
class Evidence:
    """Everything the claims are tested on. ``absent`` maps an input name to why it is missing."""

    profile: str
    records: list[dict[str, Any]]
    memory: pd.DataFrame | None = None
    dropout_summary: pd.DataFrame | None = None
    cosines: pd.DataFrame | None = None
    absent: dict[str, str] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)
    index: dict[tuple[str, str], dict[Any, dict[str, Any]]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.index:
            self.index = index_records(self.records)

    # ------------------------------------------------------------------ record look-ups
    def runs(self, task: str, row: str) -> dict[Any, dict[str, Any]]:
        """seed -> record for one (task, row); empty when absent."""
        return self.index.get((task, row), {})

    def tasks(self, row: str | None = None) -> list[str]:
        ts = {t for (t, r) in self.index if row is None or r == row}
        return sorted(ts, key=task_sort_key)

    def rows(self, task: str | None = None) -> list[str]:
        return sorted({r for (t, r) in self.index if task is None or t == task})

    def scores(
        self, task: str, row: str, metric: str | None = None, *, split: str | None = None
    ) -> dict[Any, float]:
        """seed -> score (best epoch, as the tables score); seeds without the metric are left out."""
        out = {}
        for seed, rec in self.runs(task, row).items():
            v = metric_value(rec, metric, split=split)
            if v is not None:
                out[seed] = v
        return out

    def main_metric(self, task: str) -> str | None:
        for (t, _), runs in self.index.items():
            if t == task and runs:
                return next(iter(runs.values()))["metric"]
        return None


def index_records(records: Sequence[dict[str, Any]]) -> dict[tuple[str, str], dict[Any, dict[str, Any]]]:
    idx: dict[tuple[str, str], dict[Any, dict[str, Any]]] = defaultdict(dict)
    for rec in records:
        key = (rec["task"], rec.get("row") or rec["method"])
        if rec["seed"] in idx[key]:
            raise RecordError(
                f"two records for the same (task, row, seed) {key + (rec['seed'],)}: "
                f"{idx[key][rec['seed']].get('_path', '?')} and {rec.get('_path', '?')}"
            )
        idx[key][rec["seed"]] = rec
    return {k: dict(sorted(v.items(), key=lambda kv: str(kv[0]).zfill(12))) for k, v in idx.items()}


def metric_value(
    rec: dict[str, Any], metric: str | None = None, *, split: str | None = None, which: str = "best"
) -> float | None:
    """The record's score at its best epoch (validation, or another evaluated split of that epoch)."""
    metric = metric or rec["metric"]
    entry = rec.get(which) or {}
    metrics = entry.get("metrics", {}) if split is None else (entry.get("extra_splits") or {}).get(split, {})
    v = metrics.get(metric)
    if v is None:
        return None
    try:
        v = float(v)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def eval_size(rec: dict[str, Any]) -> int | None:
    """Number of validation examples the main metric was computed on, when the record says it."""
    cfg = rec.get("config") or {}
    sizes = []
    n_val = (cfg.get("data") or {}).get("n_val")
    if isinstance(n_val, int) and n_val > 0:
        sizes.append(n_val)
    if rec.get("task_family") != "glue" and not str(rec.get("task", "")).startswith("glue/"):
        max_eval = (cfg.get("generation") or {}).get("max_eval")
        if isinstance(max_eval, int) and max_eval > 0:
            sizes.append(max_eval)
    return min(sizes) if sizes else None


def learning_rate(rec: dict[str, Any]) -> float | None:
    lr = ((rec.get("config") or {}).get("train") or {}).get("lr")
    if isinstance(lr, (int, float)):
        return float(lr)
    m = LR_ROW.match(rec.get("row") or "")
    return float(m.group("lr")) if m else None


def engine_of(rec: dict[str, Any]) -> str | None:
    dl = rec.get("delta_lora") or {}
    return dl.get("engine") or ((rec.get("config") or {}).get("hp") or {}).get("engine")


def rank_layers(rec: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return (((rec.get("analysis") or {}).get("update_rank") or {}).get("layers")) or {}


def two_r_of(rec: dict[str, Any], layer: dict[str, Any]) -> int | None:
    if isinstance(layer.get("two_r"), int):
        return layer["two_r"]
    r = ((rec.get("config") or {}).get("hp") or {}).get("r")
    return 2 * int(r) if isinstance(r, (int, float)) else None


def scale_label(profile: str, records: Iterable[dict[str, Any]]) -> str:
    records = list(records)
    models = sorted({str(r.get("model")) for r in records})
    m = ", ".join(models) if models else "no runs"
    if any(smoke.is_smoke(r) for r in records):  # before "paper scale": a smoke run is not at that scale
        where = (
            "tiny random stand-ins from the smoke mirror (`deltalora mirror`)"
            if any(smoke.is_stand_in(r) for r in records)
            else "at toy size"
        )
        return f"smoke scale ({profile} profile, {where}: {m}); {smoke.SMOKE_NOTE}"
    if profile == "paper":
        return f"paper scale (models: {m})"
    devices = sorted(
        {str(((r.get("provenance") or {}).get("device") or {}).get("type", "?")) for r in records}
    )
    return (
        f"proxy scale ({profile} profile: {m}; generated proxy data; {', '.join(devices) or '?'}); "
        "proxy-scale evidence, not a verdict on the paper"
    )


# --------------------------------------------------------------------------- reading the inputs
def _read_csv(
    name: str,
    path: str | os.PathLike | None,
    columns: Sequence[str],
    absent: dict[str, str],
    sources: dict[str, str],
) -> pd.DataFrame | None:
    if path is None:
        absent[name] = "not given"
        return None
    p = Path(path)
    sources[name] = str(p)
    if not p.is_file():
        absent[name] = f"{p} does not exist"
        return None
    try:
        df = pd.read_csv(p)
    except Exception as e:  # noqa: BLE001 - unreadable evidence is absent evidence, with the reason
        absent[name] = f"{p} could not be read ({type(e).__name__}: {e})"
        return None
    missing = [c for c in columns if c not in df.columns]
    if missing:
        absent[name] = f"{p} lacks columns {missing}"
        return None
    if df.empty:
        absent[name] = f"{p} has no rows"
        return None
    return df


def _check_smoke(recs: Sequence[dict[str, Any]], tables: dict[str, tuple[Any, pd.DataFrame | None]]) -> None:
    """Refuse smoke measurements beside real records; make the audit a smoke audit if any input is smoke.

    Why: a smoke CSV (its ``smoke`` column, :func:`deltalora.collect.tables.with_smoke_column`) beside
    real records would slip toy numbers into a real verdict. Real measurements beside smoke records are
    kept: the audit is labelled smoke as a whole.
    """
    smoke_csvs = [
        str(path)
        for path, df in tables.values()
        if df is not None and "smoke" in df.columns and df["smoke"].astype(str).str.lower().eq("true").any()
    ]
    records_smoke = any(smoke.is_smoke(r) for r in recs)
    if smoke_csvs and recs and not records_smoke:
        raise RecordError(
            f"{smoke_csvs[0]} comes from a smoke build but the run records ({recs[0].get('_path', '?')} ...) "
            "are real; the audit never mixes smoke runs with real ones"
        )
    if smoke_csvs or records_smoke:
        smoke.activate(stand_in=smoke.stand_in_active() or any(smoke.is_stand_in(r) for r in recs))


def gather(
    records: Iterable[str | os.PathLike],
    *,
    profile: str,
    memory_csv: str | os.PathLike | None = None,
    dropout_csv: str | os.PathLike | None = None,
    cosines_csv: str | os.PathLike | None = None,
) -> Evidence:
    """Read every input. Raises RecordError for a bad record or one from another profile; never for a CSV."""
    paths = list(records)
    recs = load_records(paths, profile=profile) if paths else []
    absent: dict[str, str] = {}
    sources: dict[str, str] = {}
    if not recs:
        absent["records"] = "no run records given"
    memory = _read_csv("memory", memory_csv, MEMORY_COLUMNS, absent, sources)
    if memory is not None and "profile" in memory.columns:
        other = sorted(set(memory["profile"].dropna().astype(str)) - {profile})
        if other:
            absent["memory"] = f"{memory_csv} is from profile(s) {other}, not {profile!r}"
            memory = None
    dropout = _read_csv("dropout_summary", dropout_csv, DROPOUT_COLUMNS, absent, sources)
    cosines = _read_csv("cosines", cosines_csv, COSINE_COLUMNS, absent, sources)
    _check_smoke(
        recs,
        {
            "memory": (memory_csv, memory),
            "dropout": (dropout_csv, dropout),
            "cosines": (cosines_csv, cosines),
        },
    )
    if cosines is not None:
        cosines = cosines.copy()
        cosines["dropout"] = pd.to_numeric(cosines["dropout"], errors="coerce")
        cosines["cosine"] = pd.to_numeric(cosines["cosine"], errors="coerce")
        cosines = cosines.dropna(subset=["dropout", "cosine"])
        if cosines.empty:
            absent["cosines"] = f"{cosines_csv} has no numeric (dropout, cosine) rows"
            cosines = None
    return Evidence(
        profile=profile,
        records=recs,
        memory=memory,
        dropout_summary=dropout,
        cosines=cosines,
        absent=absent,
        sources=sources,
    )
