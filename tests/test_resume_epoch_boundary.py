"""Resuming from a checkpoint saved on an epoch's last step is exact.

Regression (found by the SLURM scancel-and-resume test): Trainer saved a step checkpoint that fell on an
epoch's last step BEFORE that epoch's evaluation. A run resumed from it (1) never evaluated that epoch,
so its record missed an epoch, and (2) drew different dropout masks from the next step on, because the
evaluation had advanced the global torch RNG (each DataLoader iterator draws its base seed from it)
after the RNG state was saved. Now such a step evaluates first, then saves.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from deltalora.records import read_record

SETS = [
    "model_options.num_hidden_layers=1",
    "data.n_train=32",
    "data.n_val=16",
    "train.epochs=2",
    "train.batch_size=4",
    "train.logging_steps=1",
    "train.checkpoint_every=8",
]  # 8 steps per epoch


def _train(out: Path, data: Path, **env: str) -> None:
    sets = [*SETS, f"data.data_dir={data}"]
    cmd = [
        sys.executable,
        "-m",
        "deltalora",
        "train",
        "--task",
        "glue/sst2",
        "--method",
        "lora",
        "--seed",
        "0",
        "--out",
        str(out),
        *sum((["--set", s] for s in sets), []),
    ]
    r = subprocess.run(
        cmd,
        env={**os.environ, "DELTALORA_NO_PROGRESS": "1", **env},
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert r.returncode == 0, r.stderr[-3000:]


def test_resume_from_an_epoch_boundary_checkpoint_matches_the_uninterrupted_run(tmp_path):
    data = tmp_path / "data"
    full = tmp_path / "full"
    _train(full, data, DELTALORA_KEEP_CHECKPOINTS="1")
    assert (full / "trainer" / "checkpoint-8" / ".complete").is_file()  # the end of epoch 1
    resumed = tmp_path / "resumed"
    shutil.copytree(full, resumed)
    shutil.rmtree(resumed / "trainer" / "checkpoint-16")  # as if killed after epoch 1's checkpoint
    (resumed / "record.json").unlink()
    _train(resumed, data)
    a, b = read_record(full / "record.json"), read_record(resumed / "record.json")
    assert b["train_curve"] == a["train_curve"]
    assert b["epochs"] == a["epochs"]
    assert b["final"]["metrics"] == a["final"]["metrics"]
