"""Plots from run records (matplotlib, PNG + PDF). Titles and axes always say task, metric and profile."""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .. import smoke
from ..atomic import atomic_path
from .tables import ROW_LABELS


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


# Fixed file metadata: matplotlib stamps a PDF with its creation time (and both formats with its
# version), so two builds from the same records would differ; when and with what a plot was built is
# in build_info.json (deltalora/collect/build_info.py).
METADATA = {
    "png": {"Software": "deltalora (matplotlib)"},
    "pdf": {"Creator": "deltalora (matplotlib)", "Producer": "deltalora (matplotlib)", "CreationDate": None},
}


def save(fig: Any, base: str | os.PathLike) -> list[str]:
    """Write base.png and base.pdf atomically, byte-identical from build to build; return their paths."""
    base = Path(base)
    base.parent.mkdir(parents=True, exist_ok=True)
    paths = []
    for ext in ("png", "pdf"):
        final = base.with_suffix(f".{ext}")
        smoke.mark_figure(fig)
        with atomic_path(final, suffix=f".{ext}") as tmp:
            fig.savefig(tmp, dpi=130, bbox_inches="tight", metadata=METADATA[ext])
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


def scores_plot(
    records: Sequence[dict[str, Any]],
    rows: Sequence[str],
    tasks: Sequence[str],
    *,
    profile: str,
    base: str | os.PathLike,
    family: str = "GLUE",
    metric_of=None,
    value_of=None,
) -> list[str]:
    """Per-task scores of every seed (dots) and the median (bar across) for each row."""
    from .tables import score

    value_of = value_of or (lambda r: score(r))
    metric_of = metric_of or (lambda t: next(r["metric"] for r in records if r["task"].split("/")[-1] == t))
    fig, axes = _grid(len(tasks))
    rng = np.random.default_rng(0)
    for ax, task in zip(axes, tasks, strict=False):
        for i, row in enumerate(rows):
            vals = [
                value_of(r)
                for r in records
                if r["task"].split("/")[-1] == task and (r.get("row") or r["method"]) == row
            ]
            if not vals:
                continue
            ax.hlines(np.median(vals), i - 0.32, i + 0.32, color=f"C{i % 10}", lw=2.5)
            ax.scatter(i + rng.uniform(-0.15, 0.15, len(vals)), vals, color=f"C{i % 10}", s=14, zorder=3)
        ax.set_xticks(range(len(rows)))
        ax.set_xticklabels(
            [ROW_LABELS.get(r, r).split(" (")[0] for r in rows], rotation=60, ha="right", fontsize=7
        )
        ax.set_title(f"{task.upper()} ({profile} profile)", fontsize=9)
        ax.set_ylabel(f"{metric_of(task)} (x100)", fontsize=8)
        vals_all = [value_of(r) for r in records if r["task"].split("/")[-1] == task]
        if vals_all:
            lo, hi = np.nanmin(vals_all), np.nanmax(vals_all)
            pad = max((hi - lo) * 0.25, 1.0)
            ax.set_ylim(lo - pad, hi + pad)
    fig.suptitle(
        f"{family}: score per seed (dots) and median (line), best epoch - {profile} profile", fontsize=10
    )
    fig.tight_layout()
    return save(fig, base)


def switch_steps(records: Sequence[dict[str, Any]]) -> list[int]:
    """The distinct Delta-LoRA start steps K of these records (from the record's delta_lora summary)."""
    return sorted({int(r["delta_lora"]["start_step"]) for r in records if r.get("delta_lora")})


def training_curves_plot(
    records: Sequence[dict[str, Any]],
    rows: Sequence[str],
    tasks: Sequence[str],
    *,
    profile: str,
    base: str | os.PathLike,
    family: str = "GLUE",
) -> list[str]:
    """Training loss against optimizer step: mean over seeds (line) and the seeds' range (band), per row.

    A dashed vertical line marks K for the Delta-LoRA rows: the x axis counts completed optimizer steps
    (the Trainer's global step), and Delta-LoRA writes W after every step past K+1 (steps counted from
    0), so every step to the right of the line at K+1 updates W; to its left Delta-LoRA trains as LoRA.
    """
    fig, axes = _grid(len(tasks))
    for ax, task in zip(axes, tasks, strict=False):
        task_recs = [r for r in records if r["task"].split("/")[-1] == task]
        for i, row in enumerate(rows):
            curves: dict[int, list[float]] = defaultdict(list)
            for r in task_recs:
                if (r.get("row") or r["method"]) == row:
                    for pt in r.get("train_curve", []):
                        curves[pt["step"]].append(pt["loss"])
            if curves:
                steps = sorted(curves)
                color = f"C{i % 10}"
                n = max(len(v) for v in curves.values())
                ax.plot(
                    steps,
                    [np.mean(curves[s]) for s in steps],
                    color=color,
                    lw=1.2,
                    marker="o",
                    ms=2.5,
                    label=f"{ROW_LABELS.get(row, row)} ({n} seeds)",
                )
                if n > 1:
                    ax.fill_between(
                        steps,
                        [min(curves[s]) for s in steps],
                        [max(curves[s]) for s in steps],
                        color=color,
                        alpha=0.18,
                        lw=0,
                    )
        for k in switch_steps(task_recs):
            ax.axvline(k + 1, color="k", ls="--", lw=0.9)
            ax.annotate(
                f"K={k}: Delta-LoRA\nwrites W from here",
                xy=(k + 1, 1.0),
                xycoords=("data", "axes fraction"),
                xytext=(3, -3),
                textcoords="offset points",
                ha="left",
                va="top",
                fontsize=6.5,
            )
        ax.set_title(f"{task.upper()} ({profile} profile)", fontsize=9)
        ax.set_xlabel("optimizer step", fontsize=8)
        ax.set_ylabel("training loss: mean, band = seed range", fontsize=8)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(
        handles,
        labels,
        loc="lower center",
        ncol=min(4, max(1, len(labels))),
        fontsize=7,
        bbox_to_anchor=(0.5, -0.04),
    )
    fig.suptitle(
        f"{family}: training loss (line: mean over seeds, band: min-max over seeds; "
        f"dashed: Delta-LoRA's "
        f"K) - {profile} profile",
        fontsize=10,
    )
    fig.tight_layout()
    return save(fig, base)
