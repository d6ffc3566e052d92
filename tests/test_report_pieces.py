"""The pieces behind `snakemake --report`: table pages, the run-time table, the audit forest plot and the
training curves (seed band, Delta-LoRA's K). The page itself is tested in a browser in test_pipeline.py."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from deltalora.collect.runtime import collect_runtime, read_benchmarks
from deltalora.report_html import markdown_to_html, write_html

# Snakemake's benchmark header (snakemake/benchmark.py), one line per repeat
BENCH_HEADER = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"


def test_markdown_tables_become_html_tables_and_nothing_external(tmp_path):
    md = tmp_path / "t.md"
    md.write_text(
        "# T\n\n| Method | RTE |\n|---|---|\n| LoRA | 50.0 ± 8.8 |\n| <b>x</b> | 1 |\n\n"
        "![scores](plots/glue_scores.png)\n"
    )
    html = write_html(md, tmp_path / "t.html").read_text()
    assert "<table>" in html and "<td>LoRA</td>" in html and "<td>50.0 ± 8.8</td>" in html
    assert "&lt;b&gt;x&lt;/b&gt;" in html and "<b>x</b>" not in html  # raw HTML in a cell is escaped
    assert "<img" not in html and "plots/glue_scores.png" in html  # the figure is a note, not a broken link
    assert "<script" not in html and "http" not in html.split("</style>")[1]


def test_html_of_a_missing_markdown_file_is_a_clear_error(tmp_path, capsys):
    from deltalora.cli import main

    assert main(["html", str(tmp_path / "none.md")]) == 2
    assert "no Markdown file at" in capsys.readouterr().err
    assert markdown_to_html("", "x").startswith("<!doctype html>")


def _bench(path, s, rss, cpu):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(BENCH_HEADER + f"{s}\t0:00:{int(s):02d}\t{rss}\t1\t1\t1\t0\t0\t50\t{cpu}\n")
    return path


def test_runtime_table_sums_the_benchmark_files_per_family(tmp_path):
    root = tmp_path / "benchmarks"
    files = [
        _bench(root / "glue" / "rte.tsv", 10.5, 800.0, 9.0),
        _bench(root / "glue" / "mnli.tsv", 20.0, 900.0, 18.0),
        _bench(root / "pretrain_gpt2.tsv", 5.0, 400.0, "-"),
    ]
    (root / "nlg").mkdir()
    touched = root / "nlg" / "e2e.tsv"
    touched.write_text("")  # an empty benchmark file: the job is listed, not measured
    out = collect_runtime([*files, touched], tmp_path / "runtime_table.csv", root=root, profile="default")
    jobs = pd.read_csv(out).set_index("job")
    assert jobs.loc["glue/rte", "wall_s"] == 10.5 and jobs.loc["glue/mnli", "max_rss_mb"] == 900.0
    assert jobs.loc["pretrain_gpt2", "family"] == "pretrain" and np.isnan(jobs.loc["pretrain_gpt2", "cpu_s"])
    assert np.isnan(jobs.loc["nlg/e2e", "wall_s"])
    md = out.with_suffix(".md").read_text()
    assert "| glue | 2 | 30.5 | 15.2 | 27.0 | 900.0 |" in md  # jobs, total, median, CPU total, max RSS
    assert "| all | 4 | 35.5 | 10.5 | 27.0 | 900.0 |" in md
    assert "NOT comparable" in md


def test_runtime_table_refuses_a_file_that_is_not_a_benchmark(tmp_path):
    bad = tmp_path / "b" / "x.tsv"
    bad.parent.mkdir()
    bad.write_text("a\tb\n1\t2\n")
    with pytest.raises(ValueError, match="not a Snakemake benchmark file"):
        read_benchmarks([bad], tmp_path / "b")


# ---------------------------------------------------------------------------- figures
def _curve_record(row, seed, losses, k=None):
    rec = {
        "task": "glue/rte",
        "row": row,
        "method": row,
        "seed": seed,
        "train_curve": [{"step": i + 1, "loss": v} for i, v in enumerate(losses)],
    }
    if k is not None:
        rec["delta_lora"] = {"start_step": k}
    return rec


def test_training_curves_show_the_seed_band_and_k(tmp_path, monkeypatch):
    from deltalora.collect import plots

    figs = []
    monkeypatch.setattr(plots, "save", lambda fig, base: figs.append(fig) or [])
    recs = [
        _curve_record("lora", 0, [1.0, 0.8, 0.6]),
        _curve_record("lora", 1, [1.2, 0.6, 0.4]),
        _curve_record("delta_lora", 0, [1.1, 0.9, 0.5], k=1),
        _curve_record("delta_lora", 1, [0.9, 0.7, 0.3], k=1),
    ]
    plots.training_curves_plot(recs, ["lora", "delta_lora"], ["rte"], profile="default", base=tmp_path / "c")
    ax = figs[0].axes[0]
    lines = {ln.get_label(): ln for ln in ax.get_lines()}
    assert list(lines["LoRA (2 seeds)"].get_ydata()) == pytest.approx([1.1, 0.7, 0.5])  # the mean
    bands = ax.collections
    assert len(bands) == 2
    lo_hi = bands[0].get_paths()[0].vertices[:, 1]
    assert min(lo_hi) == pytest.approx(0.4) and max(lo_hi) == pytest.approx(1.2)  # min..max over the seeds
    k_lines = [ln for ln in ax.get_lines() if ln.get_linestyle() == "--"]
    assert len(k_lines) == 1 and list(k_lines[0].get_xdata()) == [2, 2]  # K=1: W written after step K+1
    assert "RTE (default profile)" == ax.get_title() and "loss" in ax.get_ylabel()


def test_audit_forest_has_one_line_per_claim_with_ci_and_verdict():
    from deltalora.audit import rules
    from deltalora.audit.claims import AuditRow
    from deltalora.audit.forest import claims_forest
    from deltalora.audit.stats import paired_comparison

    cmp = paired_comparison({"rte": {0: 1.0, 1: 2.0, 2: 3.0, 3: 2.0, 4: 2.0}}, label="Delta-LoRA - LoRA")

    def row(cid, verdict, data, level="claim"):
        return AuditRow(
            id=cid,
            claim_id=cid,
            level=level,
            claim="c",
            test="t",
            evidence=f"evidence of {cid}",
            verdict=verdict,
            rule="r",
            profile="default",
            scale="proxy",
            data=data,
        )

    pooled = paired_comparison({"rte": {0: -1.0, 1: -2.0}, "mnli": {0: -1.5, 1: -2.5}}, label="pooled D - L")
    rows = [
        row("2", rules.SUPPORTED, {}),
        row("4a", rules.NOT_SUPPORTED, {"cmp": cmp}),
        row("4a", rules.SUPPORTED, {"cmp": cmp, "task": "glue/rte"}, level="detail"),
        row("5", rules.INCONCLUSIVE, {}),
        row("5", rules.INCONCLUSIVE, {"cmp": cmp, "task": "glue/rte"}, level="detail"),
        row("5", rules.INCONCLUSIVE, {"cmp": pooled}, level="detail"),
    ]
    fig = claims_forest(rows, "default")
    ax = fig.axes[0]
    assert [t.get_text()[:3] for t in ax.get_yticklabels()] == ["5. ", "4a.", "2. "]  # claims only, in order
    texts = [t.get_text() for t in ax.texts]
    assert [t for t in texts if t in (rules.SUPPORTED, rules.NOT_SUPPORTED, rules.INCONCLUSIVE)] == [
        rules.SUPPORTED,
        rules.NOT_SUPPORTED,
        rules.INCONCLUSIVE,
    ]
    assert any(t.startswith("no single effect size: evidence of 2") for t in texts)
    segs = {round(s[0][1]): s for c in ax.collections for s in c.get_segments()}  # CI bars by line
    assert sorted(segs) == [0, 1]  # claim 4a at y=1 (its own comparison), claim 5 at y=0 (its pooled detail)
    assert segs[1][0][0] == pytest.approx(cmp.ci.low) and segs[1][1][0] == pytest.approx(cmp.ci.high)
    assert segs[0][0][0] == pytest.approx(pooled.ci.low) and segs[0][1][0] == pytest.approx(pooled.ci.high)
    assert any(t.startswith("pooled D - L, n = 4") for t in texts)
    assert "default profile" in ax.get_title() and "not the paper" in ax.get_title()
    assert claims_forest([], "default") is None
