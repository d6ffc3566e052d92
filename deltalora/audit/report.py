"""The audit report: results/audit.md (a short report), results/audit.csv (one row per verdict), plots.

``build_audit`` is the single entry point; ``add_audit_command`` adds ``deltalora audit`` to a CLI.
"""

from __future__ import annotations

import argparse
import math
import os
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .. import smoke
from ..collect.tables import PROFILE_NOTE, markdown_table
from ..records import atomic_write_text
from . import rules
from .claims import CLAIMS, AuditRow, Settings, assess
from .evidence import Evidence, gather, task_label

CSV_COLUMNS = ("claim", "test", "evidence", "verdict", "profile", "rule", "scale", "id", "level", "mde",
               "seeds_needed", "seeds_needed_stated")
SECTIONS = (
    ("1", "Claim 1: \"fine-tunes high-rank parameters\"", ("1a", "1b")),
    ("2", "Claim 2: memory and compute comparable to LoRA", ("2",)),
    ("3", "Claim 3: dropout must be removed (gradient equivalence)", ("3a", "3b")),
    ("4", "Claim 4: Delta-LoRA outperforms LoRA, AdaLoRA and DyLoRA", ("4a", "4b", "4c", "4d")),
    ("5", "Claim 5: not \"LoRA with another learning rate\" (reviewers' controls)", ("5",)),
    ("6", "Claim 6: engine equivalence and bf16 precision", ("6a", "6b")),
    ("7", "Claim 7: Delta-LoRA on a 4-bit base (QLoRA)", ("7",)),
)
VERDICT_MEANING = {
    rules.SUPPORTED: "the measured numbers meet the claim's criterion (a statistical claim: in its "
                     "direction, at the stated confidence)",
    rules.REFUTED: "the measured numbers meet the criterion of the claim's negation: the evidence "
                   "contradicts it",
    rules.NOT_SUPPORTED: "the evidence is adequate for the test but meets neither criterion: the claim is "
                         "not shown, nor its negation (absence of a demonstrated effect, not evidence "
                         "against it)",
    rules.INCONCLUSIVE: "the test could not decide: evidence missing, incomplete, or too small (e.g. too few "
                        "seeds for an exact test to reach p < alpha); the reason is in the evidence",
}


def regenerate_command(profile: str, target: str = "results/audit.md") -> str:
    return f"snakemake --cores all {target} --configfile workflow/config/{profile}.yaml"


# --------------------------------------------------------------------------- entry point
def build_audit(
    records: Iterable[str | os.PathLike],
    *,
    profile: str,
    memory_csv: str | os.PathLike | None = None,
    dropout_csv: str | os.PathLike | None = None,
    cosines_csv: str | os.PathLike | None = None,
    out_md: str | os.PathLike = "results/audit.md",
    out_csv: str | os.PathLike | None = None,
    plots_dir: str | os.PathLike | None = None,
    settings: Settings | None = None,
    target: str = "results/audit.md",
) -> list[dict[str, Any]]:
    """Test every claim on the evidence; write audit.md and audit.csv (atomically) and the plots.

    Returns the CSV rows (dicts with ``CSV_COLUMNS``). Records of another profile are refused
    (RecordError); an absent or unreadable CSV makes the claims that need it inconclusive.
    """
    started = time.time()
    settings = settings or Settings()
    ev = gather(
        records, profile=profile, memory_csv=memory_csv, dropout_csv=dropout_csv, cosines_csv=cosines_csv
    )
    rows = assess(ev, settings)
    out_md = Path(out_md)
    out_csv = Path(out_csv) if out_csv is not None else out_md.with_suffix(".csv")
    plots: dict[str, list[str]] = {}
    if plots_dir is not None:
        plots = make_plots(rows, ev, Path(plots_dir))
    rel = {k: [os.path.relpath(p, out_md.parent) for p in v if p.endswith(".png")] for k, v in plots.items()}
    table = [r.csv_dict() for r in rows]
    atomic_write_text(out_csv, pd.DataFrame(table, columns=list(CSV_COLUMNS)).to_csv(index=False))
    atomic_write_text(out_md, render_markdown(rows, ev, settings, plots=rel, target=target,
                                              seconds=time.time() - started).rstrip() + "\n")
    return table


# --------------------------------------------------------------------------- markdown
def _esc(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _short(text: str, n: int = 170) -> str:
    text = str(text)
    return text if len(text) <= n else text[: n - 1].rstrip() + "…"


def _inputs(ev: Evidence) -> list[str]:
    lines = []
    if ev.records:
        tasks = sorted({r["task"] for r in ev.records})
        rows = sorted({r.get("row") or r["method"] for r in ev.records})
        seeds = sorted({r["seed"] for r in ev.records}, key=str)
        commits = sorted({str((r.get("provenance") or {}).get("git_commit"))[:10] for r in ev.records})
        lines.append(f"- Run records: {len(ev.records)} ({len(tasks)} tasks: "
                     f"{', '.join(task_label(t) for t in tasks)}; rows: {', '.join(rows)}; seeds: "
                     f"{', '.join(map(str, seeds))}; git commit(s): {', '.join(commits)})")
    else:
        lines.append(f"- Run records: none ({ev.absent.get('records', 'not given')})")
    for name, label in (("memory", "Memory table"), ("dropout_summary", "Dropout ablation summary"),
                        ("cosines", "Gradient cosines")):
        if name in ev.absent:
            lines.append(f"- {label}: absent ({ev.absent[name]})")
        else:
            lines.append(f"- {label}: {ev.sources.get(name)}")
    return lines


def render_markdown(
    rows: Sequence[AuditRow],
    ev: Evidence,
    settings: Settings,
    *,
    plots: dict[str, list[str]],
    target: str = "results/audit.md",
    seconds: float | None = None,
) -> str:
    cmd = regenerate_command(ev.profile, target)
    claim_rows = [r for r in rows if r.level == "claim"]
    lines = [
        f"# Audit of the Delta-LoRA paper's claims ({smoke.label(ev.profile)})",
        "",
        f"- Profile: **{ev.profile}** ({PROFILE_NOTE.get(ev.profile, '')})",
        *_inputs(ev),
        f"- Statistics: seed-paired differences; {settings.confidence:.0%} percentile bootstrap CI of the "
        f"mean ({settings.n_resamples:,} resamples, seed {settings.bootstrap_seed}); exact one-sided "
        f"Wilcoxon signed-rank (one task) or sign test (pooled over tasks) at alpha = {settings.alpha:g}. "
        f"Any decisive verdict on a comparison needs at least {_min_pairs(settings.alpha)} seed pairs.",
        f"- Regenerate: `{cmd}`",
        f"- Generated {time.strftime('%Y-%m-%d %H:%M:%S %Z')} by `deltalora audit` from the inputs above"
        + (f" in {seconds:.1f} s" if seconds is not None else ""),
        "",
        "## Summary",
        "",
        markdown_table(
            ["#", "Claim (where)", "Verdict", "Key evidence", "MDE (points)", "Seeds for 1 pt", "Scale"],
            [
                [
                    r.claim_id,
                    _esc(CLAIMS[r.claim_id].text),
                    f"**{r.verdict}**" + (" (proxy scale)" if r.scale.startswith("proxy scale") else ""),
                    _esc(_short(r.evidence)),
                    *_power_cells(r),
                    _esc(_short(r.scale, 90)),
                ]
                for r in claim_rows
            ],
        ),
        "",
        "Verdicts: " + "; ".join(f"**{k}**: {v}" for k, v in VERDICT_MEANING.items()) + ".",
    ]
    if ev.profile != "paper":
        lines += ["", f"> {ev.profile} profile: verdicts on model comparisons are **proxy-scale evidence** "
                      "(small "
                  "models on generated proxy data), not a verdict on the paper. Run the paper profile for "
                  "that."]
    for p in plots.get("summary", []):
        lines += ["", f"![{Path(p).stem}]({p})"]
    for sec, title, ids in SECTIONS:
        lines += ["", f"## {title}", ""]
        for cid in ids:
            c = CLAIMS[cid]
            head = next((r for r in rows if r.claim_id == cid and r.level == "claim"), None)
            if head is None:
                continue
            lines += [f"### {cid}. {c.text}", "",
                      f"- Where: {c.where}",
                      f"- Test: {head.test}",
                      f"- Rule: {head.rule}",
                      f"- Evidence: {head.evidence}",
                      f"- Scale: {head.scale}",
                      f"- **Verdict: {head.verdict}**", ""]
            lines += _section_extra(
                cid, head, [r for r in rows if r.claim_id == cid and r.level == "detail"], ev
            )
        for p in plots.get(sec, []):
            lines += ["", f"![{Path(p).stem}]({p})"]
        lines += ["", f"Regenerate: `{cmd}`"]
    return "\n".join(lines)


def _min_pairs(alpha: float) -> int:
    from .stats import min_pairs_for

    return min_pairs_for(alpha, "greater")


def _detail_table(details: Sequence[AuditRow]) -> list[str]:
    if not details:
        return []
    return [markdown_table(["Test", "Evidence", "Verdict", "MDE (points)", "Seeds for 1 pt"],
                           [[_esc(d.test), _esc(d.evidence), d.verdict, *_power_cells(d)] for d in details]), ""]


def _power_cells(r: AuditRow) -> list[str]:
    """MDE at the pairs run and seeds (per task) for 1 point, from audit/power.py; '-' where no comparison."""
    if r.mde is None:
        return ["-", "-"]
    mde = "none" if math.isinf(r.mde) else f"{r.mde:.2f}"
    need = "-" if r.seeds_needed is None else str(r.seeds_needed)
    if r.seeds_needed_stated is not None:
        need += f" ({r.seeds_needed_stated} for the stated size)"
    return [mde, need]


def _section_extra(cid: str, head: AuditRow, details: Sequence[AuditRow], ev: Evidence) -> list[str]:
    out: list[str] = []
    if cid == "1a":
        out += ["Telescoping identity (docs/design.md §2): summing Algorithm 1's W updates from t = K+1 to T-1 "
                "gives W_T - W_0 = lambda s (B_T A_T - B_(K+1) A_(K+1)), a difference of two rank-r "
                "products, so rank(W_T - W_0) <= 2r whatever the optimizer does. Numerical rank = #{sigma_i "
                "> tau sigma_1}; thresholds 1e-2, 1e-3 (headline), 1e-4, 1e-6. Below ~1e-4 float32 rounding "
                "of the in-place W writes shows up as a full-rank floor, which is why the headline is "
                "1e-3.", ""]
        rows = []
        for d in details:
            r, fr = d.data.get("ranks") or {}, d.data.get("ft_ranks") or {}
            rows.append(
                [
                    task_label(d.data["task"]),
                    *[_med(r.get(k)) for k in ("0.01", "0.001", "0.0001", "1e-06")],
                    _med(fr.get("0.001")),
                    _med(d.data.get("lora_eff")),
                    d.verdict,
                ]
            )
        if rows:
            out += [markdown_table(["Task", "rank@1e-2", "rank@1e-3", "rank@1e-4", "rank@1e-6",
                                    "full FT rank@1e-3", "LoRA effective rank@1e-3", "Verdict"], rows), "",
                    "(medians over layers and runs of W_T - W_0 of Delta-LoRA, unless stated)", ""]
    elif cid == "2":
        table = (head.data or {}).get("table") or []
        if table:
            out += [
                markdown_table(
                    ["model", "dtype", "config", "peak / LoRA", "step / LoRA"],
                    [
                        [t["model"], t["dtype"], t["config"], _num(t["peak_ratio"]), _num(t["step_ratio"])]
                        for t in table
                    ],
                ),
                "",
            ]
        out += _detail_table(details)
    elif cid == "4a":
        out += _detail_table([d for d in details if d.id.count(".") == 1])  # pooled per baseline
        out += _detail_table([d for d in details if d.id.count(".") >= 2])  # per task
    elif cid == "5":
        out += _detail_table(details)
        for d in details:
            cmp = d.data.get("cmp")
            if cmp is None or not cmp.extra.get("per_control"):
                continue
            pc = cmp.extra["per_control"]
            out += [
                f"{task_label(d.data['task'])}: Delta-LoRA minus each control ({cmp.extra.get('split')}):",
                "",
                markdown_table(
                    ["control", f"median ({cmp.extra.get('selected_on', 'validation')}, selection)",
                     "mean diff [CI] (validation)", "verdict of the gain rule"],
                    [
                        [
                            r,
                            _num(cmp.extra["medians"].get(r)),
                            c.ci.describe() if c.ci else "-",
                            rules.rule_paired_gain(c, alpha=c.alpha)[0],
                        ]
                        for r, c in pc.items()
                    ],
                ),
                "",
            ]
    elif cid == "6a":
        pairs = (head.data or {}).get("pairs") or []
        if pairs:
            out += [
                markdown_table(
                    ["task", "seed", "folded", "inplace", "abs. difference", "tolerance (100/n_val)"],
                    [
                        [
                            task_label(p["task"]),
                            str(p["seed"]),
                            _num(p["folded"]),
                            _num(p["inplace"]),
                            _num(abs(p["folded"] - p["inplace"]), 3),
                            _num(p["tol"], 3),
                        ]
                        for p in pairs
                    ],
                ),
                "",
                "Tolerance: the engines are equal in exact arithmetic; in float32 their rounding differs, "
                "which can flip borderline validation examples. One flipped example moves accuracy by "
                "100/n_val points, the resolution of the metric; pairs further apart than that differ by "
                "more than rounding can explain at the metric's resolution.",
                "",
            ]
    else:
        out += _detail_table(details)
    return out


def _med(vals: Any) -> str:
    if not vals:
        return "-"
    return f"{float(np.median(vals)):g}"


def _num(v: Any, digits: int = 2) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    return f"{float(v):.{digits}f}"


# --------------------------------------------------------------------------- plots
def _plt():
    from ..collect.plots import _plt as plt_

    return plt_()


def make_plots(rows: Sequence[AuditRow], ev: Evidence, plots_dir: Path) -> dict[str, list[str]]:
    """One figure per section where a plot says more than the table; PNG + PDF. Returns section -> paths."""
    from ..collect.plots import save

    out: dict[str, list[str]] = {}
    figs = (("summary", _plot_forest),
            ("1", _plot_spectra), ("2", _plot_memory), ("3", _plot_cosines), ("3", _plot_dropout_scores),
            ("4", _plot_baselines), ("5", _plot_controls), ("6", _plot_engines))
    for sec, fn in figs:
        fig_name = fn(rows, ev)
        if fig_name is None:
            continue
        fig, name = fig_name
        out.setdefault(sec, []).extend(save(fig, plots_dir / name))
    return out


def _plot_forest(rows, ev):
    from .forest import claims_forest

    fig = claims_forest(rows, ev.profile)
    return None if fig is None else (fig, "audit_forest")


def _plot_spectra(rows, ev):
    details = [r for r in rows if r.claim_id == "1a" and r.level == "detail" and r.data.get("spectra")]
    if not details:
        return None
    plt = _plt()
    n = len(details)
    cols = min(4, n)
    nrows = int(math.ceil(n / cols))
    fig, axes = plt.subplots(nrows, cols, figsize=(3.8 * cols, 3.2 * nrows), squeeze=False)
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    for ax, d in zip(axes.flat, details, strict=False):
        two_r = None
        for i, sp in enumerate(d.data["spectra"][:12]):
            sv = np.asarray(sp["sv"], dtype=float)
            if sv.size == 0 or sv[0] <= 0:
                continue
            ax.semilogy(
                np.arange(1, sv.size + 1),
                np.maximum(sv / sv[0], 1e-16),
                color="C0",
                lw=0.8,
                alpha=0.7,
                label="Delta-LoRA W_T - W_0" if i == 0 else None,
            )
            two_r = sp.get("two_r")
        for i, sp in enumerate((d.data.get("ft_spectra") or [])[:6]):
            sv = np.asarray(sp["sv"], dtype=float)
            if sv.size and sv[0] > 0:
                ax.semilogy(
                    np.arange(1, sv.size + 1),
                    np.maximum(sv / sv[0], 1e-16),
                    color="C1",
                    lw=0.8,
                    ls="--",
                    alpha=0.7,
                    label="full FT W_T - W_0" if i == 0 else None,
                )
        if two_r:
            ax.axvline(two_r, color="k", lw=0.8, label=f"2r = {two_r}")
        for t in (1e-2, 1e-3, 1e-4, 1e-6):
            ax.axhline(t, color="grey", lw=0.5, ls=":" if t != 1e-3 else "-")
        ax.set_xlabel("singular value index i")
        ax.set_ylabel("sigma_i / sigma_1")
        ax.set_title(f"{task_label(d.data['task'])}: spectrum of W_T - W_0 ({ev.profile})", fontsize=9)
        ax.legend(fontsize=6)
    fig.suptitle("Singular values of the W update vs 2r (grey: thresholds, solid 1e-3 headline) - "
                 f"{ev.profile} profile",
                 fontsize=10)
    fig.tight_layout()
    return fig, "audit_rank_spectra"


def _plot_memory(rows, ev):
    head = next((r for r in rows if r.claim_id == "2" and r.level == "claim"), None)
    table = (head.data or {}).get("table") if head else None
    if not table:
        return None
    plt = _plt()
    groups = list(dict.fromkeys((t["model"], t["dtype"]) for t in table))
    configs = ["full_ft", "inplace", "folded", "naive"]
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.6))
    width = 0.8 / len(configs)
    for k, (col, title) in enumerate((("peak_ratio", "peak memory / LoRA"), ("step_ratio", "median step time "
                                                                                           "/ LoRA"))):
        ax = axes[k]
        for i, c in enumerate(configs):
            vals = [
                next((t[col] for t in table if (t["model"], t["dtype"]) == g and t["config"] == c), None)
                for g in groups
            ]
            ax.bar(
                [g + i * width for g in range(len(groups))],
                [v if v is not None else 0 for v in vals],
                width=width,
                label=c,
                color=f"C{i}",
            )
        ax.axhline(1.0, color="k", lw=0.8)
        ax.axhline(rules.COMPARABLE_RATIO, color="k", lw=0.8, ls="--")
        ax.set_xticks([g + width * (len(configs) - 1) / 2 for g in range(len(groups))])
        ax.set_xticklabels([f"{m}\n{d}" for m, d in groups], fontsize=8)
        ax.set_ylabel(title)
        ax.set_title(f"{title} ({ev.profile} profile)", fontsize=9)
    axes[0].legend(fontsize=7)
    fig.suptitle(f"Claim 2: cost relative to LoRA (dashed: 'comparable' = {rules.COMPARABLE_RATIO}x) - "
                 f"{ev.profile} profile", fontsize=10)
    fig.tight_layout()
    return fig, "audit_memory"


def _plot_cosines(rows, ev):
    if ev.cosines is None:
        return None
    plt = _plt()
    cos = ev.cosines
    groups = sorted({(str(m), float(p)) for m, p in zip(cos["method"], cos["dropout"], strict=True)})
    data = [
        np.maximum(
            1 - cos[(cos["method"].astype(str) == m) & (cos["dropout"] == p)]["cosine"].to_numpy(), 1e-12
        )
        for m, p in groups
    ]
    fig, ax = plt.subplots(figsize=(1.6 * len(groups) + 2.5, 3.4))
    ax.boxplot(data)
    ax.set_xticks(range(1, len(groups) + 1))
    ax.set_xticklabels([f"{m}\ndropout {p:g}" for m, p in groups], fontsize=8)
    ax.set_yscale("log")
    ax.axhline(
        rules.COSINE_EQUAL_EPS, color="k", lw=0.8, ls=":", label=f"1 - cos = {rules.COSINE_EQUAL_EPS:g}"
    )
    ax.axhline(
        rules.COSINE_BROKEN_DELTA,
        color="k",
        lw=0.8,
        ls="--",
        label=f"1 - cos = {rules.COSINE_BROKEN_DELTA:g}",
    )
    ax.set_ylabel("1 - cosine(dL/dW, dL/d(BA))")
    ax.set_title(f"Claim 3a: gradient equivalence with/without dropout ({ev.profile} profile)", fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig, "audit_dropout_cosines"


def _forest(ax, entries, title: str, xlabel: str) -> None:
    """entries: (label, PairedComparison); per-seed differences as dots, mean and CI as a bar."""
    for i, (_label, cmp) in enumerate(entries):
        y = len(entries) - 1 - i
        d = cmp.diffs
        ax.plot(
            d,
            np.full(d.size, y) + np.linspace(-0.12, 0.12, d.size) if d.size > 1 else np.full(d.size, y),
            "o",
            ms=3,
            color="grey",
            alpha=0.7,
        )
        if cmp.ci is not None:
            ax.errorbar(
                [cmp.ci.estimate],
                [y],
                xerr=[[cmp.ci.estimate - cmp.ci.low], [cmp.ci.high - cmp.ci.estimate]],
                fmt="s",
                color="C0" if cmp.ci.low > 0 else "C3" if cmp.ci.high < 0 else "k",
                ms=5,
                capsize=3,
            )
    ax.axvline(0, color="k", lw=0.8)
    ax.set_yticks(range(len(entries)))
    ax.set_yticklabels([e[0] for e in reversed(entries)], fontsize=8)
    ax.set_xlabel(xlabel, fontsize=8)
    ax.set_title(title, fontsize=9)


def _forest_figure(panels, suptitle: str, name: str):
    panels = [(t, e, x) for t, e, x in panels if e]
    if not panels:
        return None
    plt = _plt()
    h = max(len(e) for _, e, _ in panels)
    fig, axes = plt.subplots(1, len(panels), figsize=(4.6 * len(panels), 0.45 * h + 1.8), squeeze=False)
    for ax, (title, entries, xlabel) in zip(axes[0], panels, strict=True):
        _forest(ax, entries, title, xlabel)
    fig.suptitle(suptitle, fontsize=10)
    fig.tight_layout()
    return fig, name


def _entries(rows, claim_id: str, pred) -> list[tuple[str, Any]]:
    out = []
    for r in rows:
        if r.claim_id == claim_id and pred(r) and r.data.get("cmp") is not None and r.data["cmp"].n:
            label = task_label(r.data["task"]) if r.data.get("task") else "pooled (all tasks)"
            metric = f" ({r.data['metric']})" if r.data.get("metric") else ""
            out.append((label + metric, r.data["cmp"]))
    return out


def _plot_baselines(rows, ev):
    panels = []
    for base, label in (("lora", "LoRA"), ("adalora", "AdaLoRA"), ("dylora", "DyLoRA")):
        e = _entries(rows, "4a", lambda r, b=base: r.data.get("baseline") == b and r.level == "detail")
        e = [x for x in e if not x[0].startswith("pooled")] + [x for x in e if x[0].startswith("pooled")]
        panels.append((f"Delta-LoRA - {label} ({ev.profile})", e, "paired difference, main metric of each "
                                                                  "task (points)"))
    return _forest_figure(panels, "Claim 4: seed-paired differences per task, mean with "
                                  f"{1 - rules.ALPHA:.0%} bootstrap "
                          f"CI (dots: seeds) - {ev.profile} profile", "audit_baselines")


def _plot_controls(rows, ev):
    e = _entries(rows, "5", lambda r: not r.data.get("matched_scale"))
    e = [x for x in e if not x[0].startswith("pooled")] + [x for x in e if x[0].startswith("pooled")]
    return _forest_figure([(f"Delta-LoRA - best LoRA control ({ev.profile})", e,
                            "paired difference, main metric (points)")],
                          f"Claim 5: Delta-LoRA against the best of the reviewers' controls - {ev.profile} "
                          "profile",
                          "audit_controls")


def _plot_dropout_scores(rows, ev):
    e = _entries(rows, "3b", lambda r: True)
    e = [x for x in e if not x[0].startswith("pooled")] + [x for x in e if x[0].startswith("pooled")]
    return _forest_figure(
        [(f"Delta-LoRA: no dropout - dropout ({ev.profile})", e, "paired difference (points)")],
        f"Claim 3b: score without minus with dropout - {ev.profile} profile",
        "audit_dropout_scores",
    )


def _plot_engines(rows, ev):
    head = next((r for r in rows if r.claim_id == "6a" and r.level == "claim"), None)
    pairs = (head.data or {}).get("pairs") if head else None
    if not pairs:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5.5, 3.4))
    labels = [f"{task_label(p['task'])} s{p['seed']}" for p in pairs]
    diffs = [abs(p["folded"] - p["inplace"]) for p in pairs]
    ax.bar(range(len(pairs)), diffs, color="C0", label="|folded - inplace|")
    ax.plot(range(len(pairs)), [p["tol"] for p in pairs], "k_", ms=14, label="tolerance 100/n_val")
    ax.set_xticks(range(len(pairs)))
    ax.set_xticklabels(labels, rotation=60, fontsize=7)
    ax.set_ylabel("|metric difference| (points)")
    ax.set_title(f"Claim 6a: folded vs inplace engine, main metric ({ev.profile} profile)", fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig, "audit_engines"


# --------------------------------------------------------------------------- CLI
def _read_list(path: str) -> list[str]:
    return [ln.strip() for ln in Path(path).read_text().splitlines() if ln.strip() and not ln.startswith("#")]


def _cmd_audit(args: argparse.Namespace) -> int:
    records = list(args.records or [])
    if args.records_from:
        records += _read_list(args.records_from)
    settings = Settings(alpha=args.alpha, n_resamples=args.resamples, bootstrap_seed=args.bootstrap_seed)
    table = build_audit(records, profile=args.profile, memory_csv=args.memory, dropout_csv=args.dropout,
                        cosines_csv=args.cosines, out_md=args.out, out_csv=args.csv, plots_dir=args.plots,
                        settings=settings)
    out_csv = args.csv or str(Path(args.out).with_suffix(".csv"))
    print(f"wrote {args.out} and {out_csv}")
    for r in table:
        if r["level"] == "claim":
            print(f"  {r['id']:<4} {r['verdict']:<14} {_short(CLAIMS[r['id'].split('.')[0]].text, 90)}")
    return 0


def add_audit_command(subparsers: Any) -> argparse.ArgumentParser:
    """Add `deltalora audit` to an argparse sub-parser collection; returns the new parser."""
    a = subparsers.add_parser(
        "audit", help="test the paper's claims on run records and measurements: results/audit.md + audit.csv",
        description="Test each claim of the Delta-LoRA paper with a stated rule on measured numbers; write a "
                    "short Markdown report (summary of verdicts first), a CSV with one row per verdict, and "
                    "plots. Absent measurements make the claims that need them inconclusive; records of "
                    "another profile are refused.")
    a.add_argument("records", nargs="*", help="run records (record.json)")
    a.add_argument("--records-from", default=None, help="a file listing run-record paths, one per line")
    a.add_argument("--profile", required=True, choices=["default", "paper"],
                   help="records of another profile are refused")
    a.add_argument("--memory", default=None, help="memory table CSV (deltalora bench memory)")
    a.add_argument("--dropout", default=None, help="dropout ablation summary CSV "
                                                   "(results/ablation_dropout.csv)")
    a.add_argument("--cosines", default=None, help="gradient cosines CSV "
                                                   "(results/ablation_dropout_cosines.csv)")
    a.add_argument("--out", default="results/audit.md", help="Markdown report path")
    a.add_argument("--csv", default=None, help="CSV path (default: the report's path with .csv)")
    a.add_argument("--plots", default=None, help="folder for the plots (PNG + PDF)")
    a.add_argument("--alpha", type=float, default=rules.ALPHA, help="significance level (CI at 1 - alpha)")
    a.add_argument("--resamples", type=int, default=10_000, help="bootstrap resamples")
    a.add_argument("--bootstrap-seed", type=int, default=0)
    a.set_defaults(func=_cmd_audit)
    return a
