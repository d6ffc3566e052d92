"""Claim 1: Delta-LoRA "fine-tunes high-rank parameters" (1a), and the telescoping identity (1b).

* 1a: the title, "Fine-Tuning High-Rank Parameters with the Delta of Low-Rank Matrices" (docs/sources.md §0).
  Tested on the numerical rank of W_T - W_0 per adapted layer, against 2r and full fine-tuning's update.
* 1b: the telescoping identity (our derivation, docs/design.md §2, docs/sources.md §7.2), checked on a run:
  W_T - W_0 is a difference of two rank-r products, so its rank is at most 2r.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from typing import Any

from ...collect.baselines import LABELS, parse_row
from .. import rules
from ..evidence import Evidence, rank_layers, task_label, task_sort_key, two_r_of
from .common import AuditRow, Claim, ClaimFamily, Settings, audit_row, median_or_none, records_scale

HEADLINE_KEY = f"{rules.HEADLINE_RANK_THRESHOLD:g}"  # "0.001", as deltalora.analysis writes it
RANK_KEYS = ("0.01", "0.001", "0.0001", "1e-06")

CLAIM_1A = Claim(
    "1a",
    'Delta-LoRA "fine-tunes high-rank parameters": the update of W is high-rank',
    "paper title (docs/sources.md §0)",
    "numerical rank of W_T - W_0 per adapted layer (SVD; thresholds 1e-2, 1e-3, 1e-4, 1e-6 relative to "
    "sigma_1; headline 1e-3) against 2r and against full fine-tuning's update rank",
)
CLAIM_1B = Claim(
    "1b",
    "Telescoping identity: W_T - W_0 = lambda s (B_T A_T - B_(K+1) A_(K+1)), of rank <= 2r",
    "our derivation (docs/design.md §2, docs/sources.md §7.2); checked numerically on inplace-engine runs",
    "relative Frobenius error between the measured W_T - W_0 and the telescoped form, per layer",
)


def _in_study(rec: dict[str, Any]) -> bool:
    """A record of the modern-baselines study (its rows are compared across methods, below)."""
    return parse_row(rec.get("row") or "") is not None


def method_ranks(ev: Evidence) -> list[tuple[str, float, float | None, int, int]]:
    """The rank comparison across methods, from the modern-baselines study (docs/baselines.md).

    Per study row: (row, median effective-update rank, median rank of the base weight's own change W_T -
    W_0 or None if W never moved, the layers' full rank, layer-runs), ranks at the headline threshold,
    over every adapted layer of every run of the row. Sorted by effective rank, highest first.
    """
    by_row: dict[str, dict[str, list[int]]] = {}
    for rec in ev.records:
        parsed = parse_row(rec.get("row") or "")
        if parsed is None:
            continue
        d = by_row.setdefault(parsed[0], {"eff": [], "w": [], "full": []})
        for L in rank_layers(rec).values():
            eff = ((L.get("effective") or {}).get("ranks") or {}).get(HEADLINE_KEY)
            if eff is None:
                continue
            d["eff"].append(int(eff))
            w = L.get("w") or {}
            if w.get("fro_norm"):
                d["w"].append(int((w.get("ranks") or {}).get(HEADLINE_KEY, 0)))
            d["full"].append(min(L.get("shape") or [0]))
    out = [
        (row, float(statistics.median(d["eff"])), median_or_none(d["w"]), max(d["full"]), len(d["eff"]))
        for row, d in by_row.items()
        if d["eff"]
    ]
    return sorted(out, key=lambda x: (-x[1], x[0]))


def _methods_row(ev: Evidence) -> AuditRow | None:
    ranks = method_ranks(ev)
    if not ranks:
        return None
    dl = [r for r in ev.records if r["method"] == "delta_lora" and _in_study(r) and rank_layers(r)]
    layers = [
        (int(L["w"]["ranks"][HEADLINE_KEY]), int(two_r))
        for r in dl
        for L in rank_layers(r).values()
        if (L.get("w") or {}).get("fro_norm") and (two_r := two_r_of(r, L)) is not None
    ]
    evid = (
        f"median numerical rank at {HEADLINE_KEY} of each method's effective update (W_T - W_0 with "
        "the adapter), highest first: "
        + "; ".join(
            f"{LABELS.get(row, row)} {eff:g}/{full}" + (f" (W itself {w:g})" if w is not None else "")
            for row, eff, w, full, _ in ranks
        )
    )
    return audit_row(
        ev,
        CLAIM_1A,
        "methods",
        "detail",
        "rank comparison across methods (modern-baselines study, every learning rate and seed): the "
        "verdict applies claim 1a's rule to the study's Delta-LoRA runs",
        evid,
        rules.rule_high_rank(layers),
        records_scale(ev, [r for r in ev.records if _in_study(r)]),
        {"method_ranks": ranks},
    )


def assess_rank(ev: Evidence, s: Settings) -> list[AuditRow]:
    # claims 1a and 1b on the tables' runs; the modern-baselines study enters as the cross-method row
    methods_row = _methods_row(ev)
    ev_records = [r for r in ev.records if not _in_study(r)]
    dl = [r for r in ev_records if r["method"] == "delta_lora" and rank_layers(r)]
    skipped = [r for r in dl if (r.get("delta_lora") or {}).get("switched") is False]
    dl = [r for r in dl if r not in skipped]
    ft = [r for r in ev_records if r["method"] == "full_ft" and rank_layers(r)]
    lora = [r for r in ev_records if r["method"] == "lora" and rank_layers(r)]
    rows: list[AuditRow] = []
    layers_all: list[tuple[int, int]] = []
    per_task: dict[str, dict[str, Any]] = {}
    for rec in dl:
        t = per_task.setdefault(
            rec["task"],
            {
                "layers": [],
                "runs": 0,
                "ranks": {k: [] for k in RANK_KEYS},
                "eff_ranks": {k: [] for k in RANK_KEYS},
                "two_r": set(),
                "dims": set(),
                "spectra": [],
            },
        )
        t["runs"] += 1
        for name, L in rank_layers(rec).items():
            w = L.get("w") or {}
            two_r = two_r_of(rec, L)
            rank = (w.get("ranks") or {}).get(HEADLINE_KEY)
            if two_r is None or rank is None or not w.get("fro_norm"):
                continue  # a zero update (W never moved) says nothing about its rank
            t["layers"].append((int(rank), int(two_r)))
            t["two_r"].add(int(two_r))
            t["dims"].add(min(L.get("shape") or [0]))
            for k in RANK_KEYS:
                if k in (w.get("ranks") or {}):
                    t["ranks"][k].append(int(w["ranks"][k]))
                if k in ((L.get("effective") or {}).get("ranks") or {}):
                    t["eff_ranks"][k].append(int(L["effective"]["ranks"][k]))
            t["spectra"].append(
                {
                    "run": f"{rec.get('row')} seed {rec['seed']}",
                    "layer": name,
                    "two_r": two_r,
                    "sv": w.get("singular_values") or [],
                }
            )
    ft_tasks: dict[str, dict[str, Any]] = {}
    for rec in ft:
        f = ft_tasks.setdefault(
            rec["task"], {"ranks": {k: [] for k in RANK_KEYS}, "dims": set(), "spectra": []}
        )
        for name, L in rank_layers(rec).items():
            w = L.get("w") or {}
            for k in RANK_KEYS:
                if k in (w.get("ranks") or {}):
                    f["ranks"][k].append(int(w["ranks"][k]))
            f["dims"].add(min(L.get("shape") or [0]))
            f["spectra"].append(
                {"run": f"full_ft seed {rec['seed']}", "layer": name, "sv": w.get("singular_values") or []}
            )
    lora_eff = {}
    for rec in lora:
        for L in rank_layers(rec).values():
            k = (L.get("effective") or {}).get("ranks", {}).get(HEADLINE_KEY)
            if k is not None:
                lora_eff.setdefault(rec["task"], []).append(int(k))

    def describe(task_layers, ranks, two_rs, ft_info, eff) -> str:
        if not task_layers:
            return "no measured layer"
        above = sum(r > tr for r, tr in task_layers)
        parts = [
            f"rank of W_T - W_0 at {HEADLINE_KEY}: median "
            f"{median_or_none([r for r, _ in task_layers]):g} (min {min(r for r, _ in task_layers)}, "
            f"max {max(r for r, _ in task_layers)}) over "
            f"{len(task_layers)} layer-runs; 2r = {'/'.join(map(str, sorted(two_rs)))}; "
            f"{above}/{len(task_layers)} layers above 2r"
        ]
        other = [f"{k}: {median_or_none(ranks[k]):g}" for k in RANK_KEYS if k != HEADLINE_KEY and ranks[k]]
        if other:
            parts.append("median rank at other thresholds " + ", ".join(other))
        if eff:
            parts.append(f"effective update (W change + branch) median rank {median_or_none(eff):g}")
        if ft_info:
            parts.append(ft_info)
        return "; ".join(parts)

    def ft_text(tasks: Sequence[str]) -> str:
        vals = [v for t in tasks if t in ft_tasks for v in ft_tasks[t]["ranks"][HEADLINE_KEY]]
        dims = sorted({d for t in tasks if t in ft_tasks for d in ft_tasks[t]["dims"]})
        if not vals:
            return "full fine-tuning update rank: not measured (no full_ft record with analysis.update_rank)"
        return (
            f"full fine-tuning's W_T - W_0 median rank at {HEADLINE_KEY}: {median_or_none(vals):g} "
            f"(min(out, in) = {'/'.join(map(str, dims))})"
        )

    for task in sorted(per_task, key=task_sort_key):
        t = per_task[task]
        v = rules.rule_high_rank(t["layers"])
        layers_all += t["layers"]
        rows.append(
            audit_row(
                ev,
                CLAIM_1A,
                task,
                "detail",
                f"{task_label(task)}: {CLAIM_1A.test}",
                describe(t["layers"], t["ranks"], t["two_r"], ft_text([task]), t["eff_ranks"][HEADLINE_KEY]),
                v,
                records_scale(ev, [r for r in dl if r["task"] == task]),
                {
                    "task": task,
                    "spectra": t["spectra"],
                    "ft_spectra": ft_tasks.get(task, {}).get("spectra", []),
                    "ranks": t["ranks"],
                    "ft_ranks": ft_tasks.get(task, {}).get("ranks"),
                    "lora_eff": lora_eff.get(task, []),
                },
            )
        )
    if dl:
        all_ranks = {k: [x for t in per_task.values() for x in t["ranks"][k]] for k in RANK_KEYS}
        all_eff = [x for t in per_task.values() for x in t["eff_ranks"][HEADLINE_KEY]]
        two_rs = {x for t in per_task.values() for x in t["two_r"]}
        evid = describe(layers_all, all_ranks, two_rs, ft_text(list(per_task)), all_eff)
        evid = f"{len(dl)} Delta-LoRA run(s) in {len(per_task)} task(s); " + evid
    else:
        evid = (
            "no evidence: no Delta-LoRA record with analysis.update_rank (run with --set "
            "analysis.update_rank=true)"
            + (f"; {len(skipped)} run(s) never switched the W update on" if skipped else "")
        )
    rows.insert(
        0,
        audit_row(
            ev,
            CLAIM_1A,
            "",
            "claim",
            CLAIM_1A.test,
            evid,
            rules.rule_high_rank(layers_all),
            records_scale(ev, dl),
            {"tasks": list(per_task)},
        ),
    )

    # 1b: telescoping identity on inplace runs
    errs: list[tuple[float, int]] = []
    err_runs = []
    for rec in ev_records:
        if rec["method"] != "delta_lora":
            continue
        for L in rank_layers(rec).values():
            e = L.get("telescoping_rel_err")
            tr = two_r_of(rec, L)
            if e is not None and tr is not None:
                errs.append((float(e), int(tr)))
                err_runs.append(rec)
    if errs:
        tol = min(rules.telescoping_tolerance(tr) for _, tr in errs)
        es = [e for e, _ in errs]
        n_runs = len({id(r) for r in err_runs})
        evid = (
            f"{len(errs)} layers of {n_runs} inplace run(s): relative error median "
            f"{statistics.median(es):.2e}, max {max(es):.2e}; tolerance {tol:.2e} "
            f"({rules.HEADLINE_RANK_THRESHOLD:g}/sqrt(2r))"
        )
    else:
        evid = (
            "no evidence: no inplace-engine record with telescoping_rel_err (row delta_lora_inplace with "
            "analysis.update_rank=true, run past K)"
        )
    rows.insert(
        1,
        audit_row(
            ev,
            CLAIM_1B,
            "",
            "claim",
            CLAIM_1B.test,
            evid,
            rules.rule_telescoping(errs),
            records_scale(ev, list({id(r): r for r in err_runs}.values())),
            {"errors": [e for e, _ in errs]},
        ),
    )
    return rows + ([methods_row] if methods_row else [])


FAMILY = ClaimFamily(
    section="1",
    title='Claim 1: "fine-tunes high-rank parameters"',
    claims=(CLAIM_1A, CLAIM_1B),
    assess=assess_rank,
)
