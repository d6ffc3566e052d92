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


def snakemake(cwd: Path, *args: str, env: dict | None = None,
              timeout: float = GUARD_S) -> subprocess.CompletedProcess:
    """Run Snakemake; the timeout is only a guard against a hung test."""
    return subprocess.run([sys.executable, "-m", "snakemake", *args], cwd=cwd, capture_output=True, text=True,
                          env=env, timeout=timeout)


def copy_workflow(d: Path) -> Path:
    """A private copy of the workflow (runs, results and Snakemake's lock stay inside it)."""
    for name in ("Snakefile", "workflow", "paper_tables"):
        src = REPO / name
        (shutil.copytree if src.is_dir() else shutil.copy)(src, d / name)
    return d


def workflow_env(d: Path, **extra: str) -> dict:
    """Data and every cache inside the copy."""
    return {**os.environ, "DELTALORA_DATA_DIR": str(d / "data"), "XDG_CACHE_HOME": str(d / "cache"),
            "HF_HOME": str(d / "hf"), **extra}


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
    cmd = [sys.executable, "-m", "snakemake", "results/glue_table.csv", "--cores", "2", "--configfile",
           "workflow/config/test.yaml"]
    first = subprocess.Popen(cmd, cwd=workdir, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             text=True, start_new_session=True)
    locks = workdir / ".snakemake" / "locks"
    wait_for(lambda: locks.is_dir() and any(locks.iterdir()), proc=first, what="the first run took its lock")
    os.killpg(first.pid, signal.SIGSTOP)
    try:
        before = snapshot(workdir)
        second = snakemake(workdir, "results/glue_table.csv", "--cores", "1", "--configfile",
                           "workflow/config/test.yaml", env=env)
        after = snapshot(workdir)
    finally:
        os.killpg(first.pid, signal.SIGCONT)
    out, _ = first.communicate()
    assert first.returncode == 0, out[-3000:]
    return {"second": second, "changed_by_second": sorted(set(before.items()) ^ set(after.items())),
            "first_out": out}


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
            vals = [r["best"]["metrics"][r["metric"]] for r in records
                    if r["row"] == row["row"] and r["task"] == f"glue/{task}"]
            assert len(vals) == 2 == row[f"{task}_n"]
            assert row[task] == pytest.approx(statistics.median(vals), abs=1e-6)
            assert row[f"{task}_std"] == pytest.approx(statistics.stdev(vals), abs=1e-6)
        assert row["avg"] == pytest.approx(statistics.mean(row[t] for t in ("mnli", "rte", "stsb")), abs=1e-6)
    md = (workdir / "results" / "glue_table.md").read_text()
    assert "default profile" in md and "±" in md and "RoB-base LoRA" in md
    for plot in ("glue_scores.png", "glue_scores.pdf", "glue_training_curves.png"):
        assert (workdir / "results" / "plots" / plot).stat().st_size > 1000


def test_immediate_rerun_does_nothing(workdir, env, built):
    """Nothing ran: Snakemake says so, and no file of the workflow directory changed (its own log aside).
    How long the check takes is measured by benchmarks/pipeline_timing.py, not asserted here."""
    before = snapshot(workdir)
    r = snakemake(workdir, "results/glue_table.csv", "--cores", "2", "--configfile", "workflow/config/test.yaml",
                  env=env)
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
    assert "Nothing to be done" in r.stdout + r.stderr
    assert "rule " not in r.stdout + r.stderr  # no job was scheduled
    assert snapshot(workdir) == before


def test_lint_is_clean(workdir, env):
    r = snakemake(workdir, "--lint", env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Congratulations, your workflow is in a good condition" in r.stdout + r.stderr


def test_paper_profile_dry_run_lists_every_experiment(workdir, env):
    # Targets first: --configfile takes every following word as a file (the documented command).
    r = snakemake(workdir, "-n", "all", "--configfile", "workflow/config/paper.yaml", env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    text = r.stdout + r.stderr
    # 8 tasks x (6 table rows + 4 audit rows) x 5 seeds, one job per run in the paper profile
    assert text.count("rule glue_train:") == 8 * 10 * 5
    for rule, n in (("nlg_train", 3 * 7), ("ablation_lambda_k_train", 2 * 20), ("ablation_rank_train", 3 * 10),
                    ("ablation_dropout_train", 3 * 4), ("pretrain", 0)):
        assert text.count(f"rule {rule}:") == n, rule


def test_misspelt_workflow_config_key_fails_clearly(workdir, env, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text((workdir / "workflow" / "config" / "test.yaml").read_text().replace("seeds:", "seedz:"))
    r = snakemake(workdir, "-n", "--configfile", str(bad), env=env)
    assert r.returncode != 0
    assert "seedz" in r.stdout + r.stderr

