"""`deltalora collect ...` and the other pipeline sub-commands (thin shells over the package)."""

from __future__ import annotations

import argparse


def _collect_glue(args: argparse.Namespace) -> int:
    from .collect import collect_glue

    out = collect_glue(args.records, args.out, profile=args.profile, paper_csv=args.paper,
                       rows=args.rows.split(",") if args.rows else None, plots_dir=args.plots)
    print(f"wrote {out} (+ .md, .tex)")
    return 0


def add_commands(sub) -> None:  # noqa: ANN001 - argparse's private subparsers type
    c = sub.add_parser("collect", help="build a table (CSV + Markdown + LaTeX) and plots from run records")
    csub = c.add_subparsers(dest="table", metavar="TABLE")
    csub.required = True
    g = csub.add_parser("glue", help="the GLUE table: rows x 8 tasks + average, median over seeds with std")
    g.add_argument("records", nargs="+", help="run records (record.json)")
    g.add_argument("--out", required=True, help="CSV path; .md and .tex are written beside it")
    g.add_argument("--profile", required=True, choices=["default", "paper"], help="records of another profile are refused")
    g.add_argument("--paper", default=None, help="paper_tables CSV to show beside ours")
    g.add_argument("--rows", default=None, help="comma-separated row order (default: order of appearance)")
    g.add_argument("--plots", default=None, help="folder for the plots (PNG + PDF)")
    g.set_defaults(func=_collect_glue)
