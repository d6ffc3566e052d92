"""Pipeline runs that inject a protocol detail or a fault: the MNLI initialisation wiring, and a pipeline
SIGKILLed mid-run that resumes exactly on rerun. (A separate file from test_pipeline.py so that parallel
test workers can run the two at once.)"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from test_pipeline import REPO, copy_workflow, snakemake, workflow_env
from waiting import GUARD_S, wait_for

from deltalora.train import latest_checkpoint


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    return copy_workflow(tmp_path_factory.mktemp("wf_runs"))


@pytest.fixture(scope="module")
def env(workdir) -> dict:
    return workflow_env(workdir, DELTALORA_NO_PROGRESS="1")


def _mnli_init_config(tmp_path, group: str) -> Path:
    import yaml

    cfg = yaml.safe_load((REPO / "workflow" / "config" / "test.yaml").read_text())
    cfg.update(runs_dir="runs/test_mnli_init", seeds=[0])
    cfg["glue"].update(tasks=["mnli", "rte"], rows=["lora"], group=group, mnli_init=["rte"])
    path = tmp_path / f"mnli_init_{group}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_mnli_init_runs_each_rte_run_from_its_own_mnli_run(workdir, env, tmp_path):
    """The LoRA protocol's MNLI initialisation as the paper profile wires it (glue.mnli_init, group: seed)."""
    # one row (Delta-LoRA's W_T carried over is tested in test_init_state.py)
    r = snakemake(
        workdir,
        "runs/test_mnli_init/glue/rte/lora/seed0/record.json",
        "--cores",
        "2",
        "--configfile",
        str(_mnli_init_config(tmp_path, "seed")),
        env=env,
    )
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
    for row in ("lora",):
        src = workdir / f"runs/test_mnli_init/glue/mnli/{row}/seed0"
        mnli = json.loads((src / "record.json").read_text())
        rte = json.loads((workdir / f"runs/test_mnli_init/glue/rte/{row}/seed0/record.json").read_text())
        assert (
            mnli["config"]["train"]["save_init"] is True
            and (src / "init_state" / "init_state.json").is_file()
        )
        assert rte["config"]["train"]["init_from"] == f"runs/test_mnli_init/glue/mnli/{row}/seed0/init_state"
        assert json.loads((src / "init_state" / "init_state.json").read_text())["method"] == rte["method"]


def test_mnli_init_needs_one_run_per_job(workdir, env, tmp_path):
    r = snakemake(workdir, "-n", "--configfile", str(_mnli_init_config(tmp_path, "task")), env=env)
    assert r.returncode != 0
    assert "glue.mnli_init (['rte']) needs glue.group: seed" in r.stdout + r.stderr


def test_killed_pipeline_reruns_and_resumes_the_run_exactly(workdir, env, tmp_path):
    """Snakemake and its job SIGKILLed mid-run (a lost node): `--unlock`, the same command again resumes the
    run from its last checkpoint and ends with the metrics of an uninterrupted run."""
    import signal

    import yaml

    cfg = yaml.safe_load((REPO / "workflow" / "config" / "test.yaml").read_text())
    run_sets = [
        "model_options.num_hidden_layers=1",
        "data.n_train=96",
        "data.n_val=32",
        "train.epochs=2",
        "train.batch_size=4",
        "train.checkpoint_every=4",
    ]
    cfg.update(
        runs_dir="runs/test_kill",
        seeds=[0],
        overrides=run_sets,
        rows={"delta_lora": {"method": "delta_lora", "set": ["hp.start_step=2", "hp.engine=inplace"]}},
    )
    cfg["glue"].update(tasks=["sst2"], rows=["delta_lora"], group="seed")
    path = tmp_path / "kill.yaml"
    path.write_text(yaml.safe_dump(cfg))
    target = "runs/test_kill/glue/sst2/delta_lora/seed0/record.json"
    cmd = [sys.executable, "-m", "snakemake", target, "--cores", "1", "--configfile", str(path)]
    proc = subprocess.Popen(
        cmd,
        cwd=workdir,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    run_dir = workdir / "runs/test_kill/glue/sst2/delta_lora/seed0"
    marker = run_dir / "trainer/checkpoint-8/.complete"
    wait_for(marker.exists, proc=proc, what="checkpoint-8 was complete (the pipeline ended before the kill)")
    os.killpg(proc.pid, signal.SIGKILL)  # snakemake and the training process together
    proc.wait()
    assert not (workdir / target).exists(), "a killed run left a record"
    ckpt = latest_checkpoint(run_dir / "trainer")  # checkpoint-8, or a later one if the kill came late
    assert ckpt is not None and int(ckpt.name.split("-")[1]) >= 8
    locked = snakemake(workdir, *cmd[3:], env=env)
    assert locked.returncode != 0 and "unlock" in (locked.stdout + locked.stderr).lower()
    unlock = snakemake(workdir, "--unlock", "--cores", "1", "--configfile", str(path), env=env)
    assert unlock.returncode == 0, unlock.stdout + unlock.stderr
    rerun = snakemake(workdir, *cmd[3:], env=env)
    assert rerun.returncode == 0, (rerun.stdout + rerun.stderr)[-3000:]
    # the uninterrupted reference: the same run through the CLI
    ref_dir = tmp_path / "ref"
    sets = [*run_sets, "hp.start_step=2", "hp.engine=inplace", "train.threads=1"]
    ref = subprocess.run(
        [
            sys.executable,
            "-m",
            "deltalora",
            "train",
            "--task",
            "glue/sst2",
            "--method",
            "delta_lora",
            "--seed",
            "0",
            "--out",
            str(ref_dir),
            *sum((["--set", s] for s in sets), []),
        ],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=GUARD_S,
    )
    assert ref.returncode == 0, ref.stderr[-3000:]
    a = json.loads((ref_dir / "record.json").read_text())
    b = json.loads((workdir / target).read_text())
    assert b["epochs"] == a["epochs"] and b["train_curve"] == a["train_curve"]
    assert b["delta_lora"]["steps_counted"] == 48
    # it resumed (a restart from scratch gives the same metrics on CPU): the record says from where
    assert a["provenance"]["resumed_from"] is None
    assert b["provenance"]["resumed_from"] == {
        "checkpoint": f"trainer/{ckpt.name}",
        "step": int(ckpt.name.split("-")[1]),
    }


def test_killed_grouped_job_recovers_with_the_plain_command(workdir, env, tmp_path):
    """The default profile's GLUE job trains every row and seed of a task in one process. Killed after
    some of its records are written, it leaves complete-looking outputs marked incomplete: without the
    repository's default workflow profile (profiles/default: rerun-incomplete) the documented recovery,
    `--unlock` then the same command, stops with IncompleteFilesException."""
    import signal

    import yaml

    cfg = yaml.safe_load((REPO / "workflow" / "config" / "test.yaml").read_text())
    cfg.update(runs_dir="runs/test_kill_group", seeds=[0, 1])
    cfg["overrides"] = [*cfg["overrides"], "data.n_train=64", "train.epochs=2"]
    cfg["glue"].update(tasks=["sst2"], rows=["lora", "delta_lora"], group="task")
    path = tmp_path / "kill_group.yaml"
    path.write_text(yaml.safe_dump(cfg))
    records = [
        workdir / f"runs/test_kill_group/glue/sst2/{row}/seed{seed}/record.json"
        for row in ("lora", "delta_lora")
        for seed in (0, 1)
    ]
    target = str(records[0].relative_to(workdir))
    cmd = [sys.executable, "-m", "snakemake", target, "--cores", "1", "--configfile", str(path)]
    proc = subprocess.Popen(
        cmd,
        cwd=workdir,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    wait_for(lambda: any(r.exists() for r in records), proc=proc, what="the job wrote its first record")
    os.killpg(proc.pid, signal.SIGKILL)  # snakemake and the training process together
    proc.wait()
    written = [r.exists() for r in records]
    assert any(written) and not all(written), f"the kill did not land mid-job: {written}"
    unlock = snakemake(workdir, "--unlock", "--cores", "1", "--configfile", str(path), env=env)
    assert unlock.returncode == 0, unlock.stdout + unlock.stderr
    # the failure the default profile prevents (Snakemake checks incomplete outputs in a dry run too)
    bare = snakemake(workdir, *cmd[3:], "-n", "--workflow-profile", "none", env=env)
    assert bare.returncode != 0 and "IncompleteFilesException" in bare.stdout + bare.stderr, bare.stderr[
        -2000:
    ]
    rerun = snakemake(workdir, *cmd[3:], env=env)  # the documented command, unchanged
    assert rerun.returncode == 0, (rerun.stdout + rerun.stderr)[-3000:]
    assert all(r.exists() for r in records)
    for r in records:
        rec = json.loads(r.read_text())
        assert rec["steps"] == 16 and rec["task"] == "glue/sst2"  # 64 examples, batch 8, 2 epochs


def test_two_invocations_are_refused_only_when_their_outputs_overlap(workdir, env, tmp_path):
    """What the README says of Snakemake's lock: while one invocation holds it, a second one with
    overlapping outputs is refused and writes nothing, and one with disjoint outputs runs beside it."""
    import signal

    import yaml

    cfg = yaml.safe_load((REPO / "workflow" / "config" / "test.yaml").read_text())
    cfg.update(runs_dir="runs/test_lock", seeds=[0, 1])
    cfg["glue"].update(tasks=["rte"], rows=["lora"], group="seed")
    path = tmp_path / "lock.yaml"
    path.write_text(yaml.safe_dump(cfg))
    first_target, other_target = (f"runs/test_lock/glue/rte/lora/seed{s}/record.json" for s in (0, 1))
    args = ["--cores", "1", "--configfile", str(path)]
    first = subprocess.Popen(
        [sys.executable, "-m", "snakemake", first_target, *args],
        cwd=workdir,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    locks = workdir / ".snakemake" / "locks"
    wait_for(lambda: locks.is_dir() and any(locks.iterdir()), proc=first, what="the first run took its lock")
    os.killpg(first.pid, signal.SIGSTOP)  # it holds the lock and can change nothing meanwhile
    try:
        overlapping = snakemake(workdir, first_target, *args, env=env)
        disjoint = snakemake(workdir, other_target, *args, env=env)
    finally:
        os.killpg(first.pid, signal.SIGCONT)
    out, _ = first.communicate()
    assert first.returncode == 0, out[-3000:]
    text = overlapping.stdout + overlapping.stderr
    assert overlapping.returncode != 0 and ("cannot be locked" in text or "incomplete" in text.lower()), text
    assert "Finished job" not in text
    assert disjoint.returncode == 0, (disjoint.stdout + disjoint.stderr)[-3000:]
    assert (workdir / other_target).is_file() and (workdir / first_target).is_file()
