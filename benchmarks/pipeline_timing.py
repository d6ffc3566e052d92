"""Wall time of the tiny pipeline (workflow/config/test.yaml): a fresh build, and an immediate rerun.

The tests assert what the pipeline does (the table equals the records; a rerun schedules no job and
changes no file), never how long it takes: a wall-clock limit fails on a loaded machine though nothing
is wrong. The timing lives here instead and is reported in docs/benchmarks_pipeline.md.

Each repetition builds in a fresh private copy of the workflow (runs, results, data and caches inside
it), then reruns the same target at once. Results go to stdout and, with --json, to a file.

    python benchmarks/pipeline_timing.py --repeats 1 --cores 2 --json /tmp/pipeline_timing.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TARGET = "results/glue_table.csv"


def _copy_workflow(d: Path) -> None:
    for name in ("Snakefile", "all", "workflow", "paper_tables"):
        src = REPO / name
        (shutil.copytree if src.is_dir() else shutil.copy)(src, d / name)


def _timed_snakemake(d: Path, env: dict[str, str], cores: int) -> tuple[float, str]:
    cmd = [
        sys.executable,
        "-m",
        "snakemake",
        TARGET,
        "--cores",
        str(cores),
        "--configfile",
        "workflow/config/test.yaml",
    ]
    t0 = time.perf_counter()
    r = subprocess.run(cmd, cwd=d, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - t0
    if r.returncode != 0:
        raise SystemExit(f"snakemake failed in {d}:\n{(r.stdout + r.stderr)[-3000:]}")
    return elapsed, r.stdout + r.stderr


def measure(repeats: int, cores: int) -> dict:
    builds, reruns = [], []
    for _ in range(repeats):
        with tempfile.TemporaryDirectory(prefix="deltalora-pipeline-timing-") as tmp:
            d = Path(tmp)
            _copy_workflow(d)
            env = {
                **os.environ,
                "DELTALORA_DATA_DIR": str(d / "data"),
                "XDG_CACHE_HOME": str(d / "cache"),
                "HF_HOME": str(d / "hf"),
                "DELTALORA_NO_PROGRESS": "1",
            }
            b, _ = _timed_snakemake(d, env, cores)
            r, log = _timed_snakemake(d, env, cores)
            if "Nothing to be done" not in log:
                raise SystemExit("the immediate rerun scheduled jobs")
            builds.append(b)
            reruns.append(r)
    return {
        "target": TARGET,
        "config": "workflow/config/test.yaml",
        "cores": cores,
        "repeats": repeats,
        "build_s": builds,
        "build_median_s": statistics.median(builds),
        "rerun_s": reruns,
        "rerun_median_s": statistics.median(reruns),
        "cpu_count": os.cpu_count(),
        "load_avg_1m_at_end": os.getloadavg()[0],
        "python": platform.python_version(),
        "host": platform.node(),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repeats", type=int, default=1, help="fresh builds to time (default 1)")
    p.add_argument("--cores", type=int, default=2, help="snakemake --cores (default 2, as the tests)")
    p.add_argument("--json", type=Path, help="also write the result to this file")
    args = p.parse_args(argv)
    if args.repeats < 1 or args.cores < 1:
        p.error("--repeats and --cores must be at least 1")
    res = measure(args.repeats, args.cores)
    print(
        f"tiny pipeline, {res['repeats']} fresh build(s) with --cores {res['cores']}: median build "
        f"{res['build_median_s']:.1f} s, immediate rerun {res['rerun_median_s']:.1f} s "
        f"(1-min load average at the end: {res['load_avg_1m_at_end']:.1f} on {res['cpu_count']} CPUs)"
    )
    if args.json:
        args.json.write_text(json.dumps(res, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
