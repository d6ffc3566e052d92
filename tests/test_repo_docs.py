"""The repository is self-contained: every document a tracked file cites is in the repository.

Why: a user who clones the project has only the repository. Code comments, configs, paper tables,
docs and the texts the audit generates must not send them to notes that live elsewhere (the project's
private research notes, outside the repository, were once cited by file name). The paper facts are in
docs/sources.md and the method's derivations in docs/design.md.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Built from parts so that this file does not match its own patterns.
FORBIDDEN = ("FACTS" + ".md", "DESIGN" + ".md", "ANCHORS" + ".md", "../" + "shared", "shared" + "/paper")
# A path to a Markdown document: at least one directory part (bare names are checked only as links).
MD_PATH = re.compile(r"(?<![\w./{}<>-])((?:\.\.?/)?[A-Za-z0-9_-][\w.-]*(?:/[\w.-]+)+\.md)\b")
MD_LINK = re.compile(r"\]\(([^)\s#]+\.md)(?:#[^)]*)?\)")
# Where the pipeline and the tests write Markdown outputs: those are produced, not cited documents.
GENERATED = ("results/", "runs/", "out/", "tmp/")


def tracked_files() -> list[Path]:
    """Files under version control (all files outside .git when the tree is not a git checkout)."""
    try:
        out = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
        names = [n for n in out.decode().split("\0") if n]
    except (OSError, subprocess.CalledProcessError):
        names = [str(p.relative_to(ROOT)) for p in ROOT.rglob("*") if p.is_file() and ".git" not in p.parts]
    return [ROOT / n for n in names if (ROOT / n).is_file()]


def text_of(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except (UnicodeDecodeError, OSError):
        return None


def missing_citations(path: Path, text: str) -> list[str]:
    """Human-readable problems: forbidden references and cited .md paths that do not exist."""
    problems = []
    rel = path.relative_to(ROOT)
    for n, line in enumerate(text.splitlines(), 1):
        for bad in FORBIDDEN:
            if bad in line:
                problems.append(f"{rel}:{n}: cites {bad!r}, which is not in the repository")
        cited = set(MD_PATH.findall(line))
        if path.suffix == ".md":
            cited |= {m for m in MD_LINK.findall(line) if "://" not in m}
        for c in sorted(cited):
            if c.lstrip("./").startswith(GENERATED) or c.startswith("/"):
                continue
            if not ((path.parent / c).exists() or (ROOT / c).exists()):
                problems.append(f"{rel}:{n}: cites {c}, which is not in the repository")
    return problems


def test_no_tracked_file_cites_a_missing_document():
    files = tracked_files()
    assert len(files) > 50, "too few files found: is the test running from the repository?"
    problems = []
    for f in files:
        if f == Path(__file__).resolve():
            continue
        text = text_of(f)
        if text is not None:
            problems += missing_citations(f, text)
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize(
    "line, bad",
    [
        ("see " + "FACTS" + ".md 6.2", True),
        ("# (" + "DESIGN" + ".md section 2)", True),
        ("notes in ../" + "shared/paper/x.txt", True),
        ("schema in docs/run_record.md", False),
        ("schema in docs/no_such_page.md", True),
        ("[link](no_such_page.md)", True),
        ("[link](design.md#2)", False),  # relative to docs/
        ("writes results/audit.md", False),
        ("https://example.org/a/b.md", False),
    ],
)
def test_checker_finds_missing_documents(line, bad):
    """The checker itself: a forbidden or missing citation is reported, an existing one is not."""
    problems = missing_citations(ROOT / "docs" / "x.md", line)
    assert bool(problems) == bad, problems
