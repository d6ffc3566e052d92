"""Collectors: run records -> tables (CSV + Markdown + LaTeX) and plots, beside the papers' numbers."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from .tables import GLUE_ORDER, glue_latex, glue_markdown, glue_table, load_records, write_outputs


def collect_glue(
    records: Sequence[str | os.PathLike],
    out_csv: str | os.PathLike,
    *,
    profile: str,
    paper_csv: str | os.PathLike | None = None,
    rows: Sequence[str] | None = None,
    plots_dir: str | os.PathLike | None = None,
) -> Path:
    """Build results/glue_table.{csv,md,tex} (and plots) from GLUE run records."""
    from .plots import scores_plot, training_curves_plot

    recs = load_records(records, profile=profile)
    table = glue_table(recs, rows=rows)
    tasks = [t for t in GLUE_ORDER if t in table.columns]
    rows = list(table["row"])
    plots: list[str] = []
    if plots_dir is not None:
        plots += scores_plot(recs, rows, tasks, profile=profile, base=Path(plots_dir) / "glue_scores")
        plots += training_curves_plot(
            recs, rows, tasks, profile=profile, base=Path(plots_dir) / "glue_training_curves"
        )
    rel = [os.path.relpath(p, Path(out_csv).parent) for p in plots]
    md = glue_markdown(table, recs, profile=profile, paper_csv=paper_csv, plots=rel)
    write_outputs(table, out_csv, md, glue_latex(table, profile))
    return Path(out_csv)
