"""Ablation tables and plots from run records: dropout on/off, lambda x K, rank.

Each collector reads run records only (through `load_records`, which refuses records of another
profile), identifies every run's place in the ablation from its resolved configuration
(`config.hp`), and writes a CSV (full precision), a Markdown file beside it and a plot (PNG + PDF),
all atomically. Statistics follow `tables.py`: per task, the median over seeds of each run's score
at its best epoch with the sample standard deviation (ddof=1) beside it; the average is the mean of
the task medians, its spread the standard deviation over seeds of the per-seed mean across tasks.

Outputs (for ``out_csv = results/<stem>.csv`` and ``plots_dir = results/plots``):

* `collect_dropout`: ``<stem>.csv``, ``<stem>.md``, ``<stem>_cosines.csv`` and the plots
  ``<stem>_scores`` and ``<stem>_cosines``.
* `collect_lambda_k`: ``<stem>.csv``, ``<stem>.md`` and the heatmap ``<stem>_heatmap``.
* `collect_rank`: ``<stem>.csv``, ``<stem>.md`` and the plot ``<stem>``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .. import smoke
from ..records import RecordError, atomic_write_text
from .tables import (
    GLUE_ORDER,
    ROW_LABELS,
    _std,
    fmt,
    load_records,
    long_frame,
    markdown_table,
    provenance_lines,
    seed_stats,
    write_outputs,
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
        rows.append({"row": _dropout_label(method, p), "method": method, "dropout": p, **seed_stats(sub, tasks)})
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
    atomic_write_text(cos_csv, cos.to_csv(index=False))
    write_outputs(table, out_csv, "\n".join(lines))
    return out_csv


def _dropout_scores_plot(
    table: pd.DataFrame, tasks: Sequence[str], metrics: dict[str, str], *, profile: str, base: Path
) -> list[str]:
    from .plots import _grid, save

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
    from .plots import _plt, save

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


# --------------------------------------------------------------------------- lambda x K
def lambda_k_table(records: Sequence[dict[str, Any]]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(grid, long frame): one row per (lambda, K) with the mean over tasks and seeds and the seed spread.

    mean = mean over seeds of the per-seed mean across the grid's tasks (= the mean over tasks and seeds),
    std = sample std of those per-seed means, n = number of seeds; only seeds that ran every task count.
    """
    _only_methods(records, ("delta_lora",), "lambda x K")
    df = _frame(
        records,
        {
            "lambda": lambda r: float(_hp(r, "update_ratio")),
            "K": lambda r: int(_hp(r, "start_step")),
            "steps": lambda r: r.get("steps"),
        },
        lambda r: f"lambda={float(_hp(r, 'update_ratio')):g}, K={int(_hp(r, 'start_step'))}",
    )
    tasks = _tasks(df)
    rows = []
    for (lam, k), sub in df.groupby(["lambda", "K"], sort=True):
        per_seed = sub.pivot_table(index="seed", columns="task", values="value").reindex(columns=tasks)
        complete = per_seed.dropna()
        means = complete.mean(axis=1)
        steps = pd.to_numeric(sub["steps"], errors="coerce")
        rows.append(
            {
                "lambda": lam,
                "K": k,
                "mean": float(means.mean()) if len(means) else float("nan"),
                "std": _std(means),
                "n": int(len(means)),
                "n_runs": int(len(sub)),
                "incomplete_seeds": int(len(per_seed) - len(complete)),
                "steps": float(steps.median()) if steps.notna().any() else float("nan"),
                **{f"{t}_mean": float(sub[sub["task"] == t]["value"].mean()) for t in tasks},
            }
        )
    return pd.DataFrame(rows), df


def collect_lambda_k(
    records: Sequence[str | os.PathLike],
    out_csv: str | os.PathLike,
    *,
    profile: str,
    plots_dir: str | os.PathLike | None = None,
) -> Path:
    """results/ablation_lambda_k.{csv,md} (+ heatmap): Delta-LoRA over update ratio lambda x start step K."""
    recs = load_records(records, profile=profile)
    grid, df = lambda_k_table(recs)
    out_csv = Path(out_csv)
    tasks = _tasks(df)
    metrics = _metric_names(df, tasks)
    plots: list[str] = []
    if plots_dir is not None:
        plots += _heatmap(grid, tasks, profile=profile, base=Path(plots_dir) / f"{out_csv.stem}_heatmap")
    lams = sorted(set(grid["lambda"]))
    ks = sorted(set(grid["K"]))
    cell = {(r["lambda"], r["K"]): r for _, r in grid.iterrows()}
    body = [
        [
            f"{lam:g}",
            *[
                fmt(cell[(lam, k)]["mean"], cell[(lam, k)]["std"], digits=2)
                + f" (n={int(cell[(lam, k)]['n'])})"
                if (lam, k) in cell
                else "-"
                for k in ks
            ],
        ]
        for lam in lams
    ]
    steps = sorted({int(s) for s in grid["steps"] if not math.isnan(s)})
    lines = [
        f"# Ablation: Delta-LoRA update ratio lambda x start step K ({smoke.label(profile)})",
        "",
        *provenance_lines(recs, profile),
        "- Grid: lambda = `config.hp.update_ratio` (rows), K = `config.hp.start_step` (columns), optimizer "
        "steps from 0; W moves after step t when t > K.",
        f"- Run length: {', '.join(map(str, steps)) or '?'} optimizer steps; K is in the same unit"
        + ("." if profile == "paper" else " (this profile scales the paper's K = 500 to its short runs)."),
        f"- Cells: mean score over tasks ({', '.join(tasks)}) and seeds ± sample std over seeds of the "
        "per-seed mean across tasks; n = seeds that ran every task.",
        _metrics_line(metrics),
        f"- Other hyper-parameters: {_fixed_hp(recs, ('r', 'alpha', 'dropout', 'engine'))}",
        "- lambda = 0 never moves W: it is plain LoRA with these hyper-parameters, whatever K is.",
        "",
        markdown_table(["lambda \\ K", *[str(k) for k in ks]], body),
    ]
    if int(grid["incomplete_seeds"].sum()):
        lines += [
            "",
            f"- Warning: {int(grid['incomplete_seeds'].sum())} (cell, seed) pairs lack some task and are "
            "left out of the means (see `incomplete_seeds` in the CSV).",
        ]
    lines += _not_comparable(profile) + _plots_section(_rel(plots, out_csv))
    write_outputs(grid, out_csv, "\n".join(lines))
    return out_csv


def _heatmap(grid: pd.DataFrame, tasks: Sequence[str], *, profile: str, base: Path) -> list[str]:
    from .plots import _plt, save

    plt = _plt()
    lams = sorted(set(grid["lambda"]))
    ks = sorted(set(grid["K"]))
    mean = np.full((len(lams), len(ks)), np.nan)
    std = np.full_like(mean, np.nan)
    for _, r in grid.iterrows():
        i, j = lams.index(r["lambda"]), ks.index(r["K"])
        mean[i, j], std[i, j] = r["mean"], r["std"]
    fig, ax = plt.subplots(figsize=(1.5 * len(ks) + 2.5, 0.9 * len(lams) + 2))
    im = ax.imshow(np.ma.masked_invalid(mean), cmap="viridis", aspect="auto")
    finite = mean[np.isfinite(mean)]
    mid = (finite.min() + finite.max()) / 2 if finite.size else 0.0
    for i in range(len(lams)):
        for j in range(len(ks)):
            if np.isfinite(mean[i, j]):
                txt = f"{mean[i, j]:.2f}" + (f"\n± {std[i, j]:.2f}" if np.isfinite(std[i, j]) else "")
                ax.text(
                    j, i, txt, ha="center", va="center", fontsize=8, color="w" if mean[i, j] < mid else "k"
                )
    ax.set_xticks(range(len(ks)))
    ax.set_xticklabels([str(k) for k in ks])
    ax.set_yticks(range(len(lams)))
    ax.set_yticklabels([f"{lam:g}" for lam in lams])
    ax.set_xlabel("start step K (optimizer steps)")
    ax.set_ylabel("update ratio lambda")
    fig.colorbar(im, ax=ax, label="mean best-epoch score over tasks and seeds")
    ax.set_title(
        f"Delta-LoRA lambda x K: mean ± seed std\ntasks {', '.join(tasks)} - {profile} profile", fontsize=9
    )
    fig.tight_layout()
    return save(fig, base)


# --------------------------------------------------------------------------- rank
def _rank_values(rec: dict[str, Any], threshold: str) -> list[dict[str, Any]]:
    ur = (rec.get("analysis") or {}).get("update_rank")
    if not ur or not ur.get("layers"):
        raise RecordError(
            f"{rec['_path']}: no analysis.update_rank in the record; the rank ablation needs runs with "
            "analysis.update_rank: true"
        )
    out = []
    for name, e in ur["layers"].items():
        try:
            out.append(
                {
                    "layer": name,
                    "w": int(e["w"]["ranks"][threshold]),
                    "effective": int(e["effective"]["ranks"][threshold]),
                    "two_r": e.get("two_r"),
                }
            )
        except KeyError:
            raise RecordError(f"{rec['_path']}: layer {name} has no rank at threshold {threshold}") from None
    return out


def rank_table(
    records: Sequence[dict[str, Any]], *, threshold: str = RANK_THRESHOLD
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(table, long frame): rows = (method, r); scores as in `dropout_table`, plus the measured ranks.

    eff_rank / w_rank: median over (task, seed, layer) of the numerical rank of the effective update and of
    W_T - W_0 at the relative threshold; _min/_max beside them; two_r: 2r as recorded by the analysis.
    """
    _only_methods(records, LORA_METHODS, "rank")
    df = _frame(
        records,
        {"r": lambda r: int(_hp(r, "r"))},
        lambda r: f"{ROW_LABELS.get(r['method'], r['method'])}, r={int(_hp(r, 'r'))}",
    )
    ranks = pd.DataFrame(
        [
            {"method": r["method"], "r": int(_hp(r, "r")), **v}
            for r in records
            for v in _rank_values(r, threshold)
        ]
    )
    tasks = _tasks(df)
    rows = []
    keys = _keys(df, "r")
    for method, r in keys:
        sub = df[(df["method"] == method) & (df["r"] == r)]
        rk = ranks[(ranks["method"] == method) & (ranks["r"] == r)]
        two_r = sorted({int(v) for v in rk["two_r"].dropna()})
        if two_r and two_r != [2 * r]:
            raise RecordError(f"{method} r={r}: the analysis recorded 2r = {two_r}, not {2 * r}")
        rows.append(
            {
                "row": f"{ROW_LABELS.get(method, method)}, r={r}",
                "method": method,
                "r": r,
                **seed_stats(sub, tasks),
                "eff_rank": float(rk["effective"].median()),
                "eff_rank_min": int(rk["effective"].min()),
                "eff_rank_max": int(rk["effective"].max()),
                "w_rank": float(rk["w"].median()),
                "w_rank_min": int(rk["w"].min()),
                "w_rank_max": int(rk["w"].max()),
                "two_r": 2 * r,
                "n_layers": int(rk["layer"].nunique()),
                "rank_threshold": float(threshold),
            }
        )
    return pd.DataFrame(rows), df


def collect_rank(
    records: Sequence[str | os.PathLike],
    out_csv: str | os.PathLike,
    *,
    profile: str,
    plots_dir: str | os.PathLike | None = None,
    threshold: str = RANK_THRESHOLD,
) -> Path:
    """results/ablation_rank.{csv,md} (+ plot): LoRA and Delta-LoRA over r, scores and measured update "
    "rank."""
    recs = load_records(records, profile=profile)
    table, df = rank_table(recs, threshold=threshold)
    out_csv = Path(out_csv)
    tasks = _tasks(df)
    metrics = _metric_names(df, tasks)
    plots: list[str] = []
    if plots_dir is not None:
        plots += _rank_plot(
            table, tasks, metrics, profile=profile, threshold=threshold, base=Path(plots_dir) / out_csv.stem
        )
    cols = [*tasks, "avg"]

    def rng(r: pd.Series, k: str) -> str:
        return f"{r[k]:g} ({r[k + '_min']}-{r[k + '_max']})"

    body = [
        [
            ROW_LABELS.get(r["method"], r["method"]),
            str(r["r"]),
            *[fmt(r[c], r[f"{c}_std"]) for c in cols],
            rng(r, "eff_rank"),
            rng(r, "w_rank"),
            str(r["two_r"]),
            str(r["n_seeds"]),
        ]
        for _, r in table.iterrows()
    ]
    lines = [
        f"# Ablation: LoRA rank r, LoRA and Delta-LoRA ({smoke.label(profile)})",
        "",
        *provenance_lines(recs, profile),
        "- Rows: method x rank r (`config.hp.r`). The paper tried r = 8 only.",
        "- Score cells: median over seeds of each run's best-epoch score ± sample std over seeds; Avg: mean "
        "of the task medians ± std over seeds of the per-seed average.",
        _metrics_line(metrics),
        f"- Measured rank: numerical rank #{{i : sigma_i > {float(threshold):g} * sigma_1}} (relative to "
        "the largest singular value, SVD in float64 of the out x in update, `deltalora.analysis`) of the "
        "final update of each adapted layer; median over layers, tasks and seeds (min-max in brackets).",
        "  - effective: W_T - W_0 + (adapter contribution), the layer's whole change: <= r for LoRA, <= 2r "
        "for Delta-LoRA (telescoping, DESIGN.md section 2).",
        "  - W: W_T - W_0, Algorithm 1's change of the pretrained weight: 0 for LoRA, <= 2r for Delta-LoRA.",
        f"- Other hyper-parameters: {_fixed_hp(recs, ('alpha', 'dropout', 'update_ratio', 'start_step'))}",
        "",
        markdown_table(
            [
                "Method",
                "r",
                *[_task_header(t) for t in tasks],
                "Avg",
                "rank effective",
                "rank W",
                "2r",
                "seeds",
            ],
            body,
        ),
    ]
    lines += _not_comparable(profile) + _plots_section(_rel(plots, out_csv))
    write_outputs(table, out_csv, "\n".join(lines))
    return out_csv


def _rank_plot(
    table: pd.DataFrame,
    tasks: Sequence[str],
    metrics: dict[str, str],
    *,
    profile: str,
    threshold: str,
    base: Path,
) -> list[str]:
    from .plots import _grid, save

    panels = [*tasks, "avg", "rank"]
    fig, axes = _grid(len(panels))
    methods = [m for m in LORA_METHODS if m in set(table["method"])]
    rs = sorted(set(table["r"]))
    for ax, col in zip(axes, panels, strict=False):
        for i, m in enumerate(methods):
            sub = table[table["method"] == m].sort_values("r")
            label = ROW_LABELS.get(m, m)
            if col == "rank":
                ax.errorbar(
                    sub["r"],
                    sub["eff_rank"],
                    yerr=[sub["eff_rank"] - sub["eff_rank_min"], sub["eff_rank_max"] - sub["eff_rank"]],
                    marker="o",
                    capsize=3,
                    color=f"C{i}",
                    label=f"{label}: effective",
                )
                if m != "lora":
                    ax.plot(
                        sub["r"],
                        sub["w_rank"],
                        marker="s",
                        ls="--",
                        color=f"C{i}",
                        label=f"{label}: W_T - W_0",
                    )
            else:
                ax.errorbar(
                    sub["r"],
                    sub[col],
                    yerr=sub[f"{col}_std"].fillna(0),
                    marker="o",
                    capsize=3,
                    color=f"C{i}",
                    label=label,
                )
        ax.set_xscale("log", base=2)
        ax.set_xticks(rs)
        ax.set_xticklabels([str(r) for r in rs])
        ax.set_xlabel("LoRA rank r", fontsize=8)
        if col == "rank":
            ax.plot(rs, [2 * r for r in rs], color="k", lw=4, alpha=0.2, label="2r", zorder=1)
            ax.plot(rs, rs, color="k", lw=4, alpha=0.12, label="r", zorder=1)
            ax.set_yscale("log", base=2)
            ax.set_ylabel(f"numerical rank (sigma > {float(threshold):g} sigma_1)", fontsize=8)
            ax.set_title(f"Final update rank, median over layers ({profile})", fontsize=9)
            ax.legend(fontsize=6)
        else:
            ax.set_ylabel(
                f"{metrics[col]} (median over seeds)" if col != "avg" else "average over tasks", fontsize=8
            )
            ax.set_title(
                f"{_task_header(col) if col != 'avg' else 'Average'} ({profile} profile)", fontsize=9
            )
    axes[0].legend(fontsize=7)
    fig.suptitle(
        f"Rank ablation: best-epoch score ± std over seeds, and measured rank vs 2r - {profile} profile",
        fontsize=10,
    )
    fig.tight_layout()
    return save(fig, base)


__all__ = [
    "RANK_THRESHOLD",
    "collect_dropout",
    "collect_lambda_k",
    "collect_rank",
    "dropout_cosines",
    "dropout_table",
    "lambda_k_table",
    "rank_table",
]
