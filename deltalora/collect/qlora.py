"""results/qlora_table: LoRA and Delta-LoRA on a quantized (QLoRA) base beside the full-precision base.

Rows are `<row>_fp32` and `<row>_<quantize>` (e.g. `delta_lora_nf4`). Each score cell is the median
over seeds of the run's best-epoch score, with the sample std, as in the GLUE table. The "gain" rows
are Delta-LoRA minus LoRA on the same base, seed-paired (same task, same seed), median over seeds:
whether Delta-LoRA's gain (or its absence) survives the 4-bit base is read off them (the audit's
claim 7 tests it with its rule).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from .. import smoke
from ..records import RecordError
from .tables import (
    GLUE_ORDER,
    ROW_LABELS,
    fmt,
    long_frame,
    markdown_table,
    provenance_lines,
    seed_stats,
    write_outputs,
)

BASE_LABELS = {
    "fp32": "full-precision base",
    "nf4": "4-bit NF4 base",
    "nf4-dq": "4-bit NF4 base (double quant)",
    "fp4": "4-bit FP4 base",
    "fp4-dq": "4-bit FP4 base (double quant)",
    "int8": "8-bit base",
}


def _base_of(rec: dict[str, Any]) -> str:
    q = (rec.get("config") or {}).get("model_options", {}).get("quantize", "none")
    return "fp32" if q in (None, "none") else q


def qlora_table(records: Sequence[dict[str, Any]], *, rows: Sequence[str], quantize: str) -> pd.DataFrame:
    """Score rows (each row on each base) and gain rows (Delta-LoRA - LoRA, seed-paired, per base)."""
    df = long_frame(records)
    df["base"] = [_base_of(r) for r in records]
    tasks = [t for t in GLUE_ORDER if t in set(df["task"])]
    out: list[dict[str, Any]] = []
    for base in ("fp32", quantize):
        for row in rows:
            name = f"{row}_{base}"
            sub = df[df["row"] == name]
            if sub.empty:
                raise RecordError(f"no records for row {name!r} (rows: {sorted(set(df['row']))})")
            wrong = sorted(set(sub["base"]) - {base})
            if wrong:
                raise RecordError(
                    f"row {name!r} has records on a {wrong[0]} base, expected {base}: "
                    f"{sorted(sub[sub['base'] != base]['path'])[:2]}"
                )
            out.append(
                {
                    "kind": "score",
                    "row": name,
                    "label": ROW_LABELS.get(row, row),
                    "base": base,
                    "method": sub["method"].iloc[0],
                    **seed_stats(sub, tasks),
                }
            )
        if "lora" in rows and "delta_lora" in rows:
            a = df[df["row"] == f"delta_lora_{base}"].set_index(["task", "seed"])["value"]
            b = df[df["row"] == f"lora_{base}"].set_index(["task", "seed"])["value"]
            diff = (a - b).dropna().reset_index()  # seed-paired: same task, same seed
            out.append(
                {
                    "kind": "gain",
                    "row": f"gain_{base}",
                    "label": "Delta-LoRA - LoRA (seed-paired)",
                    "base": base,
                    "method": "delta_lora-lora",
                    **seed_stats(diff, tasks),
                }
            )
    return pd.DataFrame(out)


def _gain_sentence(table: pd.DataFrame, quantize: str) -> str:
    g = table[table["kind"] == "gain"].set_index("base")
    if "fp32" not in g.index or quantize not in g.index:
        return ""
    f, q = g.loc["fp32"], g.loc[quantize]
    return (
        f"Delta-LoRA - LoRA, average over tasks of the per-task median paired difference: "
        f"{fmt(f['avg'], f['avg_std'], 2)} points on the full-precision base, "
        f"{fmt(q['avg'], q['avg_std'], 2)} on the {BASE_LABELS.get(quantize, quantize)} "
        "(± std over seeds of the per-seed average). The audit (claim 7) states whether the outcome survives."
    )


def collect_qlora(
    records: Sequence[str | os.PathLike],
    out_csv: str | os.PathLike,
    *,
    profile: str,
    rows: Sequence[str],
    quantize: str,
    plots_dir: str | os.PathLike | None = None,
) -> Path:
    """Build results/qlora_table.{csv,md} (and the score plot) from the study's run records."""
    from .plots import scores_plot
    from .tables import load_records

    recs = load_records(records, profile=profile)
    table = qlora_table(recs, rows=rows, quantize=quantize)
    tasks = [t for t in GLUE_ORDER if t in table.columns]
    plots: list[str] = []
    if plots_dir is not None:
        score_rows = list(table[table["kind"] == "score"]["row"])
        plots += scores_plot(
            recs,
            score_rows,
            tasks,
            profile=profile,
            base=Path(plots_dir) / "qlora_scores",
            family=f"LoRA and Delta-LoRA, fp32 vs {quantize} base",
        )
    header = ["row", "base", *[t.upper() for t in tasks], "avg"]
    body = []
    for _, r in table.iterrows():
        body.append(
            [
                r["label"],
                BASE_LABELS.get(r["base"], r["base"]),
                *[fmt(r[t], r[f"{t}_std"], 2 if r["kind"] == "gain" else 1) for t in tasks],
                fmt(r["avg"], r["avg_std"], 2 if r["kind"] == "gain" else 1),
            ]
        )
    models = sorted({rec["model"] for rec in recs})
    wall = sum(float(rec["provenance"].get("wall_time_s") or 0.0) for rec in recs)
    lines = [
        f"# Delta-LoRA on a quantized base ({smoke.label(profile)})",
        "",
        *provenance_lines(recs, profile),
        f"- Base model {', '.join(models)} in full precision and quantized with bitsandbytes ({quantize}, "
        "QLoRA's recipe: every encoder Linear quantized, the task head in full precision); LoRA on the "
        "quantized base is QLoRA. Delta-LoRA uses the folded engine, which never writes W (Algorithm 1's "
        "in-place update cannot be stored in a quantized W).",
        "- Cells: median over seeds of each run's best-epoch score (x100), ± sample std over seeds. Gain "
        "rows: Delta-LoRA minus LoRA on the same base, task and seed; median over seeds ± std.",
        f"- Training time summed over the {len(recs)} runs (run records' wall time): {wall:.0f} s.",
        "",
        markdown_table(header, body),
        "",
        _gain_sentence(table, quantize),
    ]
    rel = [os.path.relpath(p, Path(out_csv).parent) for p in plots if p.endswith(".png")]
    lines += ["", *[f"![scores]({p})" for p in rel]]
    write_outputs(table, out_csv, "\n".join(lines))
    return Path(out_csv)


__all__ = ["collect_qlora", "qlora_table"]
