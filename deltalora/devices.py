"""Which device a job uses.

Snakemake counts GPUs (`resources: gpu=1`) but does not say which one a local job should take. On a
SLURM node the scheduler sets CUDA_VISIBLE_DEVICES and we respect it. Locally, with several GPUs and
no CUDA_VISIBLE_DEVICES, each job takes the first GPU whose lock file it can hold (an flock released
when the process exits, even if it is killed), so concurrent jobs never share a GPU; when all are held,
it waits for one to be released (DELTALORA_GPU_WAIT_S bounds the wait, default a week).
"""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

_held: list = []  # keep lock files open for the life of the process


def _gpu_count() -> int:
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return 0
    return sum(1 for line in out.stdout.splitlines() if line.startswith("GPU "))


def select_device(
    mode: str = "auto", *, poll_s: float = 2.0, on_wait: Callable[[float], None] | None = None
) -> str:
    """Set CUDA_VISIBLE_DEVICES for this process before CUDA initialises; return a description.

    With several GPUs, take the first free one; when every GPU is held by another job, wait for one
    (polling every `poll_s` seconds; `on_wait(seconds_waited)` is called before each sleep).
    """
    if mode == "cpu":
        os.environ["CUDA_VISIBLE_DEVICES"] = ""
        return "cpu"
    if mode != "auto":
        raise ValueError(f"--device: {mode!r} is not allowed; allowed: auto, cpu")
    if os.environ.get("CUDA_VISIBLE_DEVICES") is not None:
        return f"CUDA_VISIBLE_DEVICES={os.environ['CUDA_VISIBLE_DEVICES']} (given)"
    n = _gpu_count()
    if n <= 1:
        return "cpu" if n == 0 else "gpu 0"
    lock_dir = Path(
        os.environ.get("DELTALORA_GPU_LOCK_DIR", Path(tempfile.gettempdir()) / "deltalora-gpu-locks")
    )
    lock_dir.mkdir(parents=True, exist_ok=True)
    # More jobs than GPUs (Snakemake run without --resources gpu=N, or another user's jobs): wait for a
    # free GPU rather than fail; the wait ends when any holder exits (its flock is released then).
    limit = float(os.environ.get("DELTALORA_GPU_WAIT_S", 7 * 24 * 3600))
    waited = 0.0
    while True:
        got = _try_lock(lock_dir, n)
        if got is not None:
            return got
        if waited >= limit:
            raise RuntimeError(
                f"all {n} GPUs stayed locked by other deltalora jobs for {waited:.0f}s "
                f"(DELTALORA_GPU_WAIT_S={limit:g}); run Snakemake with --resources gpu={n}"
            )
        if waited == 0.0:
            print(
                f"deltalora: all {n} GPUs are in use by other deltalora jobs; waiting for one to be free",
                file=sys.stderr,
                flush=True,
            )
        if on_wait is not None:
            on_wait(waited)
        time.sleep(poll_s)
        waited += poll_s


def _try_lock(lock_dir: Path, n: int) -> str | None:
    """Lock the first free GPU of `n` and point CUDA_VISIBLE_DEVICES at it; None when all are held."""
    for i in range(n):
        f = open(lock_dir / f"gpu{i}.lock", "w")  # noqa: SIM115 - held until the process exits
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            f.close()
            continue
        _held.append(f)
        os.environ["CUDA_VISIBLE_DEVICES"] = str(i)
        return f"gpu {i} (locked {f.name})"
    return None
