"""The lambda x K ablation of Delta-LoRA: a grid of scores and its heatmap."""

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ... import smoke
from ..tables import (
    _std,
    fmt,
    load_records,
    markdown_table,
    provenance_lines,
    write_outputs,
)
from .common import (
    _fixed_hp,
    _frame,
    _hp,
    _metric_names,
    _metrics_line,
    _not_comparable,
    _only_methods,
    _plots_section,
    _rel,
    _tasks,
)


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
        plots += _heatmap(
            grid, tasks, profile=profile, base=Path(plots_dir) / f"{out_csv.stem}_heatmap", metrics=metrics
        )
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


def colorbar_label(metrics: dict[str, str]) -> str:
    """The heatmap's colour-bar label names the metric: one name, or each task's where they differ."""
    names = sorted(set(metrics.values()))
    if len(names) == 1:
        return f"mean best-epoch {names[0]} over tasks and seeds"
    return "mean over tasks and seeds of the best-epoch " + ", ".join(f"{t} {m}" for t, m in metrics.items())


def _heatmap(
    grid: pd.DataFrame, tasks: Sequence[str], *, profile: str, base: Path, metrics: dict[str, str]
) -> list[str]:
    from ..plots import _plt, save

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
    fig.colorbar(im, ax=ax, label=colorbar_label(metrics))
    ax.set_title(
        f"Delta-LoRA lambda x K: mean ± seed std\ntasks {', '.join(tasks)} - {profile} profile", fontsize=9
    )
    fig.tight_layout()
    return save(fig, base)
