"""`deltalora audit`'s parser, kept light: every `deltalora` command builds the whole parser, and the
audit's modules pull in pandas, scipy and matplotlib (about 0.6 s of CPU per process, measured
2026-12-06 with `python -X importtime`); they are imported only when the audit runs."""

from __future__ import annotations

import argparse
from typing import Any


def _cmd_audit(args: argparse.Namespace) -> int:
    from .report import cmd_audit

    return cmd_audit(args)


def add_audit_command(subparsers: Any) -> argparse.ArgumentParser:
    """Add `deltalora audit` to an argparse sub-parser collection; returns the new parser."""
    a = subparsers.add_parser(
        "audit",
        help="test the paper's claims on run records and measurements: results/audit.md + audit.csv",
        description="Test each claim of the Delta-LoRA paper with a stated rule on measured numbers; write a "
        "short Markdown report (summary of verdicts first), a CSV with one row per verdict, and "
        "plots. Absent measurements make the claims that need them inconclusive; records of "
        "another profile are refused.",
    )
    a.add_argument("records", nargs="*", help="run records (record.json)")
    a.add_argument("--records-from", default=None, help="a file listing run-record paths, one per line")
    a.add_argument(
        "--profile",
        required=True,
        choices=["default", "paper"],
        help="records of another profile are refused",
    )
    a.add_argument("--memory", default=None, help="memory table CSV (deltalora bench memory)")
    a.add_argument(
        "--dropout", default=None, help="dropout ablation summary CSV (results/ablation_dropout.csv)"
    )
    a.add_argument(
        "--cosines", default=None, help="gradient cosines CSV (results/ablation_dropout_cosines.csv)"
    )
    a.add_argument("--out", default="results/audit.md", help="Markdown report path")
    a.add_argument("--csv", default=None, help="CSV path (default: the report's path with .csv)")
    a.add_argument("--plots", default=None, help="folder for the plots (PNG + PDF)")
    a.add_argument(
        "--alpha", type=float, default=None, help="significance level (CI at 1 - alpha; default: rules.ALPHA)"
    )
    a.add_argument("--resamples", type=int, default=10_000, help="bootstrap resamples")
    a.add_argument("--bootstrap-seed", type=int, default=0)
    a.set_defaults(func=_cmd_audit)
    return a
