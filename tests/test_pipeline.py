"""The Snakemake pipeline end to end on a tiny configuration (workflow/config/test.yaml).

Checks: the GLUE table builds, has the expected shape, every cell equals what the run records give,
an immediate rerun does nothing, a second concurrent invocation is refused by Snakemake's lock, the
workflow lints clean, and the paper profile's DAG lists every experiment.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

REPO = Path(__file__).resolve().parent.parent


def snakemake(cwd: Path, *args: str, env: dict | None = None, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "snakemake", *args], cwd=cwd, capture_output=True, text=True,
                          env=env, timeout=timeout)


def copy_workflow(d: Path) -> Path:
    """A private copy of the workflow (runs, results and Snakemake's lock stay inside it)."""
    for name in ("Snakefile", "all", "workflow", "paper_tables"):
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
    """Run the tiny pipeline once; meanwhile check that a second invocation is refused by the lock."""
    cmd = [sys.executable, "-m", "snakemake", "results/glue_table.csv", "--cores", "2", "--configfile",
           "workflow/config/test.yaml"]
    t0 = time.time()
    first = subprocess.Popen(cmd, cwd=workdir, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    locks = workdir / ".snakemake" / "locks"
    while not (locks.is_dir() and any(locks.iterdir())):
        assert first.poll() is None, first.stdout.read()
        time.sleep(0.1)
    second = snakemake(workdir, "results/glue_table.csv", "--cores", "1", "--configfile", "workflow/config/test.yaml",
                       env=env)
    out, _ = first.communicate(timeout=900)
    elapsed = time.time() - t0
    assert first.returncode == 0, out[-3000:]
    return {"second": second, "elapsed": elapsed}


def test_second_invocation_is_refused_by_the_lock(built):
    second = built["second"]
    assert second.returncode != 0
    assert "cannot be locked" in second.stdout + second.stderr


def test_glue_table_shape_and_cells_equal_records(workdir, built):
    assert built["elapsed"] < 180, f"tiny pipeline took {built['elapsed']:.0f}s (budget 180s)"
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
    t0 = time.time()
    r = snakemake(workdir, "results/glue_table.csv", "--cores", "2", "--configfile", "workflow/config/test.yaml",
                  env=env)
    assert r.returncode == 0
    assert "Nothing to be done" in r.stdout + r.stderr
    assert time.time() - t0 < 10


def test_lint_is_clean(workdir, env):
    r = snakemake(workdir, "--lint", env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Congratulations, your workflow is in a good condition" in r.stdout + r.stderr


def test_paper_profile_dry_run_lists_every_experiment(workdir, env):
    r = snakemake(workdir, "-n", "--configfile", "workflow/config/paper.yaml", "all", env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    text = r.stdout + r.stderr
    # 8 tasks x (6 table rows + 7 audit rows) x 5 seeds, one job per run in the paper profile
    assert text.count("rule glue_train:") == 8 * 13 * 5
    for rule, n in (("nlg_train", 3 * 7), ("ablation_lambda_k_train", 2 * 20), ("ablation_rank_train", 3 * 10),
                    ("ablation_dropout_train", 3 * 4), ("pretrain", 0)):
        assert text.count(f"rule {rule}:") == n, rule


def test_misspelt_workflow_config_key_fails_clearly(workdir, env, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text((workdir / "workflow" / "config" / "test.yaml").read_text().replace("seeds:", "seedz:"))
    r = snakemake(workdir, "-n", "--configfile", str(bad), env=env)
    assert r.returncode != 0
    assert "seedz" in r.stdout + r.stderr

