"""Which device a job uses.

Snakemake counts GPUs (`resources: gpu=1`) but does not say which one a local job should take. On a
SLURM node the scheduler sets CUDA_VISIBLE_DEVICES and we respect it. Locally, with several GPUs and
no CUDA_VISIBLE_DEVICES, each job takes the first GPU whose lock file it can hold (an flock released
when the process exits, even if it is killed), so concurrent jobs never share a GPU.
"""

from __future__ import annotations

import fcntl
import os
import subprocess
import tempfile
from pathlib import Path

_held: list = []  # keep lock files open for the life of the process


def _gpu_count() -> int:
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return 0
    return sum(1 for line in out.stdout.splitlines() if line.startswith("GPU "))


def select_device(mode: str = "auto") -> str:
    """Set CUDA_VISIBLE_DEVICES for this process before CUDA initialises; return a description."""
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
    lock_dir = Path(os.environ.get("DELTALORA_GPU_LOCK_DIR", Path(tempfile.gettempdir()) / "deltalora-gpu-locks"))
    lock_dir.mkdir(parents=True, exist_ok=True)
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
    raise RuntimeError(f"all {n} GPUs are locked by other deltalora jobs; run Snakemake with --resources gpu={n}")
