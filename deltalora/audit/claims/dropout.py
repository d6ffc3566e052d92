"""Claim 3: dropout must be removed from the low-rank branch (3a); Delta-LoRA scores better without it (3b).

* 3a: dropout is removed from the low-rank branch so that dL/dW = dL/d(AB) (the paper's section 4.1 as
  reviewer 3 describes it; sciencestack and paperium summaries; docs/sources.md §0, §1.2). Tested on the
  gradient cosines measured during training.
* 3b: the practical side: does Delta-LoRA score better with dropout removed (a dropout ablation probably
  exists in the paper, docs/sources.md §3, values unconfirmed). Tested on the dropout ablation's run
  records, paired by seed.
"""

from __future__ import annotations

import math

import numpy as np

from ... import smoke
from .. import rules
from ..evidence import DROPOUT_ROW, Evidence, task_label, task_sort_key
from ..stats import pair_by_seed
from .common import (
    DELTA,
    AuditRow,
    Claim,
    ClaimFamily,
    Settings,
    absent_evidence,
    audit_row,
    compare,
    records_scale,
    task_records,
)

CLAIM_3A = Claim(
    "3a",
    "Dropout must be removed from the low-rank branch for gradient equivalence dL/dW = dL/d(AB)",
    "method section (4.1 per ICLR reviewer 3); sciencestack/paperium summaries (docs/sources.md §0, §1.2)",
    "cosine between dL/dW and dL/d(BA) during training, with and without dropout",
)
CLAIM_3B = Claim(
    "3b",
    "Delta-LoRA works better with dropout removed (the reason the method drops it)",
    "implied by the method's design; dropout ablation (docs/sources.md §3, values unconfirmed)",
    "seed-paired score of Delta-LoRA without dropout minus with dropout p, per task and pooled",
)


def assess_dropout(ev: Evidence, s: Settings) -> list[AuditRow]:
    rows: list[AuditRow] = []
    cos = ev.cosines
    if cos is None:
        rows.append(
            audit_row(
                ev,
                CLAIM_3A,
                "",
                "claim",
                CLAIM_3A.test,
                absent_evidence(ev, "cosines"),
                rules.rule_dropout_cosine([], []),
                "no measurement",
            )
        )
    else:

        def summary(sub) -> str:
            c = sub["cosine"]
            return f"median {c.median():.6f}, min {c.min():.6f} ({len(c)} step-layers)"

        without, with_ = cos[cos["dropout"] == 0], cos[cos["dropout"] > 0]
        ps = sorted(set(with_["dropout"]))
        evid = (
            f"without dropout: {summary(without) if len(without) else 'not measured'}; with dropout "
            f"p={'/'.join(f'{p:g}' for p in ps) or '-'}: "
            f"{summary(with_) if len(with_) else 'not measured'}"
        )
        rows.append(
            audit_row(
                ev,
                CLAIM_3A,
                "",
                "claim",
                CLAIM_3A.test,
                evid,
                rules.rule_dropout_cosine(list(without["cosine"]), list(with_["cosine"])),
                f"{smoke.label(ev.profile)}, gradients measured during training (methods: "
                f"{', '.join(sorted(set(cos['method'].astype(str))))})",
                {"cosines": cos},
            )
        )
        for method in sorted(set(cos["method"].astype(str))):
            sub = cos[cos["method"].astype(str) == method]
            a, b = sub[sub["dropout"] == 0], sub[sub["dropout"] > 0]
            rows.append(
                audit_row(
                    ev,
                    CLAIM_3A,
                    method,
                    "detail",
                    f"{method}: {CLAIM_3A.test}",
                    f"without dropout: {summary(a) if len(a) else 'not measured'}; with "
                    f"dropout: {summary(b) if len(b) else 'not measured'}",
                    rules.rule_dropout_cosine(list(a["cosine"]), list(b["cosine"])),
                    smoke.label(ev.profile),  # "paper profile - smoke run, ..." in a smoke build
                    {},
                )
            )

    # 3b: scores with and without dropout (paired by seed) from the ablation's run records
    by: dict[tuple[str, float], list[str]] = {}
    for task, row in ev.index:
        m = DROPOUT_ROW.match(row)
        if m:
            by.setdefault((m.group("method"), float(m.group("p"))), []).append(task)
    ps = sorted({p for (meth, p) in by if meth == DELTA and p > 0}, key=lambda p: (-len(by[(DELTA, p)]), -p))
    zero_row = _dropout_row(ev, DELTA, 0.0)
    if not ps or zero_row is None:
        why = (
            "no ablation run records (rows dropout_delta_lora_p0 and dropout_delta_lora_p<p>)"
            if not by
            else "the ablation lacks Delta-LoRA runs with and without dropout"
        )
        if ev.dropout_summary is not None:
            why += f"; the summary {ev.sources.get('dropout_summary')} has no per-seed scores to pair"
            why += "; " + _dropout_summary_text(ev.dropout_summary)
        rows.append(
            audit_row(
                ev,
                CLAIM_3B,
                "",
                "claim",
                CLAIM_3B.test,
                "no evidence: " + why,
                rules.rule_paired_gain(None, what="score(no dropout) - score(dropout p)"),
                "no measurement",
            )
        )
        return rows
    p = ps[0]
    p_row = _dropout_row(ev, DELTA, p)
    lora0, lorap = _dropout_row(ev, "lora", 0.0), _dropout_row(ev, "lora", p)
    what = f"Delta-LoRA score(no dropout) - score(dropout p={p:g})"
    strata, details = {}, []
    for task in sorted({t for t, _ in ev.index}, key=task_sort_key):
        d = pair_by_seed(ev.scores(task, zero_row), ev.scores(task, p_row))
        if not d:
            continue
        strata[task] = d
        ctx = {}
        if lora0 and lorap:
            ld = pair_by_seed(ev.scores(task, lora0), ev.scores(task, lorap))
            ctx = {"lora_diffs": ld, "did": pair_by_seed(d, ld)}
        cmp = compare(ev, s, {task: d}, f"{task_label(task)} {what}", ctx)
        metric = ev.main_metric(task)
        lora_txt = (
            f"; LoRA's own no-dropout gain {np.mean(list(ctx['lora_diffs'].values())):+.2f}"
            if ctx.get("lora_diffs")
            else ""
        )
        details.append(
            audit_row(
                ev,
                CLAIM_3B,
                task,
                "detail",
                f"{task_label(task)} ({metric}): {what}",
                cmp.describe() + lora_txt,
                rules.rule_paired_gain(cmp, alpha=s.alpha, what=what),
                records_scale(ev, task_records(ev, task, [zero_row, p_row])),
                {"cmp": cmp, "task": task, "metric": metric},
            )
        )
    pooled = compare(ev, s, strata, f"pooled {what}")
    evid = (
        f"pooled over {len(strata)} task(s): {pooled.describe()}"
        if strata
        else "no evidence: no task with both ablation rows on the same seeds"
    )
    rows.append(
        audit_row(
            ev,
            CLAIM_3B,
            "",
            "claim",
            f"{CLAIM_3B.test} (p={p:g})",
            evid,
            rules.rule_paired_gain(pooled if strata else None, alpha=s.alpha, what=what),
            records_scale(ev, [r for t in strata for r in task_records(ev, t, [zero_row, p_row])]),
            {"cmp": pooled, "details": [d.id for d in details]},
        )
    )
    rows += details
    return rows


def _dropout_row(ev: Evidence, method: str, p: float) -> str | None:
    for _, row in ev.index:
        m = DROPOUT_ROW.match(row)
        if m and m.group("method") == method and math.isclose(float(m.group("p")), p, abs_tol=1e-12):
            return row
    return None


def _dropout_summary_text(df) -> str:
    cols = [c for c in df.columns if c not in ("method", "dropout")]
    return "summary: " + "; ".join(
        f"{r['method']} p={r['dropout']}: " + ", ".join(f"{c}={r[c]}" for c in cols[:6])
        for _, r in df.iterrows()
    )


FAMILY = ClaimFamily(
    section="3",
    title="Claim 3: dropout must be removed (gradient equivalence)",
    claims=(CLAIM_3A, CLAIM_3B),
    assess=assess_dropout,
)
