"""The SLURM path: the workflow builds its DAG under the SLURM executor (regression: workflow.cores),
and, with a local cluster up (workflow/profiles/slurm-local/cluster.sh up), the paper smoke DAG runs
through sbatch, and a training job cancelled mid-run resumes from its checkpoint with equal metrics.
"""

from __future__ import annotations

import os
from pathlib import Path

from slurm_helpers import REPO, copy_workflow, have_slurm_plugin, require, snakemake


def _fake_slurm(d: Path) -> Path:
    """sbatch & co. that fail at once: the run must get as far as submitting, and no further."""
    d.mkdir()
    for name in ("sbatch", "squeue", "sinfo", "sacct", "scancel", "scontrol"):
        p = d / name
        p.write_text(f"#!/bin/sh\necho 'fake {name}: no cluster in this test' >&2\nexit 1\n")
        p.chmod(0o755)
    return d


def test_memory_rule_builds_under_the_slurm_executor(tmp_path):
    """Regression: memory.smk had `threads: workflow.cores`, which Snakemake fills only for local and dry
    runs; under `--executor slurm` without --cores the Snakefile raised before any job was submitted."""
    require(have_slurm_plugin(), "snakemake-executor-plugin-slurm is not installed (pip install -e '.[cluster]')")
    (tmp_path / "wf").mkdir()
    wf = copy_workflow(tmp_path / "wf")
    fake = _fake_slurm(tmp_path / "bin")
    env = {**os.environ, "PATH": f"{fake}:{os.environ['PATH']}", "XDG_CACHE_HOME": str(tmp_path / "xdg")}
    r = snakemake(wf, "results/memory_table.csv", "--executor", "slurm", "--jobs", "1", "--configfile",
                  "workflow/config/paper.yaml", "--default-resources", "slurm_account=x", "slurm_partition=y",
                  "--slurm-init-seconds-before-status-checks", "1", env=env, timeout=300)
    out = r.stdout + r.stderr
    assert "requires a total number of cores" not in out, out[-3000:]
    # It got as far as sbatch, asking for the memory job's configured cores.
    assert "fake sbatch: no cluster in this test" in out, out[-3000:]
    assert "--cpus-per-task=8" in out, out[-3000:]


def test_repository_has_no_workflow_cores_threads():
    """No rule may size itself by workflow.cores (it raises under every non-local executor)."""
    offenders = [str(p.relative_to(REPO)) for p in (REPO / "workflow" / "rules").glob("*.smk")
                 if "workflow.cores" in p.read_text()]
    assert not offenders
