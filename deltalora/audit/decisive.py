"""The decisive proxy-scale study: claims 8 and 5 (equal tuning), enough seeds and converged runs.

Why: the default audit runs 3 seeds of 32 optimizer steps, which no exact test can decide and which
stop while the loss still falls (a larger effective learning rate then wins whatever the method). This
study (``results/audit_decisive.md`` / ``.csv``, workflow/rules/decisive.smk) trains a subset of GLUE
proxies with the seed count the power analysis asks for and enough steps for the loss to flatten, and
tests

* claim 8, claim 4a at equal tuning (:mod:`deltalora.audit.claims.equal_tuning`): Delta-LoRA at its
  dev-selected learning rate (``delta_lora`` and its ``delta_lora_lr*`` rows) against LoRA at its
  dev-selected learning rate (``lora`` and ``lora_lr*``), compared on validation;
* claim 5: against the dev-selected best LoRA control, and at matched effective scale
  (:func:`deltalora.audit.claims.lr_objection.assess_lr_objection`).

**Convergence criterion** (checked per run and shown): fit a least-squares line to the logged training
loss over the last quarter of the run's steps. The run is **still falling** (not converged) when that
line falls over the quarter by at least ``max_drop`` (default 5%) of the first logged loss (the loss
the run started from: per-step losses of small batches approach 0, so the quarter's own mean is no
stable scale) **and** the fall is distinguishable from the per-step noise: the slope is negative at
one-sided p < 0.05 (t-test of the regression slope, ``scipy.stats.linregress``). Otherwise it has
converged. Why the second condition: a batch of 8 with one of the proxy's flipped training labels
(3%) costs a few nats, so per-step losses jump between ~0.01 and ~0.4 after the fit; a line through 32
such points can "fall" 10% by chance, which says nothing about whether training still improves. Log
every step (``train.logging_steps=1``) so the quarter has enough points. Fewer than 4 logged points in
the quarter: not checkable (set ``train.logging_steps`` lower).

Usage: ``python -m deltalora.audit.decisive RECORDS... --profile default --out results/audit_decisive.md
--csv results/audit_decisive.csv`` (``--records-from FILE`` reads the paths from a file).
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from .. import smoke
from ..collect import build_info
from ..collect.tables import markdown_table
from ..records import atomic_write_text, read_record
from . import power
from .claims import AuditRow, Settings, assess_equal_tuning, assess_lr_objection
from .evidence import Evidence, task_label
from .report import CSV_COLUMNS, power_cells

MAX_DROP = 0.05
TAIL = 0.25


@dataclass(frozen=True)
class Convergence:
    """The last-quarter loss trend of one run."""

    task: str
    row: str
    seed: Any
    steps: int
    points: int  # logged losses in the last quarter
    rel_drop: float | None  # fall of the fitted line over the quarter / first logged loss
    p_falling: float | None  # one-sided p of a negative slope (linregress t-test)
    converged: bool | None  # None: not checkable


def convergence(
    rec: dict[str, Any], *, tail: float = TAIL, max_drop: float = MAX_DROP, alpha: float = 0.05
) -> Convergence:
    """Check the convergence criterion on a record's ``train_curve``."""
    curve = _loss_curve(rec)
    steps = int(rec.get("steps") or (curve[-1][0] if curve else 0))
    return _check_curve(
        curve,
        steps,
        dict(task=rec["task"], row=rec.get("row") or rec["method"], seed=rec["seed"]),
        tail=tail,
        max_drop=max_drop,
        alpha=alpha,
    )


def _loss_curve(rec: dict[str, Any]) -> list[tuple[int, float]]:
    return [
        (int(p["step"]), float(p["loss"]))
        for p in rec.get("train_curve") or []
        if p.get("loss") is not None and math.isfinite(float(p["loss"]))
    ]


def _check_curve(
    curve: Sequence[tuple[int, float]],
    steps: int,
    ids: dict[str, Any],
    *,
    tail: float,
    max_drop: float,
    alpha: float,
) -> Convergence:
    from scipy.stats import linregress

    start = steps * (1 - tail)
    last = [(s, v) for s, v in curve if s > start]
    base = dict(**ids, steps=steps, points=len(last))
    if len(last) < 4 or len({s for s, _ in last}) < 2:
        return Convergence(**base, rel_drop=None, p_falling=None, converged=None)
    fit = linregress([s for s, _ in last], [v for _, v in last])
    first = curve[0][1]
    span = last[-1][0] - last[0][0]
    drop = -fit.slope * span / first if first > 0 else math.inf
    p_two = float(fit.pvalue) if math.isfinite(fit.pvalue) else 1.0
    p_falling = p_two / 2 if fit.slope < 0 else 1 - p_two / 2
    falling = drop >= max_drop and p_falling < alpha
    return Convergence(**base, rel_drop=float(drop), p_falling=p_falling, converged=not falling)


def row_convergence(
    records: Sequence[dict[str, Any]], *, tail: float = TAIL, max_drop: float = MAX_DROP, alpha: float = 0.05
) -> list[Convergence]:
    """The same criterion on each (task, row)'s training loss averaged over its seeds, step by step.

    Why: averaging n seeds cuts the per-step noise by sqrt(n), so a fall that one noisy run cannot show
    is visible in the mean curve; it is the stronger check that the row as a whole has flattened.
    """
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in records:
        groups.setdefault((r["task"], r.get("row") or r["method"]), []).append(r)
    out = []
    for (task, row), recs in sorted(groups.items()):
        curves = [dict(_loss_curve(r)) for r in recs]
        common = sorted(set.intersection(*(set(c) for c in curves))) if curves else []
        mean = [(s, statistics.fmean(c[s] for c in curves)) for s in common]
        steps = int(statistics.median([int(r.get("steps") or 0) for r in recs]))
        out.append(
            _check_curve(
                mean,
                steps,
                dict(task=task, row=row, seed=f"mean of {len(recs)}"),
                tail=tail,
                max_drop=max_drop,
                alpha=alpha,
            )
        )
    return out


def seconds_per_step(records: Sequence[dict[str, Any]]) -> float | None:
    """Median measured training seconds per optimizer step (train_runtime / steps) over the records."""
    v = [
        r["train_summary"]["train_runtime"] / r["steps"]
        for r in records
        if r.get("steps") and (r.get("train_summary") or {}).get("train_runtime")
    ]
    return float(statistics.median(v)) if v else None


def budget_line(rows: Sequence[AuditRow], records: Sequence[dict[str, Any]]) -> str:
    """What budget would decide the undecided rows, from the seeds the power analysis asks for."""
    sps = seconds_per_step(records)
    need = [
        r.seeds_needed
        for r in rows
        if r.level == "claim" and r.verdict in power.UNDECIDED and r.seeds_needed is not None
    ]
    if not need or sps is None:
        return ""
    n_runs_per_seed = len({(r["task"], r.get("row")) for r in records})
    steps = statistics.median([r["steps"] for r in records if r.get("steps")])
    seeds = max(need)
    hours = seeds * n_runs_per_seed * steps * sps / 3600
    return (
        f"- Budget that would decide (1-point effects, 80% power): {seeds} seeds per task x "
        f"{n_runs_per_seed} (task, row) runs x {steps:g} steps x {sps:.2f} s/step measured here = "
        f"**{hours:.1f} CPU-hours** of training (one process; divide by the parallel jobs)"
    )


def _convergence_table(conv: Sequence[Convergence]) -> str:
    return markdown_table(
        [
            "task",
            "row",
            "seed",
            "steps",
            "points in last quarter",
            "loss fall over last quarter",
            "p (slope < 0)",
            "converged",
        ],
        [
            [
                task_label(c.task),
                c.row,
                str(c.seed),
                str(c.steps),
                str(c.points),
                "-" if c.rel_drop is None else f"{c.rel_drop:.1%}",
                "-" if c.p_falling is None else f"{c.p_falling:.3g}",
                {True: "yes", False: "**no**", None: "not checkable"}[c.converged],
            ]
            for c in conv
        ],
    )


def render(
    rows: Sequence[AuditRow],
    conv: Sequence[Convergence],
    ev: Evidence,
    *,
    max_drop: float,
    cmd: str,
    seed_plan: str | None = None,
    row_conv: Sequence[Convergence] | None = None,
) -> str:
    seeds = sorted(
        {r["seed"] for r in ev.records}, key=lambda x: (0, x, "") if isinstance(x, int) else (1, 0, str(x))
    )
    tasks = ev.tasks()
    wall = sum(float((r.get("provenance") or {}).get("wall_time_s") or 0) for r in ev.records)
    n_conv = sum(c.converged is True for c in conv)
    n_unk = sum(c.converged is None for c in conv)
    lines = [
        f"# Decisive study: claims 8 and 5, against LoRA at equal tuning ({smoke.label(ev.profile)})",
        "",
        f"- {len(ev.records)} runs: tasks {', '.join(task_label(t) for t in tasks)}; rows "
        f"{', '.join(ev.rows())}; seeds {', '.join(map(str, seeds))} ({len(seeds)})",
        *([f"- Seeds: {seed_plan}"] if seed_plan else []),
        f"- Training wall time summed over runs: {wall:.0f} s; measured "
        f"{seconds_per_step(ev.records) or 0:.3f} s per "
        "optimizer step (median)",
        "- Selection on dev (carved from train), comparison on validation (docs/dev_split.md).",
        f"- Convergence: least-squares line through the logged training loss over the last {TAIL:.0%} of the "
        f"steps; still falling (not converged) if it falls by at least {max_drop:.0%} of the first "
        "logged loss "
        "and its slope is negative at one-sided p < 0.05 (a fall the per-step noise cannot explain); else "
        f"converged. {n_conv}/{len(conv)} runs converged, {n_unk} not checkable"
        + (
            f"; {sum(c.converged is True for c in row_conv)}/{len(row_conv)} rows converged on the loss "
            "averaged "
            "over their seeds."
            if row_conv
            else "."
        ),
        f"- Regenerate: `{cmd}` (when it was built, and from which commit: build_info.json beside it)",
    ]
    b = budget_line(rows, ev.records)
    if b:
        lines.append(b)
    lines += [
        "",
        "## Verdicts",
        "",
        markdown_table(
            ["id", "Test", "Verdict", "Evidence", "MDE (points)", "Seeds for 1 pt"],
            [
                [
                    r.id,
                    r.test,
                    f"**{r.verdict}**" if r.level == "claim" else r.verdict,
                    r.evidence,
                    *power_cells(r),
                ]
                for r in rows
            ],
        ),
        "",
        "## Convergence per row (training loss averaged over the seeds)",
        "",
        _convergence_table(row_conv or []),
        "",
        "## Convergence per run",
        "",
        _convergence_table(conv),
    ]
    if ev.profile != "paper":
        lines += [
            "",
            "> Proxy-scale evidence (small models on generated proxy data), not a verdict on the paper.",
        ]
    return "\n".join(lines) + "\n"


def build(
    paths: Sequence[str],
    *,
    profile: str,
    out: Path,
    csv: Path,
    max_drop: float = MAX_DROP,
    settings: Settings | None = None,
    seed_plan: str | None = None,
    read: Callable[[str], dict[str, Any]] = read_record,
) -> list[AuditRow]:
    """Write the study's report and CSV from run records (``read`` checks each; tests pass a plain reader)."""
    recs = []
    for p in paths:
        rec = read(p)
        if rec["profile"] != profile:
            raise ValueError(f"{p}: record of profile {rec['profile']!r}, expected {profile!r}")
        recs.append(rec)
    smoke.check_records([{"_path": str(p), **r} for p, r in zip(paths, recs, strict=True)])
    ev = Evidence(profile, recs)
    s = settings or Settings()
    rows = [*assess_equal_tuning(ev, s), *assess_lr_objection(ev, s)]
    rows = [r for r in rows if r.level == "claim"] + [r for r in rows if r.level != "claim"]
    power.annotate(rows, alpha=s.alpha)
    conv = sorted(
        (convergence(r, max_drop=max_drop) for r in recs),
        key=lambda c: (c.task, c.row, (0, c.seed) if isinstance(c.seed, int) else (1, str(c.seed))),
    )
    row_conv = row_convergence(recs, max_drop=max_drop)
    cmd = f"snakemake --cores all {out}"
    atomic_write_text(
        out,
        render(
            rows,
            conv,
            ev,
            max_drop=max_drop,
            cmd=cmd,
            seed_plan=seed_plan,
            row_conv=row_conv,
        ),
    )
    atomic_write_text(
        csv, pd.DataFrame([r.csv_dict() for r in rows], columns=list(CSV_COLUMNS)).to_csv(index=False)
    )
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m deltalora.audit.decisive", description=__doc__.splitlines()[0]
    )
    ap.add_argument("records", nargs="*")
    ap.add_argument("--records-from", type=Path)
    ap.add_argument("--profile", required=True, choices=["default", "paper"])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--csv", type=Path, required=True)
    ap.add_argument(
        "--max-drop",
        type=float,
        default=MAX_DROP,
        help="convergence: largest allowed loss fall over the last quarter, relative (default 0.05)",
    )
    ap.add_argument("--seed-plan", help="how the seed count was chosen (the workflow passes the power plan)")
    a = ap.parse_args(argv)
    paths = list(a.records) + (a.records_from.read_text().split() if a.records_from else [])
    if not paths:
        ap.error("no records given")
    if not 0 < a.max_drop < 1:
        ap.error(f"--max-drop must be in (0, 1), got {a.max_drop}")
    build_info.check(a.out)
    rows = build(paths, profile=a.profile, out=a.out, csv=a.csv, max_drop=a.max_drop, seed_plan=a.seed_plan)
    build_info.note(a.out, "python -m deltalora.audit.decisive")
    for r in rows:
        if r.level == "claim":
            print(f"{r.id}: {r.verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
