"""Markdown tables -> one self-contained HTML page, for the Snakemake report.

`snakemake --report` shows an HTML result inside the page but a CSV or Markdown file only as raw text.
Each collector already writes a Markdown version of its table (value ± std, the papers' rows, notes),
so the report shows that Markdown rendered: tables as tables. The page is self-contained (inline CSS,
no scripts, no external links): the report embeds it as a ``data:`` URI, where relative links would
break. Image references become a short note, because each figure is its own item in the report.
"""

from __future__ import annotations

import argparse
import html
import os
import sys
from pathlib import Path
from typing import Any

from .records import atomic_write_text

CSS = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 1.2em; color: #1d1d1f; }
h1 { font-size: 1.35em; } h2 { font-size: 1.15em; margin-top: 1.4em; } h3 { font-size: 1.02em; }
table { border-collapse: collapse; margin: 0.8em 0; font-size: 13px; }
th, td { border: 1px solid #c8c8cc; padding: 3px 8px; text-align: right; white-space: nowrap; }
th { background: #eef1f5; } td:first-child, th:first-child { text-align: left; }
tr:nth-child(even) td { background: #f8f9fb; }
code { background: #f1f1f4; padding: 0 3px; border-radius: 3px; font-size: 12.5px; }
pre { background: #f6f7f9; padding: 0.6em; overflow-x: auto; white-space: pre-wrap; }
p.figure-note { color: #555; font-style: italic; }
"""


def _parser() -> Any:
    from markdown_it import MarkdownIt

    md = MarkdownIt("commonmark", {"html": False}).enable("table")

    def image(self, tokens, idx, options, env):  # noqa: ANN001 - markdown-it's renderer signature
        src = tokens[idx].attrGet("src") or ""
        return (
            f'<span class="figure-note">[figure <code>{html.escape(str(src))}</code>: a separate item '
            f"of the report]</span>"
        )

    md.add_render_rule("image", image)
    return md


def markdown_to_html(text: str, title: str) -> str:
    """A complete HTML document: the Markdown rendered (GFM tables on, raw HTML escaped), inline CSS."""
    body = _parser().render(text)
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>{CSS}</style></head>\n<body>\n{body}</body></html>\n"
    )


def write_html(md_path: str | os.PathLike, out: str | os.PathLike) -> Path:
    """Render the Markdown file md_path to out (atomically); the title is the file's stem."""
    md_path = Path(md_path)
    if not md_path.is_file():
        raise FileNotFoundError(f"deltalora html: no Markdown file at {md_path}")
    out = Path(out)
    atomic_write_text(out, markdown_to_html(md_path.read_text(encoding="utf-8"), md_path.stem))
    return out


def _cmd_html(args: argparse.Namespace) -> int:
    if not Path(args.markdown).is_file():
        print(f"deltalora html: error: no Markdown file at {args.markdown}", file=sys.stderr)
        return 2
    out = write_html(args.markdown, args.out or Path(args.markdown).with_suffix(".html"))
    print(f"wrote {out}")
    return 0


def add_html_command(sub: Any) -> None:
    """`deltalora html TABLE.md [--out TABLE.html]`: the report's rendering of a table."""
    h = sub.add_parser(
        "html",
        help="render a results Markdown file (tables) as one self-contained HTML page",
        description="Render a Markdown table file written by `deltalora collect`, `bench "
        "memory` "
        "or `audit` as a self-contained HTML page (inline CSS, images replaced "
        "by a note), for `snakemake --report`.",
    )
    h.add_argument("markdown", help="the .md file")
    h.add_argument("--out", default=None, help="HTML path (default: beside the .md, with .html)")
    h.set_defaults(func=_cmd_html)
