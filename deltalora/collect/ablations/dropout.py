"""The dropout ablation: LoRA and Delta-LoRA with and without dropout, and the cosines."""

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ... import smoke
from ...records import atomic_write_text
from ..tables import (
    ROW_LABELS,
    _std,
    fmt,
    load_records,
    markdown_table,
    provenance_lines,
    seed_stats,
    with_smoke_column,
    write_outputs,
)
from .common import (
    LORA_METHODS,
    _fixed_hp,
    _frame,
    _hp,
    _keys,
    _metric_names,
    _metrics_line,
    _not_comparable,
    _only_methods,
    _order,
    _plots_section,
    _rel,
    _task_header,
    _tasks,
)


# --------------------------------------------------------------------------- dropout
def _dropout_label(method: str, p: float) -> str:
    return f"{ROW_LABELS.get(method, method)}, dropout {p:g}"


def dropout_table(records: Sequence[dict[str, Any]]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(score table, long frame): rows = (method, dropout), per task median ± std and the average."""
    _only_methods(records, LORA_METHODS, "dropout")
    df = _frame(
        records,
        {
            "dropout": lambda r: float(_hp(r, "dropout")),
            "allow_dropout": lambda r: bool(r["config"]["hp"].get("allow_dropout", False)),
        },
        lambda r: _dropout_label(r["method"], float(_hp(r, "dropout"))),
    )
    tasks = _tasks(df)
    rows = []
    keys = _keys(df, "dropout")
    for method, p in keys:
        sub = df[(df["method"] == method) & (df["dropout"] == p)]
        rows.append(
            {"row": _dropout_label(method, p), "method": method, "dropout": p, **seed_stats(sub, tasks)}
        )
    return pd.DataFrame(rows), df


def dropout_cosines(records: Sequence[dict[str, Any]]) -> pd.DataFrame:
    """Long table of `analysis.grad_cosine`: task, seed, method, dropout, step, layer, cosine (NaN kept)."""
    rows = []
    for r in records:
        gc = (r.get("analysis") or {}).get("grad_cosine") or {}
        for step, layers in gc.items():
            for layer, c in layers.items():
                rows.append(
                    {
                        "task": r["task"].split("/", 1)[-1],
                        "seed": r["seed"],
                        "method": r["method"],
                        "dropout": float(_hp(r, "dropout")),
                        "step": int(step),
                        "layer": layer,
                        "cosine": float("nan") if c is None else float(c),
                    }
                )
    cols = ["task", "seed", "method", "dropout", "step", "layer", "cosine"]
    df = pd.DataFrame(rows, columns=cols)
    if not df.empty:
        df["_o"] = df["method"].map(_order)
        df = (
            df.sort_values(["_o", "dropout", "task", "seed", "step", "layer"])
            .drop(columns="_o")
            .reset_index(drop=True)
        )
    return df


def collect_dropout(
    records: Sequence[str | os.PathLike],
    out_csv: str | os.PathLike,
    *,
    profile: str,
    plots_dir: str | os.PathLike | None = None,
) -> Path:
    """results/ablation_dropout.{csv,md} and <stem>_cosines.csv (+ plots): LoRA and Delta-LoRA, dropout 0 "
    "vs p."""
    recs = load_records(records, profile=profile)
    table, df = dropout_table(recs)
    cos = dropout_cosines(recs)
    out_csv = Path(out_csv)
    cos_csv = out_csv.with_name(f"{out_csv.stem}_cosines.csv")
    tasks = _tasks(df)
    metrics = _metric_names(df, tasks)
    plots: list[str] = []
    if plots_dir is not None:
        plots += _dropout_scores_plot(
            table, tasks, metrics, profile=profile, base=Path(plots_dir) / f"{out_csv.stem}_scores"
        )
        if not cos.empty:
            plots += _cosine_plot(cos, profile=profile, base=Path(plots_dir) / f"{out_csv.stem}_cosines")

    cols = [*tasks, "avg"]
    body = [
        [
            ROW_LABELS.get(r["method"], r["method"]),
            f"{r['dropout']:g}",
            *[fmt(r[c], r[f"{c}_std"]) for c in cols],
            str(r["n_seeds"]),
        ]
        for _, r in table.iterrows()
    ]
    lines = [
        f"# Ablation: dropout in the LoRA branch ({smoke.label(profile)})",
        "",
        *provenance_lines(recs, profile),
        "- Rows: method x LoRA-branch dropout p, read from each record's `config.hp.dropout`. "
        "Delta-LoRA with p > 0 is Algorithm 1 applied as written with dropout in the branch "
        "(`allow_dropout`); the paper's Delta-LoRA has p = 0.",
        "- Cells: median over seeds of each run's best-epoch score ± sample std over seeds; Avg: mean of "
        "the task medians ± std over seeds of the per-seed average.",
        _metrics_line(metrics),
        f"- Other hyper-parameters: {_fixed_hp(recs, ('r', 'alpha', 'update_ratio', 'start_step'))}",
        "",
        markdown_table(["Method", "dropout", *[_task_header(t) for t in tasks], "Avg", "seeds"], body),
        "",
        "## Why dropout matters: cos(dL/dW, dL/d(BA))",
        "",
        "Per adapted layer, the cosine between vec(dL/dW) = sum g x^T and vec(dL/d(BA)) = s sum g drop(x)^T, "
        "measured on the training step's own micro-batches at the recorded optimizer steps (t from 0; "
        "`deltalora.gradients`). It is 1 without dropout, which is what lets Delta-LoRA use delta(BA) as an "
        f"update of W. Every value is in `{cos_csv.name}`.",
        "",
    ]
    if cos.empty:
        lines.append("No record carries `analysis.grad_cosine`: the runs did not measure it.")
    else:
        summ = []
        for (method, p), sub in sorted(
            cos.groupby(["method", "dropout"]), key=lambda kv: (_order(kv[0][0]), kv[0][1])
        ):
            c = sub["cosine"].dropna()
            summ.append(
                [
                    ROW_LABELS.get(method, method),
                    f"{p:g}",
                    fmt(c.mean(), _std(c), digits=4),
                    fmt(c.min(), digits=4),
                    fmt(c.max(), digits=4),
                    ", ".join(str(s) for s in sorted(set(sub["step"]))),
                    str(len(c)),
                ]
            )
        lines += [
            markdown_table(["Method", "dropout", "mean cosine ± std", "min", "max", "steps", "values"], summ),
            "",
            "Mean, std, min and max are over layers, steps, tasks and seeds.",
        ]
    lines += _not_comparable(profile) + _plots_section(_rel(plots, out_csv))
    atomic_write_text(cos_csv, with_smoke_column(cos).to_csv(index=False))
    write_outputs(table, out_csv, "\n".join(lines))
    return out_csv


def _dropout_scores_plot(
    table: pd.DataFrame, tasks: Sequence[str], metrics: dict[str, str], *, profile: str, base: Path
) -> list[str]:
    from ..plots import _grid, save

    panels = [*tasks, "avg"]
    fig, axes = _grid(len(panels))
    methods = [m for m in LORA_METHODS if m in set(table["method"])]
    span = max(float(table["dropout"].max() - table["dropout"].min()), 0.1)
    for ax, col in zip(axes, panels, strict=False):
        for i, m in enumerate(methods):
            sub = table[table["method"] == m].sort_values("dropout")
            shift = (i - (len(methods) - 1) / 2) * 0.015 * span  # side by side, not on top of each other
            ax.errorbar(
                sub["dropout"] + shift,
                sub[col],
                yerr=sub[f"{col}_std"].fillna(0),
                marker="o",
                capsize=3,
                color=f"C{i}",
                label=ROW_LABELS.get(m, m),
            )
        ax.set_xlabel("LoRA-branch dropout p", fontsize=8)
        ylabel = f"{metrics[col]} (median over seeds)" if col != "avg" else "average over tasks"
        ax.set_ylabel(ylabel, fontsize=8)
        ax.set_title(f"{_task_header(col) if col != 'avg' else 'Average'} ({profile} profile)", fontsize=9)
    axes[0].legend(fontsize=7)
    fig.suptitle(f"Dropout ablation: best-epoch score ± std over seeds - {profile} profile", fontsize=10)
    fig.tight_layout()
    return save(fig, base)


def _cosine_plot(cos: pd.DataFrame, *, profile: str, base: Path) -> list[str]:
    from ..plots import _plt, save

    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 3.8))
    groups = sorted(cos.groupby(["method", "dropout"]), key=lambda kv: (_order(kv[0][0]), kv[0][1]))
    for i, ((method, p), sub) in enumerate(groups):
        by = sub.groupby("step")["cosine"]
        steps = np.array(sorted(by.groups))
        mean, lo, hi = by.mean().loc[steps], by.min().loc[steps], by.max().loc[steps]
        ax.plot(
            steps,
            mean,
            marker="o" if method == "lora" else "s",
            ls="-" if method == "lora" else "--",
            color=f"C{i}",
            label=_dropout_label(method, p),
            zorder=3 if method == "lora" else 2,
        )
        ax.fill_between(steps, lo, hi, color=f"C{i}", alpha=0.15)
    ax.axhline(1.0, color="k", lw=0.7, ls=":")
    ax.set_xlabel("optimizer step t (from 0)")
    ax.set_ylabel("cos(dL/dW, dL/d(BA))")
    tasks = ", ".join(sorted(set(cos["task"])))
    ax.set_title(
        f"Gradient cosine per layer: mean (line), min-max (band)\ntasks {tasks} - {profile} profile",
        fontsize=9,
    )
    ax.legend(fontsize=7)
    fig.tight_layout()
    return save(fig, base)
