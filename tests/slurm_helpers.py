"""Shared helpers of the paper-smoke and SLURM tests: a private workflow copy, real-component gates."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
IN_CI = os.environ.get("CI", "").lower() == "true"


def require(ok: bool, why: str) -> None:
    """Skip with `why` outside CI; in CI (CI=true) the component must be there, so fail instead."""
    if ok:
        return
    if IN_CI:
        pytest.fail(f"CI=true but {why}")
    pytest.skip(why)


def have_slurm_plugin() -> bool:
    try:
        import snakemake_executor_plugin_slurm  # noqa: F401
    except ImportError:
        return False
    return True


def cluster_up() -> bool:
    """True when a SLURM controller answers (workflow/profiles/slurm-local/cluster.sh up)."""
    if shutil.which("scontrol") is None:
        return False
    return subprocess.run(["scontrol", "ping"], capture_output=True, text=True).returncode == 0


def copy_workflow(d: Path) -> Path:
    """A private copy of the workflow (runs, results and Snakemake's lock stay inside it)."""
    for name in ("Snakefile", "all", "workflow", "paper_tables"):
        src = REPO / name
        if src.exists():
            (shutil.copytree if src.is_dir() else shutil.copy)(src, d / name)
    return d


def snakemake(cwd: Path, *args: str, env: dict | None = None, timeout: int = 1200) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "snakemake", *args], cwd=cwd, capture_output=True, text=True,
                          env=env, timeout=timeout)
