"""The SLURM path: the workflow builds its DAG under the SLURM executor (regression: workflow.cores),
and, with a local cluster up (workflow/profiles/slurm-local/cluster.sh up), the paper smoke DAG runs
through sbatch, and a training job cancelled mid-run resumes from its checkpoint with equal metrics.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from slurm_helpers import (
    PAPER,
    REPO,
    SLURM_PROFILE,
    cluster_up,
    copy_workflow,
    dag_rules,
    have_slurm_plugin,
    mirror_env,
    require,
    rules_ran,
    snakemake,
)

# Every SLURM command the executor plugin may call, faked, so that the test gives the same answer on a
# machine without SLURM, with a cluster up, and with SLURM's tools installed but no controller: the
# account check (sacctmgr, then sshare) knows account "x"; everything else fails at once.
FAKE_ACCOUNTS = {"sacctmgr": "x", "sshare": "x"}
FAKE_FAILING = ("sbatch", "squeue", "sinfo", "sacct", "scancel", "scontrol", "srun")


def _fake_slurm(d: Path) -> Path:
    """sbatch & co. that fail at once: the run must get as far as submitting, and no further. Each call
    is logged to d/calls.log, so the test can tell that no real SLURM tool answered."""
    d.mkdir()
    log = d / "calls.log"
    for name in (*FAKE_ACCOUNTS, *FAKE_FAILING):
        body = (
            f"echo {FAKE_ACCOUNTS[name]}\nexit 0\n"
            if name in FAKE_ACCOUNTS
            else f"echo 'fake {name}: no cluster in this test' >&2\nexit 1\n"
        )
        p = d / name
        p.write_text(f'#!/bin/sh\necho "{name} $*" >> "{log}"\n{body}')
        p.chmod(0o755)
    return d


def test_memory_rule_builds_under_the_slurm_executor(tmp_path):
    """Regression: memory.smk had `threads: workflow.cores`, which Snakemake fills only for local and dry
    runs; under `--executor slurm` without --cores the Snakefile raised before any job was submitted."""
    require(
        have_slurm_plugin(), "snakemake-executor-plugin-slurm is not installed (pip install -e '.[cluster]')"
    )
    (tmp_path / "wf").mkdir()
    wf = copy_workflow(tmp_path / "wf")
    fake = _fake_slurm(tmp_path / "bin")
    env = {**os.environ, "PATH": f"{fake}:{os.environ['PATH']}", "XDG_CACHE_HOME": str(tmp_path / "xdg")}
    r = snakemake(
        wf,
        "results/memory_table.csv",
        "--executor",
        "slurm",
        "--jobs",
        "1",
        "--configfile",
        "workflow/config/paper.yaml",
        "--default-resources",
        "slurm_account=x",
        "slurm_partition=y",
        "--slurm-init-seconds-before-status-checks",
        "1",
        env=env,
        timeout=300,
    )
    out = r.stdout + r.stderr
    assert "requires a total number of cores" not in out, out[-3000:]
    # The account was checked by the fake sacctmgr (not a real one, which fails with no controller)...
    calls = (fake / "calls.log").read_text().splitlines()
    assert any(c.startswith("sacctmgr ") for c in calls), (calls, out[-3000:])
    # ...and it got as far as sbatch, asking for the measurement job's configured cores.
    assert any(c.startswith("sbatch ") for c in calls), (calls, out[-3000:])
    assert "fake sbatch: no cluster in this test" in out, out[-3000:]
    assert "--cpus-per-task=8" in out and "rule_memory_measure" in out, out[-3000:]


def test_repository_has_no_workflow_cores_threads():
    """No rule may size itself by workflow.cores (it raises under every non-local executor)."""
    offenders = [
        str(p.relative_to(REPO))
        for p in (REPO / "workflow" / "rules").glob("*.smk")
        if "workflow.cores" in p.read_text()
    ]
    assert not offenders


# ------------------------------------------------------------------ a real single-node cluster
GUARD_S = 1200  # generous guard timeouts: the tests wait on events, never assert on wall time


def _require_cluster() -> None:
    require(
        have_slurm_plugin(), "snakemake-executor-plugin-slurm is not installed (pip install -e '.[cluster]')"
    )
    require(
        cluster_up(),
        "no SLURM controller answers; start one with workflow/profiles/slurm-local/cluster.sh up "
        "(needs root and Debian's munge, slurmctld, slurmd)",
    )


@pytest.mark.timeout(2700)  # the session's paper smoke may be built inside this test
def test_smoke_dag_runs_through_sbatch(paper_smoke):
    """The whole smoke DAG through snakemake-executor-plugin-slurm: training and memory jobs go to
    sbatch, the tables and the audit run on the submit host (localrules), every paper rule runs. The
    build is the session's one paper smoke (slurm_helpers.paper_smoke), whose content
    tests/test_paper_smoke.py checks."""
    _require_cluster()
    assert paper_smoke["executor"] == "slurm", "the session's paper smoke was built without the cluster"
    wf, log = paper_smoke["dir"], paper_smoke["log"]
    print(f"SLURM smoke: {paper_smoke['jobs']} jobs in {paper_smoke['wall_s']:.0f}s")
    dry = snakemake(wf, "-n", "all", *PAPER, env=paper_smoke["env"], timeout=600)
    assert rules_ran(log) == dag_rules(dry.stdout + dry.stderr)
    submitted = set(re.findall(r"submitted with SLURM jobid \d+ \(log: \S*/rule_(\w+)/", log))
    assert {
        "glue_train",
        "nlg_train",
        "ablation_dropout_train",
        "ablation_lambda_k_train",
        "ablation_rank_train",
        "memory_measure",
    } <= submitted
    assert not submitted & {"all", "glue_table", "nlg_table", "ablation_table", "memory_table", "audit"}
    assert (wf / "results" / "audit.md").is_file()


def _training_overrides(steps: int, every: int) -> list[str]:
    smoke_cfg = yaml.safe_load((REPO / "workflow" / "config" / "smoke.yaml").read_text())
    keep = [
        o for o in smoke_cfg["overrides"] if not o.startswith(("train.max_steps=", "train.checkpoint_every="))
    ]
    return [*keep, f"train.max_steps={steps}", f"train.checkpoint_every={every}"]


def test_scancel_mid_run_is_retried_and_resumes_with_identical_metrics(tmp_path, mirror_home):  # noqa: F811
    """A training job killed with scancel after a checkpoint is retried by the profile (retries: 1),
    resumes from that checkpoint, and ends with exactly the metrics of an uninterrupted run."""
    _require_cluster()
    target = "runs/paper-smoke/glue/mnli/delta_lora/seed0/record.json"
    longer = tmp_path / "longer.yaml"  # long enough that the kill lands between two checkpoints
    longer.write_text(yaml.safe_dump({"overrides": _training_overrides(steps=800, every=100)}))
    runs = {}
    for name in ("slurm", "local"):
        (tmp_path / name).mkdir()
        runs[name] = copy_workflow(tmp_path / name)
    cfg = ("--configfile", "workflow/config/paper.yaml", "workflow/config/smoke.yaml", str(longer))

    # The uninterrupted reference, locally.
    ref = snakemake(
        runs["local"],
        "--cores",
        "1",
        target,
        *cfg,
        env=mirror_env(mirror_home, runs["local"]),
        timeout=GUARD_S,
    )
    assert ref.returncode == 0, (ref.stdout + ref.stderr)[-4000:]

    wf = runs["slurm"]
    env = mirror_env(mirror_home, wf)
    proc = subprocess.Popen(
        [sys.executable, "-m", "snakemake", "--cores", "all", target, *cfg, *SLURM_PROFILE],
        cwd=wf,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        ckpt = wf / "runs/paper-smoke/glue/mnli/delta_lora/seed0/trainer/checkpoint-100/.complete"
        deadline = time.monotonic() + GUARD_S
        while not ckpt.exists():
            assert proc.poll() is None, (
                f"snakemake ended before the first checkpoint:\n{proc.stdout.read()[-4000:]}"
            )
            assert time.monotonic() < deadline, "no checkpoint within the guard time"
            time.sleep(0.2)
        logs = list((wf / ".snakemake" / "slurm_logs" / "rule_glue_train").rglob("*.log"))
        assert len(logs) == 1, logs
        job_id = logs[0].stem
        assert not (wf / target).exists(), "the run finished before it could be killed"
        subprocess.run(["scancel", job_id], check=True)
        out, _ = proc.communicate(timeout=GUARD_S)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, out[-5000:]
    # The kill was seen, and the retry resumed from a checkpoint of the killed attempt.
    jobs = sorted((wf / ".snakemake" / "slurm_logs" / "rule_glue_train").rglob("*.log"))
    assert len(jobs) == 2 and job_id in {p.stem for p in jobs}, (jobs, out[-3000:])
    rule_log = (wf / "runs/paper-smoke/logs/glue/mnli/delta_lora/seed0.log").read_text()
    assert re.search(r"resuming from checkpoint \S+/checkpoint-\d+", rule_log), rule_log[-3000:]

    killed, whole = (json.loads((runs[n] / target).read_text()) for n in ("slurm", "local"))
    assert killed["steps"] == whole["steps"] == 800
    assert killed["final"]["metrics"] == whole["final"]["metrics"]
    assert killed["best"] == whole["best"]
    assert [e["metrics"] for e in killed["epochs"]] == [e["metrics"] for e in whole["epochs"]]
    assert [c["loss"] for c in killed["train_curve"]] == [c["loss"] for c in whole["train_curve"]]
    assert killed["delta_lora"] == whole["delta_lora"]
