"""Claim 7: Delta-LoRA's gain (or its absence) survives a 4-bit base (the QLoRA setting).

This suite's own question: Algorithm 1 cannot write a 4-bit W, but the folded engine runs Delta-LoRA there
exactly. Tested on the QLoRA study's records (workflow/rules/qlora.smk): the gain over LoRA on the fp32
and on the quantized base, and the seed-paired gap between the two.
"""

from __future__ import annotations

from typing import Any

from .. import rules
from ..evidence import Evidence
from ..stats import pair_by_seed
from .common import (
    DELTA,
    AuditRow,
    Claim,
    ClaimFamily,
    Settings,
    audit_row,
    compare,
    records_scale,
    task_records,
)

CLAIM_7 = Claim(
    "7",
    "Delta-LoRA's gain (or not) survives a 4-bit base",
    "this suite's question (QLoRA setting): Algorithm 1 cannot write a 4-bit W; the folded engine can run "
    "Delta-LoRA there exactly",
    "seed-paired Delta-LoRA - LoRA pooled over the study's tasks, on the fp32 base and on the 4-bit "
    "(bitsandbytes) base, and the seed-paired gap between the two gains (results/qlora_table.csv)",
)


QLORA_SUFFIXES = ("nf4", "nf4-dq", "fp4", "fp4-dq", "int8")


def assess_quantized(ev: Evidence, s: Settings) -> list[AuditRow]:
    """Claim 7: the study's rows lora_<base> and delta_lora_<base> (workflow/rules/qlora.smk)."""
    quant = next((q for q in QLORA_SUFFIXES if ev.tasks(f"{DELTA}_{q}")), None)
    if quant is None or not ev.tasks(f"{DELTA}_fp32"):
        return [
            audit_row(
                ev,
                CLAIM_7,
                "",
                "claim",
                CLAIM_7.test,
                "no evidence: no qlora study records (rows lora_fp32, delta_lora_fp32, lora_nf4, "
                "delta_lora_nf4; target results/qlora_table.csv)",
                rules.rule_gain_survives(None, None, None, alpha=s.alpha),
                "no measurement",
            )
        ]
    details: list[AuditRow] = []
    gains: dict[str, dict[str, dict[Any, float]]] = {}
    verdicts = {}
    for base in ("fp32", quant):
        d_row, l_row = f"{DELTA}_{base}", f"lora_{base}"
        strata = {
            t: d for t in ev.tasks(d_row) if (d := pair_by_seed(ev.scores(t, d_row), ev.scores(t, l_row)))
        }
        gains[base] = strata
        cmp = compare(ev, s, strata, f"Delta-LoRA - LoRA on the {base} base") if strata else None
        verdicts[base] = rules.rule_paired_gain(cmp, alpha=s.alpha, what=f"Delta-LoRA - LoRA ({base} base)")
        details.append(
            audit_row(
                ev,
                CLAIM_7,
                base,
                "detail",
                f"Delta-LoRA - LoRA on the {base} base, pooled over tasks",
                cmp.describe() if cmp else f"no evidence: no paired {d_row}/{l_row} runs",
                verdicts[base],
                records_scale(ev, [r for t in strata for r in task_records(ev, t, [d_row, l_row])]),
                {"cmp": cmp, "base": base},
            )
        )
    did_strata = {
        t: d
        for t in gains[quant]
        if t in gains["fp32"]
        if (d := pair_by_seed(gains[quant][t], gains["fp32"][t]))
    }
    did = compare(ev, s, did_strata, f"gain on {quant} - gain on fp32") if did_strata else None
    rows_used = [
        r
        for t in did_strata
        for r in task_records(ev, t, [f"{DELTA}_fp32", "lora_fp32", f"{DELTA}_{quant}", f"lora_{quant}"])
    ]
    evid = (
        f"fp32 base: {verdicts['fp32'][0]}; {quant} base: {verdicts[quant][0]}; gap "
        f"({quant} gain - fp32 gain): {did.describe() if did else 'no paired runs'}"
    )
    head = audit_row(
        ev,
        CLAIM_7,
        "",
        "claim",
        CLAIM_7.test,
        evid,
        rules.rule_gain_survives(verdicts["fp32"], verdicts[quant], did, alpha=s.alpha),
        records_scale(ev, rows_used) if rows_used else "no measurement",
        {"cmp": did, "quantize": quant},
    )
    return [head, *details]


FAMILY = ClaimFamily(
    section="7",
    title="Claim 7: Delta-LoRA on a 4-bit base (QLoRA)",
    claims=(CLAIM_7,),
    assess=assess_quantized,
)
