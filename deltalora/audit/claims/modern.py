"""Claim 9: Delta-LoRA outperforms the LoRA variants published since, at equal tuning.

The paper compares Delta-LoRA with LoRA, AdaLoRA and DyLoRA (claim 4). PEFT has since shipped methods
that claim what Delta-LoRA claims (updates of higher rank than LoRA's, or better use of the same
budget): rsLoRA, PiSSA, LoRA+, DoRA, VeRA, LoHa, LoKr, HRA, HiRA. None is in the paper, so this is
the paper's claim 4 carried to them, at equal tuning: the modern-baselines study
(``results/baselines_table.csv``, workflow/rules/baselines.smk) trains every row at each learning rate
of one sweep; per task each method's learning rate is selected on dev (the audit's rule,
:mod:`deltalora.audit.selection`) and the two are compared on validation, seed-paired, with the same
test, power columns and verdict rules as claims 4 and 5. The variants are the study's rows other than
Delta-LoRA, LoRA (claim 4), the LoRA x(1+lambda) control (claim 5) and full fine-tuning.
"""

from __future__ import annotations

from collections import defaultdict

from ...collect.baselines import LABELS, parse_row
from .. import rules, selection
from ..evidence import Evidence, task_label
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

NOT_VARIANTS = {DELTA, "lora", "lora_scaled"}  # claims 4 and 5 test these

CLAIM_9 = Claim(
    "9",
    "Delta-LoRA outperforms the LoRA variants published since, at equal tuning",
    "the paper's claim 4 carried to the variants PEFT shipped after it (docs/baselines.md); none is in "
    "the paper",
    "seed-paired Delta-LoRA - variant per task, each at its own dev-selected learning rate from the same "
    "sweep, compared on validation; pooled over tasks per variant (stratified bootstrap CI, exact test)",
)


def study_rows(ev: Evidence) -> dict[tuple[str, str], list[str]]:
    """(task, study row) -> its record rows (one per learning rate of the sweep)."""
    out: dict[tuple[str, str], list[str]] = defaultdict(list)
    for task, row in ev.index:
        parsed = parse_row(row)
        if parsed is not None:
            out[(task, parsed[0])].append(row)
    return dict(out)


def variants(ev: Evidence, rows: dict[tuple[str, str], list[str]]) -> list[str]:
    """The study's LoRA variants, in the table's order where known."""
    names = {r for _, r in rows}
    out = []
    for name in names - NOT_VARIANTS:
        recs = [
            rec for (t, r), rs in rows.items() if r == name for rr in rs for rec in ev.runs(t, rr).values()
        ]
        if recs and recs[0]["method"] != "full_ft":
            out.append(name)
    order = list(LABELS)
    return sorted(out, key=lambda n: (order.index(n) if n in order else len(order), n))


def assess_modern(ev: Evidence, s: Settings) -> list[AuditRow]:
    rows = study_rows(ev)
    names = variants(ev, rows)
    details: list[AuditRow] = []
    pooled_rows: list[AuditRow] = []
    parts: list[tuple[str, str]] = []
    for name in names:
        label = LABELS.get(name, name)
        what = f"Delta-LoRA - {label}"
        strata = {}
        used = []
        for task in sorted({t for t, r in rows if r == name and (t, DELTA) in rows}):
            d_rows, v_rows = rows[(task, DELTA)], rows[(task, name)]
            p = selection.tuned_pair(ev, task, d_rows, v_rows)
            if p is None:
                continue
            strata[task] = p.diffs
            used += task_records(ev, task, [p.best_x, p.best_y])
            cmp = compare(
                ev,
                s,
                {task: p.diffs},
                f"{task_label(task)} {what}",
                {"best_delta": p.best_x, "best_variant": p.best_y},
            )
            details.append(
                audit_row(
                    ev,
                    CLAIM_9,
                    f"{name}.{task}",
                    "detail",
                    f"{task_label(task)} ({ev.main_metric(task)}): {what}, each at its dev-selected "
                    "learning rate",
                    f"Delta-LoRA {selection.describe_selection(p.split, p.medians_x, p.best_x)}; {label} "
                    f"{selection.describe_selection(p.split, p.medians_y, p.best_y)}; "
                    f"compared on validation: {cmp.describe()}",
                    rules.rule_paired_gain(cmp, alpha=s.alpha, what=f"{what} (equal tuning)"),
                    records_scale(ev, task_records(ev, task, [*d_rows, *v_rows])),
                    {"cmp": cmp, "task": task, "baseline": name, "metric": ev.main_metric(task)},
                )
            )
        pooled = compare(ev, s, strata, f"pooled {what} (equal tuning)") if strata else None
        pooled_rows.append(
            audit_row(
                ev,
                CLAIM_9,
                name,
                "detail",
                f"vs {label}, pooled over tasks, equal tuning",
                f"{len(strata)} task(s) ({', '.join(task_label(t) for t in strata)}): {pooled.describe()}"
                if pooled
                else f"no evidence: no task has Delta-LoRA and {label} study runs on the same seeds",
                rules.rule_paired_gain(pooled, alpha=s.alpha, what=f"{what} (pooled over tasks)"),
                records_scale(ev, used) if used else "no measurement",
                {"cmp": pooled, "baseline": name},
            )
        )
        parts.append(
            (name, rules.rule_part_of_all(pooled, k=max(len(names), 1), alpha=s.alpha, what=what)[0])
        )
    if names:
        evid = "; ".join(f"vs {LABELS.get(n, n)}: {v}" for n, v in parts)
        verdict = rules.aggregate_all(parts, required=names, what="each LoRA variant of the study")
    else:
        evid = (
            "no evidence: no records of the modern-baselines study with Delta-LoRA and a LoRA variant "
            "(results/baselines_table.csv; the workflow's `baselines:` section)"
        )
        verdict = rules.aggregate_all([], required=["a variant"], what="each LoRA variant of the study")
    head = audit_row(
        ev,
        CLAIM_9,
        "",
        "claim",
        CLAIM_9.test,
        evid,
        verdict,
        records_scale(ev, [r for (t, n), rs in rows.items() for rr in rs for r in ev.runs(t, rr).values()])
        if rows
        else "no measurement",
        {"parts": parts},
    )
    return [head, *pooled_rows, *details]


FAMILY = ClaimFamily(
    section="9",
    title="Claim 9: Delta-LoRA outperforms the LoRA variants published since, at equal tuning",
    claims=(CLAIM_9,),
    assess=assess_modern,
)
