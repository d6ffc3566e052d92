"""Plots from run records (matplotlib, PNG + PDF). Titles and axes always say task, metric and profile."""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .. import smoke
from .tables import ROW_LABELS


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save(fig: Any, base: str | os.PathLike) -> list[str]:
    """Write base.png and base.pdf atomically; return their paths."""
    base = Path(base)
    base.parent.mkdir(parents=True, exist_ok=True)
    paths = []
    for ext in ("png", "pdf"):
        final = base.with_suffix(f".{ext}")
        tmp = final.with_name(f".{final.stem}.tmp.{ext}")
        smoke.mark_figure(fig)
        fig.savefig(tmp, dpi=130, bbox_inches="tight")
        os.replace(tmp, final)
        paths.append(str(final))
    _plt().close(fig)
    return paths


def _grid(n: int):
    plt = _plt()
    cols = min(4, n)
    rows = int(np.ceil(n / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(3.6 * cols, 3.1 * rows), squeeze=False)
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    return fig, list(axes.flat)


def scores_plot(records: Sequence[dict[str, Any]], rows: Sequence[str], tasks: Sequence[str], *, profile: str,
                base: str | os.PathLike, family: str = "GLUE", metric_of=None, value_of=None) -> list[str]:
    """Per-task scores of every seed (dots) and the median (bar across) for each row."""
    from .tables import score

    value_of = value_of or (lambda r: score(r))
    metric_of = metric_of or (lambda t: next(r["metric"] for r in records if r["task"].split("/")[-1] == t))
    fig, axes = _grid(len(tasks))
    rng = np.random.default_rng(0)
    for ax, task in zip(axes, tasks):
        for i, row in enumerate(rows):
            vals = [value_of(r) for r in records if r["task"].split("/")[-1] == task and (r.get("row") or r["method"]) == row]
            if not vals:
                continue
            ax.hlines(np.median(vals), i - 0.32, i + 0.32, color=f"C{i % 10}", lw=2.5)
            ax.scatter(i + rng.uniform(-0.15, 0.15, len(vals)), vals, color=f"C{i % 10}", s=14, zorder=3)
        ax.set_xticks(range(len(rows)))
        ax.set_xticklabels([ROW_LABELS.get(r, r).split(" (")[0] for r in rows], rotation=60, ha="right", fontsize=7)
        ax.set_title(f"{task.upper()} ({profile} profile)", fontsize=9)
        ax.set_ylabel(f"{metric_of(task)} (x100)", fontsize=8)
        vals_all = [value_of(r) for r in records if r["task"].split("/")[-1] == task]
        if vals_all:
            lo, hi = np.nanmin(vals_all), np.nanmax(vals_all)
            pad = max((hi - lo) * 0.25, 1.0)
            ax.set_ylim(lo - pad, hi + pad)
    fig.suptitle(f"{family}: score per seed (dots) and median (line), best epoch - {profile} profile", fontsize=10)
    fig.tight_layout()
    return save(fig, base)


def training_curves_plot(records: Sequence[dict[str, Any]], rows: Sequence[str], tasks: Sequence[str], *,
                         profile: str, base: str | os.PathLike, family: str = "GLUE") -> list[str]:
    """Training loss against optimizer step, mean over seeds, one line per row."""
    fig, axes = _grid(len(tasks))
    for ax, task in zip(axes, tasks):
        for i, row in enumerate(rows):
            curves: dict[int, list[float]] = defaultdict(list)
            for r in records:
                if r["task"].split("/")[-1] == task and (r.get("row") or r["method"]) == row:
                    for pt in r.get("train_curve", []):
                        curves[pt["step"]].append(pt["loss"])
            if curves:
                steps = sorted(curves)
                ax.plot(steps, [np.mean(curves[s]) for s in steps], color=f"C{i % 10}", lw=1.2,
                        label=ROW_LABELS.get(row, row))
        ax.set_title(f"{task.upper()} ({profile} profile)", fontsize=9)
        ax.set_xlabel("optimizer step", fontsize=8)
        ax.set_ylabel("training loss (mean over seeds)", fontsize=8)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=min(4, len(labels)), fontsize=7, bbox_to_anchor=(0.5, -0.04))
    fig.suptitle(f"{family}: training curves - {profile} profile", fontsize=10)
    fig.tight_layout()
    return save(fig, base)
