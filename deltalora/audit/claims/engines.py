"""Claim 6: the folded and inplace engines are the same method (6a); W survives bf16 (6b).

* 6a: engine equivalence (docs/design.md §3-§4), tested on the main metric of the same task and seed run
  with each engine.
* 6b: the bf16 precision of Algorithm 1's in-place W update (docs/sources.md §3, derived cost notes: W
  must be held in a writable, full-precision copy), from the memory benchmark's rounding measurement.
"""

from __future__ import annotations

import statistics
from typing import Any

from .. import rules
from ..evidence import Evidence, engine_of, eval_size, metric_value, rank_layers, task_label
from .common import DELTA, AuditRow, Claim, ClaimFamily, Settings, absent_evidence, audit_row, records_scale

DELTA_INPLACE = "delta_lora_inplace"
ENGINE_TOL_FALLBACK = 0.1  # points, when a record does not say how many validation examples it scored

CLAIM_6A = Claim(
    "6a",
    "The folded and inplace engines are the same method (exact reparametrization)",
    "docs/design.md §3-§4 (this suite's claim, tested on real runs)",
    "main metric of row delta_lora (folded) vs delta_lora_inplace, same task and seed",
)
CLAIM_6B = Claim(
    "6b",
    "Algorithm 1's in-place W update survives W stored in bf16",
    "implicit in Algorithm 1 (W is written every step; docs/sources.md §3, derived cost notes)",
    "fraction of the intended W update lost to bf16 rounding (memory benchmark)",
)


def assess_engines(ev: Evidence, s: Settings) -> list[AuditRow]:
    rows: list[AuditRow] = []
    pairs, notes, data = [], [], []
    recs_used = []
    for task in ev.tasks(DELTA):
        folded, inplace = ev.runs(task, DELTA), ev.runs(task, DELTA_INPLACE)
        for seed in sorted(set(folded) & set(inplace)):
            a, b = folded[seed], inplace[seed]
            ea, eb = engine_of(a), engine_of(b)
            if ea == eb:
                notes.append(f"{task_label(task)} seed {seed}: both rows use engine {ea!r}")
                continue
            diff_cfg = _config_differences(a["config"], b["config"])
            if diff_cfg:
                notes.append(
                    f"{task_label(task)} seed {seed}: settings differ beyond the engine "
                    f"({', '.join(diff_cfg[:3])})"
                )
                continue
            va, vb = metric_value(a), metric_value(b)
            if va is None or vb is None:
                notes.append(f"{task_label(task)} seed {seed}: main metric missing")
                continue
            n = eval_size(a)
            tol = 100.0 / n if n else ENGINE_TOL_FALLBACK
            pairs.append((abs(va - vb), tol))
            recs_used += [a, b]
            data.append(
                {
                    "task": task,
                    "seed": seed,
                    "folded": va,
                    "inplace": vb,
                    "tol": tol,
                    "w_rel": _w_norm_rel_diff(a, b),
                }
            )
    if pairs:
        worst = max(data, key=lambda x: abs(x["folded"] - x["inplace"]))
        ok = sum(d <= t for d, t in pairs)
        wr = [x["w_rel"] for x in data if x["w_rel"] is not None]
        evid = (
            f"{len(pairs)} (task, seed) pairs; {ok}/{len(pairs)} within tolerance; max |diff| "
            f"{abs(worst['folded'] - worst['inplace']):.3g} ({task_label(worst['task'])} seed "
            f"{worst['seed']}, tolerance {worst['tol']:.3g} = 100/n_val); median |diff| "
            f"{statistics.median(d for d, _ in pairs):.3g}"
        )
        if wr:
            evid += f"; ||W_T - W_0||_F relative difference between engines: max {max(wr):.2e}"
    else:
        evid = "no evidence: no (task, seed) with both rows delta_lora (folded) and delta_lora_inplace"
    if notes:
        evid += "; skipped: " + "; ".join(notes[:5])
    rows.append(
        audit_row(
            ev,
            CLAIM_6A,
            "",
            "claim",
            CLAIM_6A.test,
            evid,
            rules.rule_engine_equivalence(pairs),
            records_scale(ev, recs_used),
            {"pairs": data},
        )
    )

    lost = folded_lost = None
    if ev.memory is not None and "bf16_inplace_lost_fraction" in ev.memory.columns:
        vals = ev.memory["bf16_inplace_lost_fraction"].dropna()
        lost = float(vals.iloc[0]) if len(vals) else None
        if "bf16_folded_lost_fraction" in ev.memory.columns:
            fv = ev.memory["bf16_folded_lost_fraction"].dropna()
            folded_lost = float(fv.iloc[0]) if len(fv) else None
    if lost is not None:
        evid = f"inplace (W written in bf16): {lost:.4f} of the intended W update lost"
        if folded_lost is not None:
            evid += f"; folded (W never written): {folded_lost:.2e}"
        model = (
            ev.memory["bf16_model"].dropna().iloc[0]
            if "bf16_model" in ev.memory.columns and ev.memory["bf16_model"].notna().any()
            else "?"
        )
        scale = f"bf16 rounding measurement on {model}"
    else:
        evid = (
            absent_evidence(ev, "memory")
            if ev.memory is None
            else "no evidence: the memory table has no bf16_inplace_lost_fraction column (run the bf16 "
            "measurement)"
        )
        scale = "no measurement"
    rows.append(
        audit_row(
            ev,
            CLAIM_6B,
            "",
            "claim",
            CLAIM_6B.test,
            evid,
            rules.rule_bf16_update_kept(lost),
            scale,
            {"inplace": lost, "folded": folded_lost},
        )
    )
    return rows


_ENGINE_KEYS = {("hp", "engine"), ("row",), ("seed",)}


def _config_differences(a: dict[str, Any], b: dict[str, Any], prefix: tuple[str, ...] = ()) -> list[str]:
    out = []
    for k in sorted(set(a) | set(b)):
        path = (*prefix, k)
        if path in _ENGINE_KEYS:
            continue
        va, vb = a.get(k), b.get(k)
        if isinstance(va, dict) and isinstance(vb, dict):
            out += _config_differences(va, vb, path)
        elif va != vb:
            out.append(".".join(path))
    return out


def _w_norm_rel_diff(a: dict[str, Any], b: dict[str, Any]) -> float | None:
    la, lb = rank_layers(a), rank_layers(b)
    rel = []
    for name in set(la) & set(lb):
        x, y = (la[name].get("w") or {}).get("fro_norm"), (lb[name].get("w") or {}).get("fro_norm")
        if x is not None and y is not None and max(abs(x), abs(y)) > 0:
            rel.append(abs(x - y) / max(abs(x), abs(y)))
    return max(rel) if rel else None


FAMILY = ClaimFamily(
    section="6",
    title="Claim 6: engine equivalence and bf16 precision",
    claims=(CLAIM_6A, CLAIM_6B),
    assess=assess_engines,
)
