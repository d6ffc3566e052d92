"""Run-time statistics of the pipeline's training jobs, from Snakemake's `benchmark:` files.

Each training rule writes a benchmark TSV (wall time ``s``, ``cpu_time``, peak memory ``max_rss`` in MB,
...) under ``<runs_dir>/benchmarks/<family>/...``. This table lists every job and sums them per family
(GLUE, NLG, ablations, pre-training), so the report says what the build cost on this machine.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from .. import smoke
from ..records import atomic_write_text
from .tables import markdown_table, profile_note, with_smoke_column

COLUMNS = ("job", "family", "wall_s", "cpu_s", "max_rss_mb")


def _number(v: object) -> float:
    """A benchmark cell: a number, or NaN where the platform did not measure it ('-', 'NA')."""
    try:
        return float(v)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return float("nan")


def read_benchmarks(
    paths: Sequence[str | os.PathLike], root: str | os.PathLike | None = None
) -> pd.DataFrame:
    """One row per benchmark file: the job (path under root, no suffix), its family, wall/CPU time, RSS.

    root defaults to the files' common folder (<runs_dir>/benchmarks for the pipeline's set)."""
    if not paths:
        raise ValueError("no benchmark files given")
    if root is None:
        root = os.path.commonpath([os.path.dirname(os.path.abspath(p)) for p in paths])
    rows = []
    for p in paths:
        p = Path(p)
        job = os.path.relpath(os.path.abspath(p), os.path.abspath(root)).removesuffix(".tsv")
        fam = job.split("/")[0].split("_")[0]
        if p.stat().st_size == 0:  # an empty file (made by hand, or a job interrupted): not measured
            rows.append(
                {
                    "job": job,
                    "family": fam,
                    "wall_s": float("nan"),
                    "cpu_s": float("nan"),
                    "max_rss_mb": float("nan"),
                }
            )
            continue
        df = pd.read_csv(p, sep="\t")
        missing = {"s", "max_rss"} - set(df.columns)
        if missing:
            raise ValueError(f"{p}: not a Snakemake benchmark file (no column {', '.join(sorted(missing))})")
        last = df.iloc[-1]  # one line per repeat; the rules run each job once
        rows.append(
            {
                "job": job,
                "family": fam,
                "wall_s": _number(last["s"]),
                "cpu_s": _number(last.get("cpu_time")),
                "max_rss_mb": _number(last["max_rss"]),
            }
        )
    return pd.DataFrame(rows, columns=list(COLUMNS))


def summarise(jobs: pd.DataFrame) -> pd.DataFrame:
    """Per family: jobs, total and median wall time, total CPU time, largest peak RSS."""
    g = jobs.groupby("family", sort=True)
    out = pd.DataFrame(
        {
            "jobs": g.size(),
            "wall_s_total": g["wall_s"].sum(),
            "wall_s_median": g["wall_s"].median(),
            "cpu_s_total": g["cpu_s"].sum(min_count=1),
            "max_rss_mb": g["max_rss_mb"].max(),
        }
    )
    total = pd.DataFrame(
        {
            "jobs": [len(jobs)],
            "wall_s_total": [jobs["wall_s"].sum()],
            "wall_s_median": [jobs["wall_s"].median()],
            "cpu_s_total": [jobs["cpu_s"].sum(min_count=1)],
            "max_rss_mb": [jobs["max_rss_mb"].max()],
        },
        index=["all"],
    )
    return pd.concat([out, total]).reset_index(names="family")


def collect_runtime(
    paths: Sequence[str | os.PathLike],
    out_csv: str | os.PathLike,
    *,
    root: str | os.PathLike | None = None,
    profile: str,
) -> Path:
    """results/runtime_table.csv (one row per job) and .md (per-family summary, then every job)."""
    out_csv = Path(out_csv)
    jobs = read_benchmarks(paths, root)
    summary = summarise(jobs)
    out_csv.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_csv.with_name(f".{out_csv.name}.tmp")
    with_smoke_column(jobs).to_csv(tmp, index=False)
    os.replace(tmp, out_csv)

    def fmt(df: pd.DataFrame) -> list[list[str]]:
        return [
            [f"{v:.1f}" if isinstance(v, float) else str(v) for v in row]
            for row in df.itertuples(index=False)
        ]

    lines = [
        f"# Run time of the training jobs ({smoke.label(profile)})",
        "",
        "Profile: " + (profile_note(profile) or profile),
        "",
        "Wall and CPU time and peak resident memory of each training job, from Snakemake's `benchmark:` "
        "files. Measured on the machine that ran the build, with whatever else it was running: they "
        "say what this build cost, not how fast a method is (the memory table measures that).",
        "",
        "## Per family",
        "",
        markdown_table(list(summary.columns), fmt(summary)),
        "",
        "## Every job",
        "",
        markdown_table(list(jobs.columns), fmt(jobs)),
    ]
    atomic_write_text(out_csv.with_suffix(".md"), "\n".join(lines) + "\n")
    return out_csv
