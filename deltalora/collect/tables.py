"""Run records -> tables (CSV, Markdown, LaTeX), next to the papers' reported numbers.

Collectors read run records only (`deltalora.records.read_record` refuses truncated, incomplete or
foreign-schema files). Every cell is a statistic of record values: the median over seeds of each
run's score (at its best epoch, as the LoRA protocol scores, unless asked for the final epoch), with
the sample standard deviation (ddof=1) beside it.
"""

from __future__ import annotations

import collections
import math
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from .. import smoke
from ..records import RecordError, atomic_write_text, read_record

GLUE_ORDER = ("mnli", "sst2", "mrpc", "cola", "qnli", "qqp", "rte", "stsb")

ROW_LABELS = {
    "full_ft": "Full FT",
    "lora": "LoRA",
    "dylora": "DyLoRA",
    "adalora": "AdaLoRA",
    "dora": "DoRA",
    "delta_lora": "Delta-LoRA",
    "lora_scaled": "LoRA x(1+lambda) scale (control)",
    "lora_nodrop": "LoRA, no dropout (control)",
}

PROFILE_NOTE = {
    "default": "embedded profile: MiniLM / tiny GPT-2 and BART on generated proxy data, CPU. "
    "Shows the machinery at proxy scale; NOT comparable with the paper's numbers.",
    "paper": "paper profile: the paper's models and datasets from the Hugging Face hub.",
}


def profile_note(profile: str) -> str:
    """The line that says where a table's numbers come from (a smoke build says so, and from where)."""
    return smoke.profile_note(profile, PROFILE_NOTE.get(profile, ""))


def with_smoke_column(df: pd.DataFrame) -> pd.DataFrame:
    """`df` with a ``smoke`` column: every CSV row says whether it comes from a smoke build.

    Why a column: the Markdown, LaTeX and plot titles carry the smoke note, but a CSV is read by
    programs, which see rows and not titles.
    """
    return df.assign(smoke=smoke.active())


def load_records(paths: Iterable[str | os.PathLike], *, profile: str) -> list[dict[str, Any]]:
    """Read and check every record; refuse any from another profile, naming the file."""
    records = []
    for p in paths:
        rec = read_record(p)
        if rec["profile"] != profile:
            raise RecordError(
                f"{p}: record is from profile {rec['profile']!r}, this table is for {profile!r}; "
                "tables never mix profiles"
            )
        rec["_path"] = str(p)
        records.append(rec)
    if not records:
        raise RecordError("no run records given")
    smoke.check_records(records)
    return records


def score(rec: dict[str, Any], metric: str | None = None, *, which: str = "best") -> float:
    metric = metric or rec["metric"]
    entry = rec[which]
    if metric in entry["metrics"]:
        v = entry["metrics"][metric]
    else:
        raise RecordError(
            f"{rec.get('_path', '?')}: no {which}-epoch metric {metric!r}; it has {sorted(entry['metrics'])}"
        )
    return float("nan") if v is None else float(v)


def long_frame(records: Sequence[dict[str, Any]], *, which: str = "best") -> pd.DataFrame:
    """One row per run: task, row, method, seed, metric, value."""
    rows = []
    for r in records:
        task = r["task"].split("/", 1)[-1]
        rows.append(
            {
                "task": task,
                "row": r.get("row") or r["method"],
                "method": r["method"],
                "seed": r["seed"],
                "metric": r["metric"],
                "value": score(r, which=which),
                "path": r["_path"],
            }
        )
    df = pd.DataFrame(rows)
    dup = df[df.duplicated(["task", "row", "seed"], keep=False)]
    if not dup.empty:
        raise RecordError(f"two records for the same (task, row, seed): {sorted(dup['path'])[:4]}")
    return df


def _std(x: pd.Series) -> float:
    x = x.dropna()
    return float(x.std(ddof=1)) if len(x) > 1 else float("nan")


def seed_stats(sub: pd.DataFrame, tasks: Sequence[str]) -> dict[str, Any]:
    """Per-task median, std and count over seeds; the average of the task medians and its spread (std over
    seeds of the per-seed mean across tasks, over the seeds present for every task)."""
    out: dict[str, Any] = {}
    for t in tasks:
        vals = sub[sub["task"] == t]["value"]
        out[t] = float(vals.median()) if len(vals) else float("nan")
        out[f"{t}_std"] = _std(vals)
        out[f"{t}_n"] = int(vals.notna().sum())
    out["avg"] = float(pd.Series([out[t] for t in tasks]).mean())
    per_seed = sub.pivot_table(index="seed", columns="task", values="value")
    complete = per_seed.dropna()
    out["avg_std"] = _std(complete.mean(axis=1)) if len(complete.columns) == len(tasks) else float("nan")
    out["n_seeds"] = int(sub["seed"].nunique())
    return out


def glue_table(
    records: Sequence[dict[str, Any]], *, rows: Sequence[str] | None = None, which: str = "best"
) -> pd.DataFrame:
    """Rows x (8 tasks + average): median over seeds, with <task>_std and the seed count."""
    df = long_frame(records, which=which)
    rows = list(rows) if rows else list(dict.fromkeys(df["row"]))
    tasks = [t for t in GLUE_ORDER if t in set(df["task"])]
    out = []
    for row in rows:
        sub = df[df["row"] == row]
        if sub.empty:
            raise RecordError(f"no records for row {row!r}")
        rec: dict[str, Any] = {"row": row, "label": ROW_LABELS.get(row, row), "method": sub["method"].iloc[0]}
        rec.update(seed_stats(sub, tasks))
        out.append(rec)
    return pd.DataFrame(out)


# --------------------------------------------------------------------------- rendering
def fmt(v: Any, std: Any = None, digits: int = 1) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    s = f"{v:.{digits}f}"
    if std is not None and not (isinstance(std, float) and math.isnan(std)):
        s += f" ± {std:.{digits}f}"
    return s


def markdown_table(header: Sequence[str], body: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in body]
    return "\n".join(lines)


def paper_rows(
    paper_csv: str | os.PathLike | None, columns: Sequence[str], digits: Any = None
) -> tuple[list[list[str]], list[str]]:
    """The papers' reported rows (confirmed numbers only) and notes for the unconfirmed ones.

    digits: optional callable column -> decimals, so that numbers print as the paper prints them.
    """
    digits = digits or (lambda c: 1)
    if not paper_csv or not Path(paper_csv).is_file():
        return [], []
    df = pd.read_csv(paper_csv, dtype={"confirmed": str, "params": str})
    # The source tables tell rows of one method apart by their parameter count (AdapterL 0.37M / 11.09M)
    repeated = set(df["label"][df["label"].duplicated(keep=False)])
    body, notes = [], []
    for _, r in df.iterrows():
        confirmed = str(r.get("confirmed", "")).strip().lower() == "true"
        cells = []
        for c in columns:
            v = r.get(c)
            sd = r.get(f"{c}_std")
            cells.append(
                fmt(v if pd.notna(v) else None, sd if pd.notna(sd) else None, digits(c))
                if confirmed or pd.notna(v)
                else ""
            )
        filled = any(cells)
        if not filled:
            notes.append(
                f"{r['paper']}: row '{r['label']}' not transcribed (unconfirmed); fill it from the paper's "
                f"PDF ({r['source']}) in {Path(paper_csv).name}"
            )
            continue
        tag = "" if confirmed else " (unconfirmed)"
        label = r["label"]
        if label in repeated and pd.notna(r.get("params")) and str(r["params"]) not in label:
            label = f"{label} ({r['params']})"
        body.append([f"{label} [{r['paper']}]{tag}", *cells])
    return body, notes


def provenance_lines(records: Sequence[dict[str, Any]], profile: str) -> list[str]:
    commits = sorted({str(r["provenance"].get("git_commit"))[:10] for r in records})
    models = sorted({r["model"] for r in records})
    seeds = sorted({r["seed"] for r in records})
    devices = sorted(
        {str(d.get("name", "?") if isinstance(d := r["provenance"]["device"], dict) else d) for r in records}
    )
    return [
        f"- Profile: **{profile}** ({profile_note(profile)})",
        f"- Model(s): {', '.join(models)}; seeds: {', '.join(map(str, seeds))}; {len(records)} run records",
        f"- Device(s): {', '.join(devices)}; git commit(s): {', '.join(commits)}",
        "- Generated by `deltalora collect` from run records only (when, from which commit: build_info.json)",
    ]


def write_outputs(
    df: pd.DataFrame, csv_path: str | os.PathLike, markdown: str, latex: str | None = None
) -> None:
    csv_path = Path(csv_path)
    atomic_write_text(csv_path, with_smoke_column(df).to_csv(index=False))  # full precision: cells = records
    atomic_write_text(csv_path.with_suffix(".md"), markdown.rstrip() + "\n")
    if latex is not None:
        atomic_write_text(csv_path.with_suffix(".tex"), latex)


def epoch_selection_note(records: Sequence[dict[str, Any]]) -> str:
    """Where the best epoch was chosen, as the records say (`selected_on`), for the table's text.

    Why: the text must state what the code did; a run with a dev split (data.dev_size > 0) selects on it,
    one without selects on the validation split it reports (the LoRA protocol's choice, biased upwards).
    """
    where = collections.Counter(r.get("selected_on", "validation") for r in records)
    if set(where) == {"dev"}:
        return (
            " (best epoch chosen on the dev split carved from train, docs/dev_split.md; "
            "the validation split is only reported)"
        )
    if set(where) == {"validation"}:
        return (
            " (best epoch chosen on the validation split, which is also the split reported: "
            "the LoRA protocol)"
        )
    counts = ", ".join(f"{n} on {k}" for k, n in sorted(where.items()))
    return f" (best epoch chosen per run, as its record's `selected_on` says: {counts})"


def glue_markdown(
    table: pd.DataFrame,
    records: Sequence[dict[str, Any]],
    *,
    profile: str,
    paper_csv: str | os.PathLike | None,
    plots: Sequence[str] = (),
    which: str = "best",
) -> str:
    tasks = [t for t in GLUE_ORDER if t in table.columns]
    cols = [*tasks, "avg"]
    header = ["Method", *[t.upper() if t != "stsb" else "STS-B" for t in tasks], "Avg"]
    body = [[r["label"], *[fmt(r[c], r.get(f"{c}_std")) for c in cols]] for _, r in table.iterrows()]
    majority = {
        t: next(
            (
                r["majority_baseline"]
                for r in records
                if r["task"].endswith("/" + t) and r.get("majority_baseline") is not None
            ),
            None,
        )
        for t in tasks
    }
    if all(v is not None for v in majority.values()):
        vals = [majority[t] for t in tasks]
        body.append(["*Majority class (reference)*", *[fmt(v) for v in vals], fmt(sum(vals) / len(vals))])
    metric_names = {t: next(r["metric"] for r in records if r["task"].endswith("/" + t)) for t in tasks}
    lines = [
        f"# GLUE ({smoke.label(profile)})",
        "",
        *provenance_lines(records, profile),
        f"- Cells: median over seeds of each run's validation score at its {which} epoch"
        f"{epoch_selection_note(records) if which == 'best' else ''}, ± sample std over seeds. "
        "Avg: mean of the task medians (± std over seeds of the per-seed average).",
        "- Metrics: "
        + ", ".join(f"{t}: {m}" for t, m in metric_names.items())
        + " (x100). MNLI: validation_matched "
        "(mismatched is in the records; the LoRA paper's MNLI column is the overall matched+mismatched "
        "accuracy).",
        "",
        "## This run",
        "",
        markdown_table(header, body),
    ]
    pbody, notes = paper_rows(paper_csv, cols)
    lora_dropouts = {r["config"]["hp"].get("dropout") for r in records if r.get("row") == "lora"}
    if lora_dropouts == {0.0} and "lora_nodrop" not in set(table["row"]):
        lines += [
            "",
            "- LoRA runs without dropout here (as microsoft/LoRA's GLUE scripts do), so the "
            '"LoRA without dropout" control is the LoRA row itself.',
        ]
    lines += ["", "## Reported in the papers (for reference; RoBERTa-base on the real GLUE data)", ""]
    if pbody:
        lines.append(markdown_table(["Row [source]", *header[1:]], pbody))
    if notes:
        lines += ["", *[f"- {n}" for n in notes]]
    if profile != "paper":
        lines += [
            "",
            f"> The {profile} profile's numbers come from small proxies and a small model; they are not "
            "comparable with the paper rows above. Run the paper profile for that.",
        ]
    if plots:
        lines += ["", "## Plots", "", *[f"![{Path(p).stem}]({p})" for p in plots if p.endswith(".png")]]
    return "\n".join(lines)


def glue_latex(table: pd.DataFrame, profile: str) -> str:
    tasks = [t for t in GLUE_ORDER if t in table.columns]
    cols = [*tasks, "avg"]
    head = " & ".join(["Method", *[t.upper() for t in tasks], "Avg"]) + r" \\"
    body = "\n".join(
        " & ".join(
            [
                str(r["label"]).replace("_", r"\_"),
                *[fmt(r[c], r.get(f"{c}_std")).replace("±", r"$\pm$") for c in cols],
            ]
        )
        + r" \\"
        for _, r in table.iterrows()
    )
    return (
        "% generated by deltalora collect; "
        + smoke.label(profile)
        + "\n"
        + r"\begin{tabular}{l"
        + "r" * len(cols)
        + "}\n\\toprule\n"
        + head
        + "\n\\midrule\n"
        + body
        + "\n\\bottomrule\n\\end{tabular}\n"
    )
