"""Names of the modern-baselines study's rows: one place for the record's row name and its parse.

Standard library only, on purpose: the workflow (workflow/rules/common.smk) loads this file by path to
name the study's outputs at DAG build, and Snakemake's own Python must need neither the package's
dependencies nor the checkout on `sys.path` for that.
"""

from __future__ import annotations

import re

ROW = re.compile(r"^baselines\.(?P<row>[A-Za-z0-9_]+)\.lr(?P<lr>[0-9.eE+-]+)$")


def lr_text(lr: float) -> str:
    """A learning rate as it appears in row names and paths: positional, no exponent, no sign."""
    return f"{float(lr):.12f}".rstrip("0").rstrip(".")


def record_row(name: str, lr: float) -> str:
    """The run record's row name for baselines row ``name`` at learning rate ``lr``."""
    return f"baselines.{name}.lr{lr_text(lr)}"


def parse_row(name: str | None) -> tuple[str, float] | None:
    """(row, learning rate) of a study record's row name, or None for a record of another study."""
    m = ROW.match(name or "")
    return (m["row"], float(m["lr"])) if m else None
