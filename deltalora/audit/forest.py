"""The audit at a glance: one line per claim, its effect size with the confidence interval, and the verdict.

Claims that compare methods (3b, 4*, 5) carry a seed-paired comparison: the line shows its mean
difference and bootstrap CI (and the seeds' differences as dots). Where the claim's own row holds none
(4a sums up one comparison per baseline), the first pooled comparison among its detail rows is shown
(4a: against LoRA) and named. The other claims are checks of a measured quantity (rank, memory ratio,
gradient cosine, engine agreement) or per-task verdicts (4b): their line names that evidence instead
of a marker, because their units do not share the comparisons' axis.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from typing import Any

import numpy as np

from . import rules
from .claims import CLAIMS, AuditRow

VERDICT_COLOURS = {
    rules.SUPPORTED: "#1a7f37",
    rules.REFUTED: "#cf222e",
    rules.NOT_SUPPORTED: "#bc4c00",
    rules.INCONCLUSIVE: "#6e7781",
}


def _short(text: str, n: int) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= n else text[: n - 1] + "…"


def _comparison(head: AuditRow, rows: Sequence[AuditRow]) -> Any | None:
    """The claim row's paired comparison, else the first pooled one of its detail rows (None if neither)."""
    cmp = (head.data or {}).get("cmp")
    if cmp is not None:
        return cmp
    return next(
        (
            r.data["cmp"]
            for r in rows
            if r.claim_id == head.claim_id
            and r.level == "detail"
            and (r.data or {}).get("cmp") is not None
            and not r.data.get("task")
        ),
        None,
    )


def claims_forest(rows: Sequence[AuditRow], profile: str) -> Any | None:
    """A matplotlib figure with one line per claim-level audit row (None when there is none)."""
    from ..collect.plots import _plt

    heads = [r for r in rows if r.level == "claim"]
    if not heads:
        return None
    plt = _plt()
    n = len(heads)
    fig, ax = plt.subplots(figsize=(11.5, 0.62 * n + 1.9))
    cmps = [_comparison(r, rows) for r in heads]
    spans = [
        v for c in cmps if c is not None and c.n for v in (*c.diffs, *((c.ci.low, c.ci.high) if c.ci else ()))
    ]
    lo, hi = (min(spans), max(spans)) if spans else (-1.0, 1.0)
    pad = max(0.15 * (hi - lo), 0.5)
    lo, hi = min(lo - pad, -pad), max(hi + pad, pad)
    for i, (r, cmp) in enumerate(zip(heads, cmps, strict=True)):
        y = n - 1 - i
        colour = VERDICT_COLOURS.get(r.verdict, "k")
        if cmp is not None and cmp.n:
            d = cmp.diffs
            jitter = np.linspace(-0.14, 0.14, d.size) if d.size > 1 else 0
            ax.plot(d, np.full(d.size, y) + jitter, "o", ms=3, color="grey", alpha=0.6, zorder=2)
            if cmp.ci is not None:
                err = [[cmp.ci.estimate - cmp.ci.low], [cmp.ci.high - cmp.ci.estimate]]
                ax.errorbar(
                    [cmp.ci.estimate], [y], xerr=err, fmt="D", color=colour, ms=6, capsize=4, lw=1.6, zorder=3
                )
            ax.annotate(
                _short(f"{cmp.label}, n = {cmp.n}", 60),
                (lo, y + 0.3),
                fontsize=6.5,
                color="#444",
                va="center",
            )
        else:
            ax.annotate(
                "no single effect size: " + _short(r.evidence, 95),
                ((lo + hi) / 2, y),
                fontsize=7,
                color="#444",
                ha="center",
                va="center",
                style="italic",
            )
        ax.annotate(
            r.verdict,
            (1.01, y),
            xycoords=("axes fraction", "data"),
            fontsize=8.5,
            color=colour,
            fontweight="bold",
            va="center",
        )
    ax.axvline(0, color="k", lw=0.8)
    ax.set_xlim(lo, hi)
    ax.set_ylim(-0.7, n - 0.3)
    ax.set_yticks(range(n))
    ax.set_yticklabels(
        [
            textwrap.shorten(f"{r.claim_id}. {CLAIMS[r.claim_id].text}", 58, placeholder="…")
            for r in reversed(heads)
        ],
        fontsize=8,
    )
    ax.grid(axis="x", color="#ddd", lw=0.6)
    ax.set_xlabel(
        f"seed-paired difference (points of the task's main metric): mean and "
        f"{1 - rules.ALPHA:.0%} bootstrap CI; dots: seeds",
        fontsize=8,
    )
    ax.set_title(
        f"Audit: effect size and verdict per claim - {profile} profile"
        + (" (proxy scale, not the paper's numbers)" if profile != "paper" else ""),
        fontsize=10,
    )
    fig.tight_layout()
    return fig
