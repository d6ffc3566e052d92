"""The Snakemake pipeline end to end on a tiny configuration (workflow/config/test.yaml).

Checks: the GLUE table builds, has the expected shape, every cell equals what the run records give,
an immediate rerun does nothing, a second concurrent invocation is refused and writes nothing, the
workflow lints clean, and the paper profile's DAG lists every experiment.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from waiting import GUARD_S, snapshot, wait_for

REPO = Path(__file__).resolve().parent.parent


def snakemake(
    cwd: Path, *args: str, env: dict | None = None, timeout: float = GUARD_S
) -> subprocess.CompletedProcess:
    """Run Snakemake; the timeout is only a guard against a hung test."""
    return subprocess.run(
        [sys.executable, "-m", "snakemake", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
    )


def copy_workflow(d: Path) -> Path:
    """A private copy of the workflow (runs, results and Snakemake's lock stay inside it)."""
    for name in ("Snakefile", "workflow", "paper_tables", "profiles"):
        src = REPO / name
        (shutil.copytree if src.is_dir() else shutil.copy)(src, d / name)
    return d


def workflow_env(d: Path, **extra: str) -> dict:
    """Data and every cache inside the copy."""
    return {
        **os.environ,
        "DELTALORA_DATA_DIR": str(d / "data"),
        "XDG_CACHE_HOME": str(d / "cache"),
        "HF_HOME": str(d / "hf"),
        **extra,
    }


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    return copy_workflow(tmp_path_factory.mktemp("wf"))


@pytest.fixture(scope="module")
def env(workdir) -> dict:
    return workflow_env(workdir)


@pytest.fixture(scope="module")
def built(workdir, env):
    """Run the tiny pipeline once; meanwhile check that a second invocation is refused and writes nothing.

    The first Snakemake (its own process group) is paused with SIGSTOP once it holds its lock, so the
    workflow directory cannot change while the second one runs: any change then is the second's.
    """
    cmd = [
        sys.executable,
        "-m",
        "snakemake",
        "results/glue_table.csv",
        "--cores",
        "2",
        "--configfile",
        "workflow/config/test.yaml",
    ]
    first = subprocess.Popen(
        cmd,
        cwd=workdir,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    locks = workdir / ".snakemake" / "locks"
    wait_for(lambda: locks.is_dir() and any(locks.iterdir()), proc=first, what="the first run took its lock")
    os.killpg(first.pid, signal.SIGSTOP)
    try:
        before = snapshot(workdir)
        second = snakemake(
            workdir,
            "results/glue_table.csv",
            "--cores",
            "1",
            "--configfile",
            "workflow/config/test.yaml",
            env=env,
        )
        after = snapshot(workdir)
    finally:
        os.killpg(first.pid, signal.SIGCONT)
    out, _ = first.communicate()
    assert first.returncode == 0, out[-3000:]
    return {
        "second": second,
        "changed_by_second": sorted(set(before.items()) ^ set(after.items())),
        "first_out": out,
    }


def test_second_invocation_is_refused_writes_nothing_and_the_first_finishes(built):
    """Snakemake refuses a second run either by its lock or, once the first has started jobs, because their
    outputs are marked incomplete (IncompleteFilesException): both are a refusal."""
    second = built["second"]
    text = second.stdout + second.stderr
    assert second.returncode != 0, text[-3000:]
    refusals = ("cannot be locked", "IncompleteFilesException", "incomplete")
    assert any(r in text for r in refusals), text
    assert "rule glue_train" not in text and "Finished job" not in text  # it started no job
    assert built["changed_by_second"] == [], built["changed_by_second"]
    assert "steps (100%) done" in built["first_out"]  # the first finished every job, undisturbed


def test_glue_table_shape_and_cells_equal_records(workdir, built):
    table = pd.read_csv(workdir / "results" / "glue_table.csv")
    assert list(table["row"]) == ["lora", "delta_lora", "lora_scaled"]
    for col in ("mnli", "rte", "stsb", "avg", "mnli_std", "rte_std", "stsb_std"):
        assert col in table.columns
    records = [json.loads(p.read_text()) for p in (workdir / "runs" / "test" / "glue").rglob("record.json")]
    assert len(records) == 3 * 3 * 2
    for _, row in table.iterrows():
        for task in ("mnli", "rte", "stsb"):
            vals = [
                r["best"]["metrics"][r["metric"]]
                for r in records
                if r["row"] == row["row"] and r["task"] == f"glue/{task}"
            ]
            assert len(vals) == 2 == row[f"{task}_n"]
            assert row[task] == pytest.approx(statistics.median(vals), abs=1e-6)
            assert row[f"{task}_std"] == pytest.approx(statistics.stdev(vals), abs=1e-6)
        assert row["avg"] == pytest.approx(statistics.mean(row[t] for t in ("mnli", "rte", "stsb")), abs=1e-6)
    md = (workdir / "results" / "glue_table.md").read_text()
    assert "default profile" in md and "±" in md and "RoB-base LoRA" in md
    # the text says where the best epoch was chosen, as the records do (the test config has a dev split)
    assert {r["selected_on"] for r in records} == {"dev"}
    assert "best epoch chosen on the dev split carved from train" in md
    assert "also the split reported" not in md
    for plot in ("glue_scores.png", "glue_scores.pdf", "glue_training_curves.png"):
        assert (workdir / "results" / "plots" / plot).stat().st_size > 1000


def test_immediate_rerun_does_nothing(workdir, env, built):
    """Nothing ran: Snakemake says so, and no file of the workflow directory changed (its own log aside).
    How long the check takes is measured by benchmarks/pipeline_timing.py, not asserted here."""
    before = snapshot(workdir)
    r = snakemake(
        workdir,
        "results/glue_table.csv",
        "--cores",
        "2",
        "--configfile",
        "workflow/config/test.yaml",
        env=env,
    )
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
    assert "Nothing to be done" in r.stdout + r.stderr
    assert "rule " not in r.stdout + r.stderr  # no job was scheduled
    assert snapshot(workdir) == before


def _file_bytes(root: Path, *, exclude: tuple[str, ...]) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.relative_to(root).as_posix() not in exclude
    }


def test_rebuilt_tables_and_plots_are_byte_identical(workdir, env, built):
    """Rebuilding the collectors from the same records (--forcerun: no training again) gives the same bytes
    for every file under results/: CSV, Markdown, LaTeX, HTML, PNG and PDF. The one file that changes is
    build_info.json, where the build's time and commit went instead of into the tables. ~10 s."""
    results = workdir / "results"
    info_path = results / "build_info.json"
    first_info = json.loads(info_path.read_text())
    before = _file_bytes(results, exclude=("build_info.json",))
    assert {"glue_table.csv", "glue_table.md", "glue_table.tex", "glue_table.html"} <= set(before)
    assert {"plots/glue_scores.pdf", "plots/glue_scores.png", "plots/glue_training_curves.pdf"} <= set(before)
    r = snakemake(
        workdir,
        "results/glue_table.csv",
        "--cores",
        "2",
        "--forcerun",
        "glue_table",
        "--configfile",
        "workflow/config/test.yaml",
        env=env,
    )
    text = r.stdout + r.stderr
    assert r.returncode == 0, text[-3000:]
    assert "rule glue_table:" in text and "rule glue_train" not in text  # the collector only
    after = _file_bytes(results, exclude=("build_info.json",))
    assert sorted(after) == sorted(before)
    differ = [name for name in before if after[name] != before[name]]
    assert differ == [], f"rebuilt from the same records, these files changed: {differ}"
    # the provenance the tables no longer carry: when and from which commit, one entry per table
    info = json.loads(info_path.read_text())
    entry, first = info["outputs"]["glue_table.csv"], first_info["outputs"]["glue_table.csv"]
    assert entry["command"] == "deltalora collect glue" and entry["versions"]["python"]
    assert entry["built_at"] > first["built_at"] and entry["git_commit"] == first["git_commit"]


def test_lint_is_clean(workdir, env):
    r = snakemake(workdir, "--lint", env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Congratulations, your workflow is in a good condition" in r.stdout + r.stderr


def test_paper_profile_dry_run_lists_every_experiment(workdir, env):
    # Targets first: --configfile takes every following word as a file (the documented command).
    r = snakemake(workdir, "-n", "all", "--configfile", "workflow/config/paper.yaml", env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    text = r.stdout + r.stderr
    # 8 tasks x (6 table rows + 7 audit rows) x 5 seeds, one job per run in the paper profile
    assert text.count("rule glue_train:") == 8 * 13 * 5
    for rule, n in (
        ("nlg_train", 3 * 7),
        ("ablation_lambda_k_train", 2 * 20),
        ("ablation_rank_train", 3 * 10),
        ("ablation_dropout_train", 3 * 4),
        ("pretrain", 0),
        ("qlora_train", 3 * 4),
        ("qlora_table", 1),
    ):  # RoBERTa-base fp32 and NF4: 3 tasks x 4 rows
        assert text.count(f"rule {rule}:") == n, rule


def test_misspelt_workflow_config_key_fails_clearly(workdir, env, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text((workdir / "workflow" / "config" / "test.yaml").read_text().replace("seeds:", "seedz:"))
    r = snakemake(workdir, "-n", "--configfile", str(bad), env=env)
    assert r.returncode != 0
    assert "seedz" in r.stdout + r.stderr


# ---------------------------------------------------------------------------- the report
# `snakemake --report` on the tiny build above (GLUE only: a partial build), then the page in Chromium.
GLUE_REPORT = {
    "GLUE": {
        "Figures": ["results/plots/glue_scores.png", "results/plots/glue_training_curves.png"],
        "Table": ["results/glue_table.csv", "results/glue_table.html"],
    }
}


def report_variable(html: str, name: str):
    """A JSON variable the Snakemake report embeds (<script id="NAME"> var NAME = ...;)."""
    import re

    script_id = name.replace("_", "-")
    m = re.search(rf'<script id="{script_id}">\s*var {name} = (.*?);\s*</script>', html, re.S)
    assert m, f"no {name} in the report"
    return json.loads(m.group(1))


@pytest.fixture(scope="module")
def report(workdir, env, built):
    r = snakemake(
        workdir,
        "--cores",
        "1",
        "--report",
        "results/report.html",
        "--configfile",
        "workflow/config/test.yaml",
        env=env,
    )
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
    html = (workdir / "results" / "report.html").read_text(encoding="utf-8")
    return {
        "path": workdir / "results" / "report.html",
        "html": html,
        "results": report_variable(html, "results"),
        "categories": report_variable(html, "categories"),
    }


def test_report_of_a_partial_build_holds_what_exists_with_captions(report):
    assert report["categories"] == GLUE_REPORT  # nothing else was built; the report does not fail
    caps = {p: r["caption"] for p, r in report["results"].items()}
    for path, cap in caps.items():
        assert "not the paper" in cap and "2 seeds" in cap, path  # profile and seeds of config/test.yaml
    assert "K" in caps["results/plots/glue_training_curves.png"]
    assert report["results"]["results/glue_table.html"]["mime_type"] == "text/html"  # a page, not raw text
    assert report["results"]["results/glue_table.csv"]["mime_type"] == "text/csv"  # the data: a download
    assert "Delta-LoRA (Zi et al. 2023)" in report_variable(report["html"], "workflow_desc")


APP_TEXT = "document.querySelector('#app').innerText"
TABLE_CELLS = (
    "Array.from(document.querySelectorAll('table')[0]?.rows || [])"
    ".map(r => Array.from(r.cells).map(c => c.innerText.trim()))"
)
PNG_SIZE = (
    "(() => { const i = document.querySelector('#app img[src^=\"data:image/png\"]');"
    " return i && i.complete && i.naturalWidth > 0 ? [i.naturalWidth, i.naturalHeight] : null; })()"
)


def _chromium():
    from chromium_cdp import find_chromium

    binary = find_chromium()
    if binary is None:
        if os.environ.get("CI") == "true":
            pytest.fail("CI=true but no chromium: install it (bash .ci/chromium.sh)")
        pytest.skip("no chromium on PATH (Debian: apt-get install chromium, or bash .ci/chromium.sh)")
    return binary


def _click(browser, label: str) -> None:
    """Click the report's link whose text is label (menu, category, subcategory)."""
    found = browser.evaluate(
        "(() => { const a = Array.from(document.querySelectorAll('#app a'))"
        f".find(a => a.innerText.trim() === {json.dumps(label)}); if (a) a.click(); return !!a; }})()"
    )
    assert found, f"no link {label!r} in the report"


def _show(browser, name: str) -> None:
    """Click the eye button of the listed result whose path contains name."""
    browser.wait_until(f"{APP_TEXT}.includes({json.dumps(name)})", what=name)
    found = browser.evaluate(
        "(() => { const tr = Array.from(document.querySelectorAll('#app tr'))"
        f".find(t => t.innerText.includes({json.dumps(name)}));"
        " const a = tr && tr.querySelector('a[iconname=eye]'); if (a) a.click(); return !!a; })()"
    )
    assert found, f"no eye button for {name}"


def _listed(browser) -> list[str]:
    return browser.evaluate(
        "Array.from(document.querySelectorAll('#app a')).map(a => a.innerText.trim()).filter(t => t)"
    )


def _open(browser, expected: dict, cat: str, sub: str) -> None:
    """From the report's menu, click the category (the menu says "Results" when there is one) and the
    subcategory (a category with one subcategory opens it directly)."""
    browser.evaluate("app.setView({navbarMode: 'menu'})")
    _click(browser, "Results" if len(expected) == 1 else cat)
    if len(expected[cat]) > 1:
        _click(browser, sub)


def check_listing(browser, expected: dict) -> None:
    """Every expected category is in the menu, and each subcategory lists every expected item."""
    browser.evaluate("app.setView({navbarMode: 'menu'})")
    menu = _listed(browser)
    for cat in expected if len(expected) > 1 else ["Results"]:
        assert cat in menu, (cat, menu)
    for cat, subs in expected.items():
        for sub, items in subs.items():
            _open(browser, expected, cat, sub)
            for item in items:
                browser.wait_until(f"{APP_TEXT}.includes({json.dumps(item)})", what=f"{cat} / {sub} / {item}")
            crumbs = _listed(browser)
            assert cat in crumbs, (cat, crumbs)  # the breadcrumbs name the category


def test_report_in_headless_chromium(report, workdir, tmp_path):
    """The page loads from file:// with no console error, lists every category and item, and shows a table
    (the GLUE table's cells, equal to the CSV) and a figure (decoded at its full size)."""
    import struct

    from chromium_cdp import Browser

    table = pd.read_csv(workdir / "results" / "glue_table.csv").set_index("row")
    png = (workdir / "results" / "plots" / "glue_scores.png").read_bytes()
    png_size = list(struct.unpack(">II", png[16:24]))
    with Browser(_chromium()) as b:
        b.open(report["path"].as_uri())
        b.wait_until("document.querySelectorAll('#app a').length > 3", what="the report's menu")
        check_listing(b, GLUE_REPORT)
        # a table: the GLUE table's page inside the report, its cells as in the CSV
        _open(b, GLUE_REPORT, "GLUE", "Table")
        _show(b, "glue_table.html")
        ctx = b.frame_context("data:text/html")
        rows = b.wait_until(TABLE_CELLS, what="the table", context_id=ctx)
        assert rows[0][:4] == ["Method", "MNLI", "RTE", "STS-B"]
        lora = next(r for r in rows if r[0] == "LoRA")
        assert lora[1] == f"{table.loc['lora', 'mnli']:.1f} ± {table.loc['lora', 'mnli_std']:.1f}"
        shot = b.screenshot(tmp_path / "report_table.png")
        # a figure: the scores plot, decoded by the browser at the PNG's own size
        _open(b, GLUE_REPORT, "GLUE", "Figures")
        _show(b, "glue_scores.png")
        size = b.wait_until(PNG_SIZE, what="the figure")
        assert size == png_size, (size, png_size)
        b.screenshot(tmp_path / "report_figure.png")
        errors = b.console_errors()
    assert errors == []
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000
