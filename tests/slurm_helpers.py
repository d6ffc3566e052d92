"""Shared helpers of the paper-smoke and SLURM tests: a private workflow copy, real-component gates."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from filelock import FileLock

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


def snakemake(
    cwd: Path, *args: str, env: dict | None = None, timeout: int = 1200
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "snakemake", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
    )


def build_smoke(d: Path, name: str, *config: str, env: dict, timeout: int = 1800) -> dict:
    """`snakemake --cores 2 all` with the words `config` (--configfile ..., a profile) in `d`: log, job
    count, wall time."""
    started = time.monotonic()
    r = snakemake(d, "--cores", "2", "all", *config, env=env, timeout=timeout)
    wall = time.monotonic() - started
    log = r.stdout + r.stderr
    assert r.returncode == 0, log[-5000:]
    n_jobs = len(re.findall(r"^Finished jobid", log, flags=re.M))
    print(f"{name}: {n_jobs} jobs in {wall:.0f}s")
    return {"dir": d, "log": log, "env": env, "wall_s": wall, "jobs": n_jobs}


def mirror_env(hf: Path, d: Path) -> dict:
    """Environment of a paper-profile run on a mirrored hub: offline, every cache inside `d`."""
    return {
        **os.environ,
        "HF_HOME": str(hf),
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "HF_DATASETS_CACHE": str(hf / "datasets"),
        "XDG_CACHE_HOME": str(d / "xdg"),
        "DELTALORA_DATA_DIR": str(d / "data"),
        "PYTHONPATH": str(REPO),
    }


@pytest.fixture(scope="session")
def mirror_home(tmp_path_factory) -> Path:
    """`deltalora mirror` into a fresh HF_HOME, once per test session (tests/conftest.py shares it)."""
    hf = tmp_path_factory.mktemp("hf")
    r = subprocess.run(
        [sys.executable, "-m", "deltalora", "mirror", "--out", str(hf)],
        capture_output=True,
        text=True,
        env=mirror_env(hf, hf.parent),
        timeout=900,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    return hf


def rules_ran(log: str) -> set[str]:
    """Rule names of the jobs a Snakemake log shows starting."""
    return set(re.findall(r"^(?:local)?rule (\w+):", log, flags=re.M))


def dag_rules(out: str) -> set[str]:
    """Rule names in the 'Job stats' table of a dry run."""
    table = out.split("Job stats:", 1)[1].split("\n\n", 1)[0]
    return {m.group(1) for m in re.finditer(r"^(\w+)\s+\d+\s*$", table, flags=re.M)} - {"total"}


PAPER = ("--configfile", "workflow/config/paper.yaml")
SMOKE = ("--configfile", "workflow/config/paper.yaml", "workflow/config/smoke.yaml")


def once_per_session(tmp_path_factory, name: str, build: Callable[[Path], dict]) -> dict:
    """`build(folder)` once per test session, even across pytest-xdist workers (pytest-xdist's own recipe:
    a lock in the root all workers share). Why: the paper smoke is minutes of CPU, and the local-smoke
    checks and the SLURM checks sit in two files that `--dist loadfile` gives to different workers; one
    build serves both. The first worker to ask builds and writes the JSON-able result; the others wait
    and read it. A failed build is recorded too, so a second worker fails with its message instead of
    building again."""
    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent
    result = root / f"{name}.json"
    with FileLock(str(root / f"{name}.lock")):
        if not result.is_file():
            folder = root / name
            folder.mkdir()
            try:
                out = {"ok": True, **build(folder)}
            except BaseException as e:  # recorded for the other workers, then raised here
                result.write_text(json.dumps({"ok": False, "error": f"{type(e).__name__}: {e}"[-5000:]}))
                raise
            result.write_text(json.dumps(out, default=str))
            return out
    out = json.loads(result.read_text())
    if not out["ok"]:
        pytest.fail(f"{name}: the build in another worker failed: {out['error']}")
    return out


SLURM_PROFILE = ("--workflow-profile", "workflow/profiles/slurm-local")


@pytest.fixture(scope="session")
def paper_smoke(tmp_path_factory, mirror_home) -> dict:
    """The paper profile's whole smoke DAG, built once per session: through the local SLURM cluster when
    one answers (CI brings it up), else with the local executor. `executor` says which; the SLURM tests
    require "slurm", the smoke's content checks take either."""

    def build(d: Path) -> dict:
        copy_workflow(d)
        slurm = have_slurm_plugin() and cluster_up()
        extra = SLURM_PROFILE if slurm else ()
        env = mirror_env(mirror_home, d)
        out = build_smoke(
            d, f"paper smoke ({'SLURM' if slurm else 'local'})", *SMOKE, *extra, env=env, timeout=2400
        )
        return {**out, "dir": str(d), "executor": "slurm" if slurm else "local"}

    out = once_per_session(tmp_path_factory, "paper_smoke", build)
    return {**out, "dir": Path(out["dir"])}
