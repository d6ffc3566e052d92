"""Wall and CPU time of one smoke-size `deltalora train` process, with and without bitsandbytes loaded.

A workflow job is one such process, and at smoke size (the CI's default and paper smokes: 4 optimizer
steps on 32 examples) imports and set-up are most of it. `deltalora/startup.py` leaves bitsandbytes
unimported when no run quantizes; the same command with `--set model_options.quantize=none` (a mention
of `quantize`, so the rule keeps it) loads it as before. The two alternate within each round, each in
a fresh process, on the RTE proxy with a one-layer MiniLM; the medians are printed.
Run: python benchmarks/process_start.py [--rounds 5]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SMALL = [
    "train", "--task", "glue/rte", "--method", "lora", "--seed", "0", "--profile", "default",
    "--set", "train.max_steps=4", "--set", "model_options.num_hidden_layers=1", "--set", "data.n_train=32",
    "--set", "data.n_val=32", "--set", "data.dev_size=16", "--set", "train.threads=1",
]  # fmt: skip
VARIANTS = {
    "skipped (default)": [],
    "kept (quantize=none mentioned)": ["--set", "model_options.quantize=none"],
}


def _one(extra: list[str], out: Path, env: dict) -> tuple[float, float]:
    """(wall s, CPU s of the child) of one process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    cmd = [sys.executable, "-m", "deltalora", *SMALL, "--out", str(out), *extra]
    subprocess.run(cmd, check=True, capture_output=True, env=env)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="deltalora-start-") as tmp:
        env = {
            **os.environ,
            "PYTHONPATH": str(REPO),
            "DELTALORA_DATA_DIR": f"{tmp}/data",
            "HF_HOME": f"{tmp}/hf",
            "HF_HUB_OFFLINE": "1",
            "DELTALORA_NO_PROGRESS": "1",
        }
        _one([], Path(tmp, "warm"), env)  # data files and bytecode caches, outside the timing
        times: dict[str, list[tuple[float, float]]] = {k: [] for k in VARIANTS}
        for rnd in range(args.rounds):
            for name, extra in VARIANTS.items():
                times[name].append(_one(extra, Path(tmp, f"{rnd}-{len(times[name])}-{extra!r:.8}"), env))
    base = statistics.median(c for _, c in times["kept (quantize=none mentioned)"])
    print(f"{'process':<32} {'wall s':>7} {'CPU s':>7} {'CPU ratio':>9}   ({args.rounds} rounds, medians)")
    for name, ts in times.items():
        wall, cpu = statistics.median(w for w, _ in ts), statistics.median(c for _, c in ts)
        print(f"{name:<32} {wall:7.2f} {cpu:7.2f} {cpu / base:9.2f}")


if __name__ == "__main__":
    main()
