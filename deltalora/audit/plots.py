"""The audit's figures: one per report section where a plot says more than its table, plus the forest.

``make_plots`` draws them from the audit rows (the numbers each verdict was decided on, ``row.data``)
and saves each as PNG + PDF; ``report.build_audit`` links the PNGs into results/audit.md.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from . import rules
from .claims import AuditRow
from .evidence import Evidence, task_label


def _plt():
    from ..collect.plots import _plt as plt_

    return plt_()


def make_plots(rows: Sequence[AuditRow], ev: Evidence, plots_dir: Path) -> dict[str, list[str]]:
    """One figure per section where a plot says more than the table; PNG + PDF. Returns section -> paths."""
    from ..collect.plots import save

    out: dict[str, list[str]] = {}
    figs = (
        ("summary", _plot_forest),
        ("1", _plot_spectra),
        ("2", _plot_memory),
        ("3", _plot_cosines),
        ("3", _plot_dropout_scores),
        ("4", _plot_baselines),
        ("5", _plot_controls),
        ("6", _plot_engines),
    )
    for sec, fn in figs:
        fig_name = fn(rows, ev)
        if fig_name is None:
            continue
        fig, name = fig_name
        out.setdefault(sec, []).extend(save(fig, plots_dir / name))
    return out


def _plot_forest(rows, ev):
    from .forest import claims_forest

    fig = claims_forest(rows, ev.profile)
    return None if fig is None else (fig, "audit_forest")


def _plot_spectra(rows, ev):
    details = [r for r in rows if r.claim_id == "1a" and r.level == "detail" and r.data.get("spectra")]
    if not details:
        return None
    plt = _plt()
    n = len(details)
    cols = min(4, n)
    nrows = int(math.ceil(n / cols))
    fig, axes = plt.subplots(nrows, cols, figsize=(3.8 * cols, 3.2 * nrows), squeeze=False)
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    for ax, d in zip(axes.flat, details, strict=False):
        two_r = None
        for i, sp in enumerate(d.data["spectra"][:12]):
            sv = np.asarray(sp["sv"], dtype=float)
            if sv.size == 0 or sv[0] <= 0:
                continue
            ax.semilogy(
                np.arange(1, sv.size + 1),
                np.maximum(sv / sv[0], 1e-16),
                color="C0",
                lw=0.8,
                alpha=0.7,
                label="Delta-LoRA W_T - W_0" if i == 0 else None,
            )
            two_r = sp.get("two_r")
        for i, sp in enumerate((d.data.get("ft_spectra") or [])[:6]):
            sv = np.asarray(sp["sv"], dtype=float)
            if sv.size and sv[0] > 0:
                ax.semilogy(
                    np.arange(1, sv.size + 1),
                    np.maximum(sv / sv[0], 1e-16),
                    color="C1",
                    lw=0.8,
                    ls="--",
                    alpha=0.7,
                    label="full FT W_T - W_0" if i == 0 else None,
                )
        if two_r:
            ax.axvline(two_r, color="k", lw=0.8, label=f"2r = {two_r}")
        for t in (1e-2, 1e-3, 1e-4, 1e-6):
            ax.axhline(t, color="grey", lw=0.5, ls=":" if t != 1e-3 else "-")
        ax.set_xlabel("singular value index i")
        ax.set_ylabel("sigma_i / sigma_1")
        ax.set_title(f"{task_label(d.data['task'])}: spectrum of W_T - W_0 ({ev.profile})", fontsize=9)
        ax.legend(fontsize=6)
    fig.suptitle(
        "Singular values of the W update vs 2r (grey: thresholds, solid 1e-3 headline) - "
        f"{ev.profile} profile",
        fontsize=10,
    )
    fig.tight_layout()
    return fig, "audit_rank_spectra"


def _plot_memory(rows, ev):
    head = next((r for r in rows if r.claim_id == "2" and r.level == "claim"), None)
    table = (head.data or {}).get("table") if head else None
    if not table:
        return None
    plt = _plt()
    groups = list(dict.fromkeys((t["model"], t["dtype"]) for t in table))
    configs = ["full_ft", "inplace", "folded", "naive"]
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.6))
    width = 0.8 / len(configs)
    for k, (col, title) in enumerate(
        (("peak_ratio", "peak memory / LoRA"), ("step_ratio", "median step time / LoRA"))
    ):
        ax = axes[k]
        for i, c in enumerate(configs):
            vals = [
                next((t[col] for t in table if (t["model"], t["dtype"]) == g and t["config"] == c), None)
                for g in groups
            ]
            ax.bar(
                [g + i * width for g in range(len(groups))],
                [v if v is not None else 0 for v in vals],
                width=width,
                label=c,
                color=f"C{i}",
            )
        ax.axhline(1.0, color="k", lw=0.8)
        ax.axhline(rules.COMPARABLE_RATIO, color="k", lw=0.8, ls="--")
        ax.set_xticks([g + width * (len(configs) - 1) / 2 for g in range(len(groups))])
        ax.set_xticklabels([f"{m}\n{d}" for m, d in groups], fontsize=8)
        ax.set_ylabel(title)
        ax.set_title(f"{title} ({ev.profile} profile)", fontsize=9)
    axes[0].legend(fontsize=7)
    fig.suptitle(
        f"Claim 2: cost relative to LoRA (dashed: 'comparable' = {rules.COMPARABLE_RATIO}x) - "
        f"{ev.profile} profile",
        fontsize=10,
    )
    fig.tight_layout()
    return fig, "audit_memory"


def _plot_cosines(rows, ev):
    if ev.cosines is None:
        return None
    plt = _plt()
    cos = ev.cosines
    groups = sorted({(str(m), float(p)) for m, p in zip(cos["method"], cos["dropout"], strict=True)})
    data = [
        np.maximum(
            1 - cos[(cos["method"].astype(str) == m) & (cos["dropout"] == p)]["cosine"].to_numpy(), 1e-12
        )
        for m, p in groups
    ]
    fig, ax = plt.subplots(figsize=(1.6 * len(groups) + 2.5, 3.4))
    ax.boxplot(data)
    ax.set_xticks(range(1, len(groups) + 1))
    ax.set_xticklabels([f"{m}\ndropout {p:g}" for m, p in groups], fontsize=8)
    ax.set_yscale("log")
    ax.axhline(
        rules.COSINE_EQUAL_EPS, color="k", lw=0.8, ls=":", label=f"1 - cos = {rules.COSINE_EQUAL_EPS:g}"
    )
    ax.axhline(
        rules.COSINE_BROKEN_DELTA,
        color="k",
        lw=0.8,
        ls="--",
        label=f"1 - cos = {rules.COSINE_BROKEN_DELTA:g}",
    )
    ax.set_ylabel("1 - cosine(dL/dW, dL/d(BA))")
    ax.set_title(f"Claim 3a: gradient equivalence with/without dropout ({ev.profile} profile)", fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig, "audit_dropout_cosines"


def _forest(ax, entries, title: str, xlabel: str) -> None:
    """entries: (label, PairedComparison); per-seed differences as dots, mean and CI as a bar."""
    for i, (_label, cmp) in enumerate(entries):
        y = len(entries) - 1 - i
        d = cmp.diffs
        ax.plot(
            d,
            np.full(d.size, y) + np.linspace(-0.12, 0.12, d.size) if d.size > 1 else np.full(d.size, y),
            "o",
            ms=3,
            color="grey",
            alpha=0.7,
        )
        if cmp.ci is not None:
            ax.errorbar(
                [cmp.ci.estimate],
                [y],
                xerr=[[cmp.ci.estimate - cmp.ci.low], [cmp.ci.high - cmp.ci.estimate]],
                fmt="s",
                color="C0" if cmp.ci.low > 0 else "C3" if cmp.ci.high < 0 else "k",
                ms=5,
                capsize=3,
            )
    ax.axvline(0, color="k", lw=0.8)
    ax.set_yticks(range(len(entries)))
    ax.set_yticklabels([e[0] for e in reversed(entries)], fontsize=8)
    ax.set_xlabel(xlabel, fontsize=8)
    ax.set_title(title, fontsize=9)


def _forest_figure(panels, suptitle: str, name: str):
    panels = [(t, e, x) for t, e, x in panels if e]
    if not panels:
        return None
    plt = _plt()
    h = max(len(e) for _, e, _ in panels)
    fig, axes = plt.subplots(1, len(panels), figsize=(4.6 * len(panels), 0.45 * h + 1.8), squeeze=False)
    for ax, (title, entries, xlabel) in zip(axes[0], panels, strict=True):
        _forest(ax, entries, title, xlabel)
    fig.suptitle(suptitle, fontsize=10)
    fig.tight_layout()
    return fig, name


def _entries(rows, claim_id: str, pred) -> list[tuple[str, Any]]:
    out = []
    for r in rows:
        if r.claim_id == claim_id and pred(r) and r.data.get("cmp") is not None and r.data["cmp"].n:
            label = task_label(r.data["task"]) if r.data.get("task") else "pooled (all tasks)"
            metric = f" ({r.data['metric']})" if r.data.get("metric") else ""
            out.append((label + metric, r.data["cmp"]))
    return out


def _plot_baselines(rows, ev):
    panels = []
    for base, label in (("lora", "LoRA"), ("adalora", "AdaLoRA"), ("dylora", "DyLoRA")):
        e = _entries(rows, "4a", lambda r, b=base: r.data.get("baseline") == b and r.level == "detail")
        e = [x for x in e if not x[0].startswith("pooled")] + [x for x in e if x[0].startswith("pooled")]
        panels.append(
            (
                f"Delta-LoRA - {label} ({ev.profile})",
                e,
                "paired difference, main metric of each task (points)",
            )
        )
    return _forest_figure(
        panels,
        "Claim 4: seed-paired differences per task, mean with "
        f"{1 - rules.ALPHA:.0%} bootstrap "
        f"CI (dots: seeds) - {ev.profile} profile",
        "audit_baselines",
    )


def _plot_controls(rows, ev):
    e = _entries(rows, "5", lambda r: not r.data.get("matched_scale"))
    e = [x for x in e if not x[0].startswith("pooled")] + [x for x in e if x[0].startswith("pooled")]
    return _forest_figure(
        [(f"Delta-LoRA - best LoRA control ({ev.profile})", e, "paired difference, main metric (points)")],
        f"Claim 5: Delta-LoRA against the best of the reviewers' controls - {ev.profile} profile",
        "audit_controls",
    )


def _plot_dropout_scores(rows, ev):
    e = _entries(rows, "3b", lambda r: True)
    e = [x for x in e if not x[0].startswith("pooled")] + [x for x in e if x[0].startswith("pooled")]
    return _forest_figure(
        [(f"Delta-LoRA: no dropout - dropout ({ev.profile})", e, "paired difference (points)")],
        f"Claim 3b: score without minus with dropout - {ev.profile} profile",
        "audit_dropout_scores",
    )


def _plot_engines(rows, ev):
    head = next((r for r in rows if r.claim_id == "6a" and r.level == "claim"), None)
    pairs = (head.data or {}).get("pairs") if head else None
    if not pairs:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5.5, 3.4))
    labels = [f"{task_label(p['task'])} s{p['seed']}" for p in pairs]
    diffs = [abs(p["folded"] - p["inplace"]) for p in pairs]
    ax.bar(range(len(pairs)), diffs, color="C0", label="|folded - inplace|")
    ax.plot(range(len(pairs)), [p["tol"] for p in pairs], "k_", ms=14, label="tolerance 100/n_val")
    ax.set_xticks(range(len(pairs)))
    ax.set_xticklabels(labels, rotation=60, fontsize=7)
    ax.set_ylabel("|metric difference| (points)")
    ax.set_title(f"Claim 6a: folded vs inplace engine, main metric ({ev.profile} profile)", fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig, "audit_engines"
