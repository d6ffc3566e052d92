"""Claim 2: memory and compute "comparable" to LoRA.

The abstract: W needs no gradient or optimizer moments, so memory and compute are "comparable" to LoRA
(docs/sources.md §0). Tested on the memory benchmark's peak-memory and step-time ratios to LoRA, for
Algorithm 1 as written (inplace engine), with the folded and naive engines and full fine-tuning alongside.
"""

from __future__ import annotations

import math

from ...collect.memory import disturbed
from .. import rules
from ..evidence import Evidence
from .common import AuditRow, Claim, ClaimFamily, Settings, absent_evidence, audit_row, fmt

CLAIM_2 = Claim(
    "2",
    'Memory and compute "comparable" to LoRA (W needs no gradient and no optimizer moments)',
    "abstract (docs/sources.md §0)",
    "peak memory and median step time relative to LoRA, from the memory table, for Algorithm 1 as "
    "written (inplace engine); folded and naive implementations and full fine-tuning alongside",
)


def assess_cost(ev: Evidence, s: Settings) -> list[AuditRow]:
    rows: list[AuditRow] = []
    df = ev.memory
    if df is None:
        for eng, lvl in (("inplace", "claim"), ("folded", "detail"), ("naive", "detail")):
            rows.append(
                audit_row(
                    ev,
                    CLAIM_2,
                    "" if lvl == "claim" else eng,
                    lvl,
                    f"{eng} engine: {CLAIM_2.test}",
                    absent_evidence(ev, "memory"),
                    rules.rule_comparable_cost([]),
                    "no measurement",
                )
            )
        return rows
    models = sorted(set(df["model"].astype(str)))
    dtypes = sorted(set(df["dtype"].astype(str)))
    device = ", ".join(sorted(set(df["device"].astype(str)))) if "device" in df.columns else "?"
    scale = f"benchmark: {', '.join(models)} ({', '.join(dtypes)}) on {device}"
    if ev.profile != "paper":
        scale += "; model sizes of the benchmark, not the paper's training runs"
    groups = [
        (m, d)
        for m in models
        for d in dtypes
        if ((df["model"].astype(str) == m) & (df["dtype"].astype(str) == d)).any()
    ]

    def val(m, d, cfg, col):
        sub = df[(df["model"].astype(str) == m) & (df["dtype"].astype(str) == d) & (df["config"] == cfg)]
        if sub.empty or col not in sub.columns:
            return None
        v = sub[col].iloc[0]
        return float(v) if v is not None and not (isinstance(v, float) and math.isnan(v)) else None

    table = []
    for m, d in groups:
        for cfg in ("lora", "full_ft", "inplace", "folded", "naive"):
            table.append(
                {
                    "model": m,
                    "dtype": d,
                    "config": cfg,
                    "peak_ratio": val(m, d, cfg, "peak_ratio_to_lora"),
                    "step_ratio": val(m, d, cfg, "step_ratio_to_lora"),
                }
            )
    by_group = {
        (m, d): df[(df["model"].astype(str) == m) & (df["dtype"].astype(str) == d)].set_index("config")
        for m, d in groups
    }
    for eng, lvl in (("inplace", "claim"), ("folded", "detail"), ("naive", "detail")):
        ratios, parts, noisy = [], [], []
        for m, d in groups:
            noisy += [f"{m} {d} {w}" for w in disturbed(by_group[(m, d)], [eng, "lora"])]
            pr, sr = val(m, d, eng, "peak_ratio_to_lora"), val(m, d, eng, "step_ratio_to_lora")
            fp, fs = val(m, d, "full_ft", "peak_ratio_to_lora"), val(m, d, "full_ft", "step_ratio_to_lora")
            if pr is None and sr is None:
                continue
            ratios += [(pr, fp), (sr, fs)]
            parts.append(
                f"{m} {d}: peak x{fmt(pr, 3)}, step x{fmt(sr, 3)} of LoRA (full FT: "
                f"x{fmt(fp, 3)}, x{fmt(fs, 3)})"
            )
        evid = "; ".join(parts) if parts else f"no evidence: the memory table has no '{eng}' rows"
        if noisy:
            evid += f"; disturbed measurement (slowest/fastest round): {', '.join(noisy)}"
        rows.append(
            audit_row(
                ev,
                CLAIM_2,
                "" if lvl == "claim" else eng,
                lvl,
                f"{eng} engine{' (Algorithm 1 as written)' if eng == 'inplace' else ''}: peak "
                "memory and median step time relative to "
                "LoRA",
                evid,
                rules.rule_comparable_cost(ratios, disturbed=noisy),
                scale,
                {"table": table},
            )
        )
    return rows


FAMILY = ClaimFamily(
    section="2",
    title="Claim 2: memory and compute comparable to LoRA",
    claims=(CLAIM_2,),
    assess=assess_cost,
)
