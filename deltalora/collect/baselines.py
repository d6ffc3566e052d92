"""results/baselines_table: Delta-LoRA beside the LoRA variants published since, at equal tuning.

Why: a method compared at someone else's learning rate wins or loses by the learning rate. Every row
here (LoRA, Delta-LoRA, rsLoRA, PiSSA, LoRA+, DoRA, VeRA, LoHa, LoKr, HRA, HiRA, full FT with SGD...)
trains at each learning rate of one sweep; per task, the learning rate with the best median **dev**
score is selected (the audit's rule, :func:`deltalora.collect.selection.best_by_median`: dev carved
from train, ties to the lower dev loss) and the row is reported on **validation** at that learning rate.

Run records are named ``baselines.<row>.lr<lr>`` (workflow/rules/baselines.smk). Columns per row:

* ``trainable_params``: parameters with a gradient (the record's ``params.trainable``, head included);
* ``peak_memory_ratio``: the run's own peak memory over LoRA's, median over tasks. GPU: ``torch.cuda``
  peak of the run. CPU: the peak RSS the first run of a process added above the RSS it started from
  (later runs of a process only see the process's high-water mark, so they are not used);
* ``step_time_ratio``: training seconds per optimizer step (Trainer's ``train_runtime`` / steps, which
  includes the end-of-epoch evaluation) over LoRA's, median over every run of the row;
* ``update_rank``: numerical rank (singular values above 1e-3 of the largest) of each adapted layer's
  effective update W_T - W_0 (adapter included: which methods really make high-rank updates), median
  over layers, then over the seeds at the selected learning rate, then over tasks; ``update_rank_full``
  is the layer's full rank;
* per task: the median over seeds at the selected learning rate, ``<task>_std`` (sample std over
  seeds), ``<task>_n`` and ``<task>_lr`` (the selected learning rate); ``avg`` over tasks.

A row the installed PEFT cannot run (``--skipped``) is listed with the release it needs.

Usage: ``python -m deltalora.collect.baselines RECORDS... --profile default --rows lora,delta_lora,...
--out results/baselines_table.csv [--skipped JSON] [--plots results/plots]``
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from .. import smoke
from ..records import RecordError
from ..tasks.dev_split import DEV_SPLIT
from .baseline_rows import ROW, lr_text, parse_row, record_row  # noqa: F401 - re-exported
from .selection import best_by_median
from .tables import GLUE_ORDER, fmt, markdown_table, provenance_lines, seed_stats, write_outputs

HEADLINE = "0.001"  # relative threshold of the numerical rank (deltalora/analysis.py)
LABELS = {
    "lora": "LoRA",
    "delta_lora": "Delta-LoRA",
    "lora_scaled": "LoRA x(1+lambda) scale (control)",
    "rslora": "rsLoRA",
    "pissa": "PiSSA",
    "loraplus": "LoRA+",
    "dora": "DoRA",
    "vera": "VeRA",
    "loha": "LoHa",
    "lokr": "LoKr",
    "hra": "HRA",
    "hira": "HiRA",
    "full_ft_sgd": "Full FT (SGD)",
    "full_ft": "Full FT (AdamW)",
}


def _dev(rec: dict[str, Any], key: str) -> float | None:
    v = (((rec.get("best") or {}).get("extra_splits") or {}).get(DEV_SPLIT) or {}).get(key)
    return None if v is None else float(v)


def _val(rec: dict[str, Any]) -> float:
    return float(rec["best"]["metrics"][rec["metric"]])


def run_peak_bytes(rec: dict[str, Any]) -> float | None:
    """The run's own peak memory, or None where the record cannot tell it (see the module docstring)."""
    p = rec.get("provenance") or {}
    peak = p.get("peak_memory_bytes")
    if peak is None:
        return None
    if str(p.get("peak_memory_method", "")).startswith("torch.cuda"):
        return float(peak)
    if p.get("process_run_index") == 0 and p.get("rss_at_start_bytes") is not None:
        return float(peak) - float(p["rss_at_start_bytes"])
    return None


def seconds_per_step(rec: dict[str, Any]) -> float | None:
    rt = (rec.get("train_summary") or {}).get("train_runtime")
    return float(rt) / rec["steps"] if rt and rec.get("steps") else None


def update_rank(rec: dict[str, Any]) -> tuple[float, int] | None:
    """(median over adapted layers of the effective update's numerical rank, the layers' full rank)."""
    layers = ((rec.get("analysis") or {}).get("update_rank") or {}).get("layers") or {}
    ranks = [lay["effective"]["ranks"][HEADLINE] for lay in layers.values()]
    if not ranks:
        return None
    return float(statistics.median(ranks)), int(max(min(lay["shape"]) for lay in layers.values()))


def _median(xs: Sequence[float]) -> float:
    return float(statistics.median(xs)) if xs else math.nan


def select(runs: dict[float, list[dict[str, Any]]]) -> tuple[float | None, str]:
    """The learning rate with the best median dev score (the audit's rule), and the split it used."""
    split = (
        DEV_SPLIT
        if all(_dev(r, r["metric"]) is not None for rs in runs.values() for r in rs)
        else "validation"
    )
    med: dict[str, float] = {}
    loss: dict[str, float] = {}
    for lr, recs in runs.items():
        if split == DEV_SPLIT:
            med[repr(lr)] = _median([_dev(r, r["metric"]) for r in recs])
            losses = [v for r in recs if (v := _dev(r, "loss")) is not None]
        else:
            med[repr(lr)] = _median([_val(r) for r in recs])
            losses = [float(r["best"]["metrics"]["loss"]) for r in recs if "loss" in r["best"]["metrics"]]
        loss[repr(lr)] = _median(losses) if losses else math.inf
    best = best_by_median(med, loss)
    return (float(best) if best is not None else None), split


def baselines_table(
    records: Sequence[dict[str, Any]], *, rows: Sequence[str], skipped: dict[str, str] | None = None
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """One row per baseline (in ``rows`` order), and what the notes need (splits used, sweep)."""
    skipped = dict(skipped or {})
    groups: dict[tuple[str, str], dict[float, list[dict[str, Any]]]] = defaultdict(lambda: defaultdict(list))
    for rec in records:
        parsed = parse_row(rec.get("row") or "")
        if parsed is None:
            raise RecordError(
                f"{rec.get('_path', '?')}: row {rec.get('row')!r} is not a baselines row "
                "(baselines.<row>.lr<lr>)"
            )
        groups[(rec["task"].split("/", 1)[-1], parsed[0])][parsed[1]].append(rec)
    tasks = [t for t in GLUE_ORDER if any(k[0] == t for k in groups)]
    unknown = sorted({r for _, r in groups} - set(rows))
    if unknown:
        raise RecordError(f"records of rows not asked for: {', '.join(unknown)} (rows: {', '.join(rows)})")
    lrs = sorted({lr for g in groups.values() for lr in g})
    splits: set[str] = set()
    stats: dict[str, dict[str, Any]] = {}
    for row in rows:
        if row in skipped:
            continue
        if not any(k[1] == row for k in groups):
            raise RecordError(f"no records for baselines row {row!r}")
        selected: list[dict[str, Any]] = []
        out: dict[str, Any] = {}
        rank, full = [], []
        for t in tasks:
            runs = groups.get((t, row))
            if not runs:
                out[f"{t}_lr"] = math.nan
                continue
            lr, split = select(runs)
            splits.add(split)
            out[f"{t}_lr"] = lr
            chosen = runs[lr]
            selected += chosen
            ranks = [u for r in chosen if (u := update_rank(r)) is not None]
            if ranks:
                rank.append(_median([u[0] for u in ranks]))
                full.append(ranks[0][1])
        all_recs = [r for t in tasks for rs in (groups.get((t, row)) or {}).values() for r in rs]
        frame = pd.DataFrame(
            [{"task": r["task"].split("/", 1)[-1], "seed": r["seed"], "value": _val(r)} for r in selected]
        )
        peaks_by_task = []
        for t in tasks:
            p = [v for rs in (groups.get((t, row)) or {}).values() for r in rs if (v := run_peak_bytes(r))]
            if p:
                peaks_by_task.append(_median(p))
        first = all_recs[0]
        stats[row] = {
            **out,
            **seed_stats(frame, tasks),
            "method": first["method"],
            "config": (first.get("config") or {}).get("hp", {}).get("config", first["method"])
            if first["method"] == "peft"
            else first["method"],
            "trainable_params": int(_median([r["params"]["trainable"] for r in all_recs])),
            "total_params": int(_median([r["params"]["total"] for r in all_recs])),
            "peak_bytes": _median(peaks_by_task),
            "sec_per_step": _median([s for r in all_recs if (s := seconds_per_step(r)) is not None]),
            "update_rank": _median(rank),
            "update_rank_full": max(full) if full else math.nan,
            "n_runs": len(all_recs),
        }
    ref = stats.get("lora")
    table = []
    for row in rows:
        base = {"row": row, "label": LABELS.get(row, row)}
        if row in skipped:
            table.append({**base, "status": f"skipped: {skipped[row]}"})
            continue
        s = stats[row]
        ratio = {k: _ratio_to(s[k], ref[k] if ref else None) for k in ("peak_bytes", "sec_per_step")}
        table.append(
            {
                **base,
                "status": "ok",
                "method": s["method"],
                "config": s["config"],
                "trainable_params": s["trainable_params"],
                "trainable_pct": 100.0 * s["trainable_params"] / s["total_params"],
                "peak_memory_ratio": ratio["peak_bytes"],
                "step_time_ratio": ratio["sec_per_step"],
                "update_rank": s["update_rank"],
                "update_rank_full": s["update_rank_full"],
                **{k: s[k] for t in tasks for k in (t, f"{t}_std", f"{t}_n", f"{t}_lr")},
                "avg": s["avg"],
                "avg_std": s["avg_std"],
                "n_seeds": s["n_seeds"],
                "n_runs": s["n_runs"],
            }
        )
    return pd.DataFrame(table), {"tasks": tasks, "lrs": lrs, "splits": sorted(splits), "ref": bool(ref)}


def _ratio_to(x: float, ref: float | None) -> float:
    return x / ref if ref and not math.isnan(ref) and not math.isnan(x) else math.nan


def _ratio(v: Any) -> str:
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else f"x{v:.2f}"


def _int(v: Any) -> str:
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:,.0f}"


def _rank(r: pd.Series) -> str:
    if pd.isna(r.get("update_rank")):
        return "-"
    return f"{r['update_rank']:g} / {r['update_rank_full']:g}"


def render_markdown(
    table: pd.DataFrame,
    info: dict[str, Any],
    records: Sequence[dict[str, Any]],
    profile: str,
    plots: list[str],
) -> str:
    tasks = info["tasks"]
    header = [
        "Method",
        "Trainable params",
        "Peak memory",
        "Step time",
        "rank(W_T - W_0)",
        *map(str.upper, tasks),
        "Avg",
    ]
    body = []
    for _, r in table.iterrows():
        if r["status"] != "ok":
            body.append([r["label"], r["status"], *[""] * (len(header) - 2)])
            continue
        body.append(
            [
                r["label"],
                f"{_int(r['trainable_params'])} ({r['trainable_pct']:.2f}%)",
                _ratio(r["peak_memory_ratio"]),
                _ratio(r["step_time_ratio"]),
                _rank(r),
                *[
                    fmt(r[t], r[f"{t}_std"])
                    + (f" @{lr_text(r[f'{t}_lr'])}" if pd.notna(r[f"{t}_lr"]) else "")
                    for t in tasks
                ],
                fmt(r["avg"], r["avg_std"]),
            ]
        )
    wall = sum(float((rec.get("provenance") or {}).get("wall_time_s") or 0.0) for rec in records)
    where = " and ".join(info["splits"]) or "dev"
    lines = [
        f"# Delta-LoRA and the LoRA variants published since, at equal tuning ({smoke.label(profile)})",
        "",
        *provenance_lines(records, profile),
        "- Every row trains at each learning rate of one sweep "
        f"({', '.join(lr_text(x) for x in info['lrs'])}); per task the learning rate with the best "
        f"median {where} score is selected (dev carved from train; ties to the lower dev loss) and the "
        "row is reported on validation at it (`@lr` in each cell).",
        "- Cells: median over seeds (x100) ± sample std over seeds, at the selected learning rate; Avg: "
        "mean of the task medians ± std over seeds of the per-seed mean.",
        "- Trainable params: with a gradient, task head included. Peak memory and step time: ratios to LoRA "
        "(peak: the run's own, GPU allocator or, on CPU, the RSS the first run of each process added; step: "
        "training seconds per optimizer step, evaluation included; CPU timings are noisy under load).",
        "- rank(W_T - W_0): numerical rank (singular values > 1e-3 of the largest) of each adapted layer's "
        "effective update, adapter included, median over layers, seeds and tasks / the layer's full rank.",
        f"- Training time summed over the {len(records)} runs (run records' wall time): {wall:.0f} s.",
        "",
        markdown_table(header, body),
    ]
    rel = [os.path.relpath(p, "results") for p in plots if p.endswith(".png")]
    lines += ["", *[f"![score against the rank of the update]({p})" for p in rel]]
    if profile != "paper":
        lines += [
            "",
            "> Proxy-scale numbers (small model, generated data): they show the machinery, not the "
            "paper's scale.",
        ]
    return "\n".join(lines) + "\n"


def render_latex(table: pd.DataFrame, info: dict[str, Any]) -> str:
    tasks = info["tasks"]
    cols = "l" + "r" * (4 + len(tasks) + 1)
    head = ["Method", "Params", "Mem.", "Step", "rank", *[t.upper() for t in tasks], "Avg"]
    out = [f"\\begin{{tabular}}{{{cols}}}", "\\toprule", " & ".join(head) + " \\\\", "\\midrule"]
    for _, r in table.iterrows():
        label = r["label"].replace("_", "\\_")
        if r["status"] != "ok":
            out.append(f"{label} & \\multicolumn{{{len(head) - 1}}}{{l}}{{skipped}} \\\\")
            continue
        cells = [
            label,
            _int(r["trainable_params"]),
            _ratio(r["peak_memory_ratio"]).replace("x", "$\\times$"),
            _ratio(r["step_time_ratio"]).replace("x", "$\\times$"),
            _rank(r),
            *[fmt(r[t], r[f"{t}_std"]).replace("±", "$\\pm$") for t in tasks],
            fmt(r["avg"], r["avg_std"]).replace("±", "$\\pm$"),
        ]
        out.append(" & ".join(cells) + " \\\\")
    out += ["\\bottomrule", "\\end{tabular}", ""]
    return "\n".join(out)


def rank_plot(table: pd.DataFrame, *, profile: str, base: str | os.PathLike) -> list[str]:
    """Average score against the rank of the update: which methods make high-rank updates, and does it pay."""
    from .plots import _plt, save

    ok = table[(table["status"] == "ok") & table["update_rank"].notna()]
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for i, (_, r) in enumerate(ok.iterrows()):
        ax.errorbar(r["update_rank"], r["avg"], yerr=None if pd.isna(r["avg_std"]) else r["avg_std"], fmt="o")
        ax.annotate(
            r["label"],
            (r["update_rank"], r["avg"]),
            textcoords="offset points",
            xytext=(4, 3 if i % 2 else -10),
            fontsize=7,
        )
    if len(ok):
        ax.set_xscale("log")
    ax.set_xlabel("numerical rank of W_T - W_0 (median over layers; log scale)")
    ax.set_ylabel("average score over tasks (validation, x100)")
    ax.set_title(f"Baselines at equal tuning ({smoke.label(profile)})", fontsize=9)
    return save(fig, base)


def collect_baselines(
    paths: Sequence[str | os.PathLike],
    out_csv: str | os.PathLike,
    *,
    profile: str,
    rows: Sequence[str],
    skipped: dict[str, str] | None = None,
    plots_dir: str | os.PathLike | None = None,
) -> pd.DataFrame:
    """Build results/baselines_table.{csv,md,tex} (and the rank plot) from the study's run records."""
    from .tables import load_records

    recs = load_records(paths, profile=profile)
    table, info = baselines_table(recs, rows=rows, skipped=skipped)
    plots = rank_plot(table, profile=profile, base=Path(plots_dir) / "baselines_rank") if plots_dir else []
    write_outputs(
        table, out_csv, render_markdown(table, info, recs, profile, plots), render_latex(table, info)
    )
    return table


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m deltalora.collect.baselines", description=__doc__.splitlines()[0]
    )
    ap.add_argument("records", nargs="+")
    ap.add_argument("--profile", required=True, choices=["default", "paper"])
    ap.add_argument("--rows", required=True, help="comma-separated baselines rows, in table order")
    ap.add_argument(
        "--skipped", default="{}", help='JSON {"row": "why"} of rows the installed PEFT cannot run'
    )
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--plots", type=Path, default=None)
    a = ap.parse_args(argv)
    try:
        skipped = json.loads(a.skipped)
        table = collect_baselines(
            a.records, a.out, profile=a.profile, rows=a.rows.split(","), skipped=skipped, plots_dir=a.plots
        )
    except (RecordError, json.JSONDecodeError) as e:
        print(f"deltalora: error: {e}", file=sys.stderr)
        return 2
    print(f"{a.out}: {len(table)} rows")
    return 0


if __name__ == "__main__":
    sys.exit(main())
