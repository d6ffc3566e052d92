"""NLG tables (E2E, WebNLG, XSum): rows x the task's metrics, median over seeds with std, in the
paper tables' units, beside the papers' rows, with a few generated samples for people to read."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .. import smoke
from ..records import RecordError
from .tables import (
    ROW_LABELS,
    _std,
    fmt,
    load_records,
    markdown_table,
    paper_rows,
    provenance_lines,
    write_outputs,
)

METRICS = {
    "e2e": ("bleu", "nist", "meteor", "rouge_l", "cider"),
    "webnlg": (
        "bleu_seen",
        "bleu_unseen",
        "bleu_all",
        "meteor_seen",
        "meteor_unseen",
        "meteor_all",
        "ter_seen",
        "ter_unseen",
        "ter_all",
    ),
    "xsum": ("rouge1", "rouge2", "rougeL"),
}
TITLES = {"e2e": "E2E NLG Challenge", "webnlg": "WebNLG 2017", "xsum": "XSum"}
PAPER_MODEL = {"e2e": "GPT-2 Medium", "webnlg": "GPT-2 Medium", "xsum": "BART-large"}


def _scaled(task: str, rec: dict[str, Any]) -> dict[str, float]:
    from ..metrics.generation_common import to_paper_scale

    m = to_paper_scale(task, {k: rec["final"]["metrics"].get(k) for k in METRICS[task]})
    return {k: (float("nan") if v is None else float(v)) for k, v in m.items()}


def nlg_table(
    task: str, records: Sequence[dict[str, Any]], rows: Sequence[str] | None = None
) -> pd.DataFrame:
    bad = [r["_path"] for r in records if r["task"] != task]
    if bad:
        raise RecordError(f"the {task} table takes {task} records only; got others: {bad[:3]}")
    seen: dict[tuple[str, int], str] = {}
    for r in records:
        key = (r.get("row") or r["method"], r["seed"])
        if key in seen:
            raise RecordError(f"two records for the same (row, seed) {key}: {seen[key]} and {r['_path']}")
        seen[key] = r["_path"]
    order = list(rows) if rows else list(dict.fromkeys(r.get("row") or r["method"] for r in records))
    out = []
    for row in order:
        sub = [r for r in records if (r.get("row") or r["method"]) == row]
        if not sub:
            raise RecordError(f"no {task} records for row {row!r}")
        vals = pd.DataFrame([_scaled(task, r) for r in sub])
        rec: dict[str, Any] = {
            "row": row,
            "label": ROW_LABELS.get(row, row),
            "method": sub[0]["method"],
            "n_seeds": len(sub),
        }
        for m in METRICS[task]:
            rec[m] = float(vals[m].median()) if vals[m].notna().any() else float("nan")
            rec[f"{m}_std"] = _std(vals[m])
        rec["trainable_params"] = int(np.median([r["params"]["trainable"] for r in sub]))
        out.append(rec)
    return pd.DataFrame(out)


def _digits(metric: str) -> int:
    return 2 if metric in ("nist", "cider") or metric.startswith(("meteor", "ter")) else 1


def _samples(task: str, records: Sequence[dict[str, Any]], rows: Sequence[str], n: int = 3) -> list[str]:
    lines = []
    by_row = {(r.get("row") or r["method"]): r for r in sorted(records, key=lambda r: r["seed"])}
    first = next((by_row[r] for r in rows if r in by_row and by_row[r].get("generation")), None)
    if first is None:
        return lines
    for i, s in enumerate(first["generation"]["samples"][:n]):
        lines += [f"**Input {i + 1}:** `{s['source'][:300]}`", ""]
        for row in rows:
            r = by_row.get(row)
            if r and r.get("generation") and i < len(r["generation"]["samples"]):
                hyp = r["generation"]["samples"][i]["hypothesis"]
                lines.append(f"- {ROW_LABELS.get(row, row)} (seed {r['seed']}): {hyp}")
        lines.append(f"- reference: {s['references'][0]}")
        lines.append("")
    return lines


def collect_nlg(
    task: str,
    records_paths: Sequence[str | os.PathLike],
    out_csv: str | os.PathLike,
    *,
    profile: str,
    paper_csv: str | os.PathLike | None = None,
    rows: Sequence[str] | None = None,
    plots_dir: str | os.PathLike | None = None,
) -> Path:
    records = load_records(records_paths, profile=profile)
    table = nlg_table(task, records, rows)
    rows = list(table["row"])
    metrics = METRICS[task]
    plots: list[str] = []
    if plots_dir is not None:
        plots = nlg_plot(task, records, rows, profile=profile, base=Path(plots_dir) / f"{task}_scores")
    header = ["Method", *metrics, "seeds"]
    body = [
        [r["label"], *[fmt(r[m], r[f"{m}_std"], _digits(m)) for m in metrics], str(r["n_seeds"])]
        for _, r in table.iterrows()
    ]
    decoding = records[0].get("generation", {}).get("decoding", {})
    n_eval = records[0].get("generation", {}).get("n_eval")
    lines = [
        f"# {TITLES[task]} ({smoke.label(profile)})",
        "",
        *provenance_lines(records, profile),
        "- Cells: median over seeds ± sample std, in the paper tables' units (BLEU, ROUGE x100; WebNLG "
        f"METEOR and TER as fractions; NIST and CIDEr raw). Scored on {n_eval} test inputs after training, "
        f"multi-reference; decoding: {decoding}.",
        "- Generation runs once, after the last step, so each run is scored at its final state (the LoRA "
        "protocol picks the best epoch; generating every epoch would multiply the cost).",
        "- Metric code: `deltalora.metrics` (docs/metrics.md: validated against the official E2E / "
        "GenerationEval scripts).",
        "",
        "## This run",
        "",
        markdown_table(header, body),
    ]
    dropout = {
        row: {r["config"]["hp"].get("dropout") for r in records if r.get("row") == row}
        for row in ("lora", "lora_nodrop")
    }
    if dropout["lora"] == {0.0} and dropout["lora_nodrop"]:
        lines += [
            "",
            "- LoRA already runs without dropout on this task (the profile's setting), so the \"LoRA, no "
            "dropout\" control repeats the LoRA row's configuration.",
        ]
    pbody, notes = paper_rows(paper_csv, list(metrics), digits=_digits)
    lines += ["", f"## Reported in the papers (for reference; {PAPER_MODEL[task]} on the real data)", ""]
    if pbody:
        lines.append(markdown_table(["Row [source]", *metrics], pbody))
    if notes:
        lines += ["", *[f"- {n}" for n in notes]]
    if profile != "paper":
        lines += [
            "",
            f"> The {profile} profile fine-tunes a small model pre-trained for about two minutes on a "
            "generated corpus, on small proxies: its scores show the machinery, not the paper's numbers.",
        ]
    samples = _samples(task, records, rows)
    if samples:
        lines += [
            "",
            "## Samples (first test inputs; all texts are in each run's generations.jsonl)",
            "",
            *samples,
        ]
    if plots:
        rel = [os.path.relpath(p, Path(out_csv).parent) for p in plots if p.endswith(".png")]
        lines += ["", "## Plots", "", *[f"![{Path(p).stem}]({p})" for p in rel]]
    write_outputs(table, out_csv, "\n".join(lines))
    return Path(out_csv)


def nlg_plot(
    task: str, records: Sequence[dict[str, Any]], rows: Sequence[str], *, profile: str, base: Path
) -> list[str]:
    from .plots import _grid, save

    metrics = [m for m in METRICS[task] if any(not np.isnan(_scaled(task, r)[m]) for r in records)]
    fig, axes = _grid(len(metrics))
    rng = np.random.default_rng(0)
    for ax, m in zip(axes, metrics, strict=False):
        for i, row in enumerate(rows):
            vals = [_scaled(task, r)[m] for r in records if (r.get("row") or r["method"]) == row]
            vals = [v for v in vals if not np.isnan(v)]
            if vals:
                ax.hlines(np.median(vals), i - 0.32, i + 0.32, color=f"C{i % 10}", lw=2.5)
                ax.scatter(i + rng.uniform(-0.15, 0.15, len(vals)), vals, color=f"C{i % 10}", s=14, zorder=3)
        ax.set_xticks(range(len(rows)))
        ax.set_xticklabels(
            [ROW_LABELS.get(r, r).split(" (")[0] for r in rows], rotation=60, ha="right", fontsize=7
        )
        ax.set_title(f"{TITLES[task]}: {m} ({profile} profile)", fontsize=9)
        ax.set_ylabel(m, fontsize=8)
    fig.suptitle(
        f"{TITLES[task]}: score per seed (dots) and median (line), final state - {profile} profile",
        fontsize=10,
    )
    fig.tight_layout()
    return save(fig, base)
