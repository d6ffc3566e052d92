"""The rank ablation: scores over r, and the measured rank of the update beside 2r."""

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from ... import smoke
from ...records import RecordError
from ..tables import (
    ROW_LABELS,
    fmt,
    load_records,
    markdown_table,
    provenance_lines,
    seed_stats,
    write_outputs,
)
from .common import (
    LORA_METHODS,
    RANK_THRESHOLD,
    _fixed_hp,
    _frame,
    _hp,
    _keys,
    _metric_names,
    _metrics_line,
    _not_comparable,
    _only_methods,
    _plots_section,
    _rel,
    _task_header,
    _tasks,
)


# --------------------------------------------------------------------------- rank
def _rank_values(rec: dict[str, Any], threshold: str) -> list[dict[str, Any]]:
    ur = (rec.get("analysis") or {}).get("update_rank")
    if not ur or not ur.get("layers"):
        raise RecordError(
            f"{rec['_path']}: no analysis.update_rank in the record; the rank ablation needs runs with "
            "analysis.update_rank: true"
        )
    out = []
    for name, e in ur["layers"].items():
        try:
            out.append(
                {
                    "layer": name,
                    "w": int(e["w"]["ranks"][threshold]),
                    "effective": int(e["effective"]["ranks"][threshold]),
                    "two_r": e.get("two_r"),
                }
            )
        except KeyError:
            raise RecordError(f"{rec['_path']}: layer {name} has no rank at threshold {threshold}") from None
    return out


def rank_table(
    records: Sequence[dict[str, Any]], *, threshold: str = RANK_THRESHOLD
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(table, long frame): rows = (method, r); scores as in `dropout_table`, plus the measured ranks.

    eff_rank / w_rank: median over (task, seed, layer) of the numerical rank of the effective update and of
    W_T - W_0 at the relative threshold; _min/_max beside them; two_r: 2r as recorded by the analysis.
    """
    _only_methods(records, LORA_METHODS, "rank")
    df = _frame(
        records,
        {"r": lambda r: int(_hp(r, "r"))},
        lambda r: f"{ROW_LABELS.get(r['method'], r['method'])}, r={int(_hp(r, 'r'))}",
    )
    ranks = pd.DataFrame(
        [
            {"method": r["method"], "r": int(_hp(r, "r")), **v}
            for r in records
            for v in _rank_values(r, threshold)
        ]
    )
    tasks = _tasks(df)
    rows = []
    keys = _keys(df, "r")
    for method, r in keys:
        sub = df[(df["method"] == method) & (df["r"] == r)]
        rk = ranks[(ranks["method"] == method) & (ranks["r"] == r)]
        two_r = sorted({int(v) for v in rk["two_r"].dropna()})
        if two_r and two_r != [2 * r]:
            raise RecordError(f"{method} r={r}: the analysis recorded 2r = {two_r}, not {2 * r}")
        rows.append(
            {
                "row": f"{ROW_LABELS.get(method, method)}, r={r}",
                "method": method,
                "r": r,
                **seed_stats(sub, tasks),
                "eff_rank": float(rk["effective"].median()),
                "eff_rank_min": int(rk["effective"].min()),
                "eff_rank_max": int(rk["effective"].max()),
                "w_rank": float(rk["w"].median()),
                "w_rank_min": int(rk["w"].min()),
                "w_rank_max": int(rk["w"].max()),
                "two_r": 2 * r,
                "n_layers": int(rk["layer"].nunique()),
                "rank_threshold": float(threshold),
            }
        )
    return pd.DataFrame(rows), df


def collect_rank(
    records: Sequence[str | os.PathLike],
    out_csv: str | os.PathLike,
    *,
    profile: str,
    plots_dir: str | os.PathLike | None = None,
    threshold: str = RANK_THRESHOLD,
) -> Path:
    """results/ablation_rank.{csv,md} (+ plot): LoRA and Delta-LoRA over r, scores and measured update "
    "rank."""
    recs = load_records(records, profile=profile)
    table, df = rank_table(recs, threshold=threshold)
    out_csv = Path(out_csv)
    tasks = _tasks(df)
    metrics = _metric_names(df, tasks)
    plots: list[str] = []
    if plots_dir is not None:
        plots += _rank_plot(
            table, tasks, metrics, profile=profile, threshold=threshold, base=Path(plots_dir) / out_csv.stem
        )
    cols = [*tasks, "avg"]

    def rng(r: pd.Series, k: str) -> str:
        return f"{r[k]:g} ({r[k + '_min']}-{r[k + '_max']})"

    body = [
        [
            ROW_LABELS.get(r["method"], r["method"]),
            str(r["r"]),
            *[fmt(r[c], r[f"{c}_std"]) for c in cols],
            rng(r, "eff_rank"),
            rng(r, "w_rank"),
            str(r["two_r"]),
            str(r["n_seeds"]),
        ]
        for _, r in table.iterrows()
    ]
    lines = [
        f"# Ablation: LoRA rank r, LoRA and Delta-LoRA ({smoke.label(profile)})",
        "",
        *provenance_lines(recs, profile),
        "- Rows: method x rank r (`config.hp.r`). The paper tried r = 8 only.",
        "- Score cells: median over seeds of each run's best-epoch score ± sample std over seeds; Avg: mean "
        "of the task medians ± std over seeds of the per-seed average.",
        _metrics_line(metrics),
        f"- Measured rank: numerical rank #{{i : sigma_i > {float(threshold):g} * sigma_1}} (relative to "
        "the largest singular value, SVD in float64 of the out x in update, `deltalora.analysis`) of the "
        "final update of each adapted layer; median over layers, tasks and seeds (min-max in brackets).",
        "  - effective: W_T - W_0 + (adapter contribution), the layer's whole change: <= r for LoRA, <= 2r "
        "for Delta-LoRA (telescoping, docs/design.md §2).",
        "  - W: W_T - W_0, Algorithm 1's change of the pretrained weight: 0 for LoRA, <= 2r for Delta-LoRA.",
        f"- Other hyper-parameters: {_fixed_hp(recs, ('alpha', 'dropout', 'update_ratio', 'start_step'))}",
        "",
        markdown_table(
            [
                "Method",
                "r",
                *[_task_header(t) for t in tasks],
                "Avg",
                "rank effective",
                "rank W",
                "2r",
                "seeds",
            ],
            body,
        ),
    ]
    lines += _not_comparable(profile) + _plots_section(_rel(plots, out_csv))
    write_outputs(table, out_csv, "\n".join(lines))
    return out_csv


def _rank_plot(
    table: pd.DataFrame,
    tasks: Sequence[str],
    metrics: dict[str, str],
    *,
    profile: str,
    threshold: str,
    base: Path,
) -> list[str]:
    from ..plots import _grid, save

    panels = [*tasks, "avg", "rank"]
    fig, axes = _grid(len(panels))
    methods = [m for m in LORA_METHODS if m in set(table["method"])]
    rs = sorted(set(table["r"]))
    for ax, col in zip(axes, panels, strict=False):
        for i, m in enumerate(methods):
            sub = table[table["method"] == m].sort_values("r")
            label = ROW_LABELS.get(m, m)
            if col == "rank":
                ax.errorbar(
                    sub["r"],
                    sub["eff_rank"],
                    yerr=[sub["eff_rank"] - sub["eff_rank_min"], sub["eff_rank_max"] - sub["eff_rank"]],
                    marker="o",
                    capsize=3,
                    color=f"C{i}",
                    label=f"{label}: effective",
                )
                if m != "lora":
                    ax.plot(
                        sub["r"],
                        sub["w_rank"],
                        marker="s",
                        ls="--",
                        color=f"C{i}",
                        label=f"{label}: W_T - W_0",
                    )
            else:
                ax.errorbar(
                    sub["r"],
                    sub[col],
                    yerr=sub[f"{col}_std"].fillna(0),
                    marker="o",
                    capsize=3,
                    color=f"C{i}",
                    label=label,
                )
        ax.set_xscale("log", base=2)
        ax.set_xticks(rs)
        ax.set_xticklabels([str(r) for r in rs])
        ax.set_xlabel("LoRA rank r", fontsize=8)
        if col == "rank":
            ax.plot(rs, [2 * r for r in rs], color="k", lw=4, alpha=0.2, label="2r", zorder=1)
            ax.plot(rs, rs, color="k", lw=4, alpha=0.12, label="r", zorder=1)
            ax.set_yscale("log", base=2)
            ax.set_ylabel(f"numerical rank (sigma > {float(threshold):g} sigma_1)", fontsize=8)
            ax.set_title(f"Final update rank, median over layers ({profile})", fontsize=9)
            ax.legend(fontsize=6)
        else:
            ax.set_ylabel(
                f"{metrics[col]} (median over seeds)" if col != "avg" else "average over tasks", fontsize=8
            )
            ax.set_title(
                f"{_task_header(col) if col != 'avg' else 'Average'} ({profile} profile)", fontsize=9
            )
    axes[0].legend(fontsize=7)
    fig.suptitle(
        f"Rank ablation: best-epoch score ± std over seeds, and measured rank vs 2r - {profile} profile",
        fontsize=10,
    )
    fig.tight_layout()
    return save(fig, base)
