"""Any PEFT tuner as a baseline from YAML (`method: peft`), LoRA+ and SGD optimizers, the version floor,
the modern-baselines table and audit claim 9.

Tiny models built from a config (tests/tiny_models.py) and synthetic records; one test runs the
Snakemake rules on the tiny test configuration with a row added by YAML alone (2 jobs of 4 one-layer
runs each). Measured on the shared 2-core machine (load average about 17): the other 19 tests in about
60 s, mostly imports; the pipeline test about 5 minutes of wall time for about 25 CPU-s of training.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
import yaml
from test_audit import _ranked, make_record
from tiny_models import base_model

from deltalora.audit.claims import CLAIMS, Settings, assess
from deltalora.audit.evidence import Evidence
from deltalora.audit.rules import REFUTED, SUPPORTED
from deltalora.cli import main
from deltalora.collect.baselines import baselines_table, collect_baselines, lr_text, record_row
from deltalora.config import ConfigError, resolve_run
from deltalora.methods import MethodContext, get_method
from deltalora.methods import releases as rel
from deltalora.methods.peft_method import check_family, check_peft_hp, tuner_configs

REPO = Path(__file__).resolve().parents[1]
BERT_CTX = MethodContext(
    target_modules=("query", "value"), task_type="SEQ_CLS", modules_to_save=("classifier",)
)


def peft_apply(hp: dict, kind: str = "bert"):
    model = base_model(kind, dtype=torch.float32)
    return get_method("peft").apply(model, {**get_method("peft").defaults, **hp}, BERT_CTX)


# ----------------------------------------------------------------------------- the generic method
def test_a_peft_row_builds_its_config_class_with_the_suites_targets():
    model = peft_apply({"config": "LoHaConfig", "r": 4, "alpha": 8})
    cfg = model.peft_config["default"]
    assert type(cfg).__name__ == "LoHaConfig" and cfg.r == 4 and cfg.alpha == 8
    assert set(cfg.target_modules) == {"query", "value"} and cfg.task_type == "SEQ_CLS"
    assert cfg.modules_to_save and "classifier" in cfg.modules_to_save
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    # LoHa's own factors on both targets of both layers, and the head; nothing of the backbone
    assert sum("hada_w1_a" in n for n in trainable) == 4
    assert all("hada_" in n or "classifier" in n for n in trainable), sorted(trainable)


def test_lora_options_reach_peft_unchanged():
    m = peft_apply({"config": "LoraConfig", "r": 4, "lora_alpha": 8, "use_rslora": True})
    layer = m.base_model.model.bert.encoder.layer[0].attention.self.query
    assert layer.scaling["default"] == pytest.approx(8 / math.sqrt(4), rel=1e-12)  # rsLoRA: alpha/sqrt(r)
    m = peft_apply({"config": "LoraConfig", "r": 4, "use_dora": True})
    assert "default" in m.base_model.model.bert.encoder.layer[0].attention.self.query.lora_magnitude_vector
    pattern = {"config": "LoraConfig", "r": 4, "rank_pattern": {"value": 2}, "alpha_pattern": {"value": 3}}
    self_attn = peft_apply(pattern).base_model.model.bert.encoder.layer[1].attention.self
    assert self_attn.query.r["default"] == 4 and self_attn.value.r["default"] == 2
    assert self_attn.value.scaling["default"] == pytest.approx(3 / 2)
    # PiSSA: the adapter starts at the principal part of W and W keeps the residual, so W_eff is unchanged
    base = base_model("bert", dtype=torch.float32)
    w = base.bert.encoder.layer[0].attention.self.query.weight.detach().clone()
    q = peft_apply({"config": "LoraConfig", "r": 4, "init_lora_weights": "pissa"})
    q = q.base_model.model.bert.encoder.layer[0].attention.self.query
    ba = q.lora_B["default"].weight @ q.lora_A["default"].weight * q.scaling["default"]
    assert torch.allclose(q.base_layer.weight + ba, w, atol=1e-5)
    assert torch.linalg.matrix_rank(ba.double(), rtol=1e-6) == 4 and ba.norm() > 0.1 * w.norm()


def test_loraplus_optimizer_trains_b_ratio_times_faster():
    model = peft_apply({"config": "LoraConfig", "r": 4})
    hp = {
        **get_method("peft").defaults,
        "config": "LoraConfig",
        "optimizer": "loraplus",
        "loraplus_lr_ratio": 8,
    }
    opt = get_method("peft").optimizer(model, hp, 1e-3, 0.0)
    lr_of = {id(p): g["lr"] for g in opt.param_groups for p in g["params"]}
    a = [lr_of[id(p)] for n, p in model.named_parameters() if "lora_A" in n]
    b = [lr_of[id(p)] for n, p in model.named_parameters() if "lora_B" in n]
    assert a and set(a) == {1e-3} and b and all(x == pytest.approx(8e-3, rel=1e-12) for x in b)
    assert get_method("peft").optimizer(model, {**hp, "optimizer": "adamw"}, 1e-3, 0.0) is None


def test_full_ft_sgd_takes_plain_sgd_steps():
    model = base_model("bert", dtype=torch.float64)
    ff = get_method("full_ft")
    model = ff.apply(model, {}, BERT_CTX)
    opt = ff.optimizer(model, {**ff.defaults, "optimizer": "sgd"}, 0.1, 0.0)
    assert isinstance(opt, torch.optim.SGD) and opt.param_groups[0]["momentum"] == 0.0
    w = model.bert.encoder.layer[0].attention.self.query.weight
    before = w.detach().clone()
    x = torch.randint(0, 61, (3, 7))
    model(input_ids=x, labels=torch.tensor([0, 1, 2])).loss.backward()
    g = w.grad.detach().clone()
    opt.step()
    assert torch.allclose(w.detach(), before - 0.1 * g, rtol=0, atol=1e-15)  # one SGD step, exactly
    assert ff.optimizer(model, ff.defaults, 0.1, 0.0) is None  # AdamW (the Trainer's) by default


# ----------------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    ("sets", "message"),
    [
        (["hp.config=LoHAConfig"], "unknown PEFT tuner config 'LoHAConfig'; did you mean 'LoHaConfig'?"),
        (["hp.config=LoHaConfig", "hp.alpah=3"], "LoHaConfig has no argument 'alpah'; did you mean 'alpha'?"),
        (
            ["hp.config=LoraConfig", "hp.target_modules=[query]"],
            "hp.target_modules (method peft): set by the suite",
        ),
        (["hp.config=LoraConfig", "hp.optimizer=sgd"], "hp.optimizer (method peft): 'sgd' is not allowed"),
        (["hp.config=LoHaConfig", "hp.optimizer=loraplus"], "it needs config LoraConfig, not LoHaConfig"),
        (["hp.config=LoraConfig", "hp.init_lora_weights=eva"], "needs a pass over training data"),
        (
            ["hp.config=LoraConfig", "hp.r=-1"],
            "PEFT refuses LoraConfig with these arguments on the bert family",
        ),
    ],
)
def test_bad_peft_rows_are_one_clear_message_exit_2_and_no_record(tmp_path, capsys, sets, message):
    out = tmp_path / "run"
    args = ["train", "--task", "glue/sst2", "--method", "peft", "--seed", "0", "--out", str(out)]
    assert main([*args, *(f"--set={s}" for s in sets)]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not out.exists()  # refused before anything is written


def test_a_tuner_peft_cannot_apply_to_a_family_is_refused_by_name():
    configs = tuner_configs()
    # GPT-2's fused c_attn is a transformers Conv1D: PEFT's LoHa, LoKr and HRA have no layer for it
    for name in ("LoHaConfig", "LoKrConfig", "HRAConfig"):
        (msg,) = check_family(configs[name], {"config": name, "r": 4}, ("c_attn",), True, "gpt2")
        assert f"PEFT refuses {name}" in msg and "gpt2 family's c_attn (Conv1D)" in msg
    assert check_family(configs["LoraConfig"], {"config": "LoraConfig"}, ("c_attn",), True, "gpt2") == []
    assert check_family(configs["LoHaConfig"], {"config": "LoHaConfig"}, ("query",), False, "bert") == []


def test_a_tuner_newer_than_the_installed_peft_is_skipped_with_the_release(monkeypatch, tmp_path, capsys):
    assert rel.skip_reason({"config": "HiraConfig"}, "0.19.1") == (
        "HiraConfig needs peft >= 0.20 (installed: peft 0.19.1)"
    )
    assert rel.skip_reason({"config": "LoraConfig", "init_lora_weights": "pissa"}, "0.10.0") == (
        "init_lora_weights=pissa needs peft >= 0.11 (installed: peft 0.10.0)"
    )
    assert (
        rel.skip_reason({"config": "LoraConfig", "use_dora": False}, "0.8.0") is None
    )  # asked for nothing new
    assert rel.skip_reason({"config": "HiraConfig"}, "0.20.0") is None
    monkeypatch.setattr(rel, "installed_peft", lambda: "0.19.1")
    with pytest.raises(rel.MethodUnavailable, match=r"skipped: HiraConfig needs peft >= 0\.20"):
        check_peft_hp({"config": "HiraConfig", "r": 8})
    out = tmp_path / "run"
    args = ["train", "--task", "glue/sst2", "--method", "peft", "--seed", "0", "--out", str(out)]
    assert main([*args, "--set", "hp.config=HiraConfig"]) == 4
    assert "skipped: HiraConfig needs peft >= 0.20 (installed: peft 0.19.1)" in capsys.readouterr().err
    assert not out.exists()


def test_resolved_peft_run_keeps_the_rows_arguments():
    run = resolve_run(
        task="glue/sst2", method="peft", seed=0, sets=["hp.config=VeraConfig", "hp.r=32", "hp.d_initial=0.2"]
    )
    assert run["hp"] == {
        "config": "VeraConfig",
        "optimizer": "adamw",
        "loraplus_lr_ratio": 16.0,
        "r": 32,
        "d_initial": 0.2,
    }
    with pytest.raises(ConfigError, match=r"VeraConfig has no argument 'd_inital'; did you mean 'd_initial'"):
        resolve_run(task="glue/sst2", method="peft", seed=0, sets=["hp.config=VeraConfig", "hp.d_inital=0.2"])


# ----------------------------------------------------------------------------- the workflow schema
def test_the_schema_accepts_any_peft_row_without_regeneration():
    from deltalora import workflow_schema as ws

    text = ws.SCHEMA_FILE.read_text(encoding="utf-8")
    for name in ("default", "paper", "test"):
        cfg = yaml.safe_load((REPO / "workflow" / "config" / f"{name}.yaml").read_text())
        cfg["rows"]["mine"] = {"method": "peft", "hp": {"config": "C3AConfig", "block_size": 64}}
        cfg["baselines"]["rows"].append("mine")
        import jsonschema

        jsonschema.Draft202012Validator(yaml.safe_load(text)).validate(cfg)  # the file as it is, unchanged
    bad = {**cfg, "baselines": {**cfg["baselines"], "lrs": [0]}}
    with pytest.raises(ValueError, match="baselines.lrs.0"):
        ws.validate_workflow_config(bad)


# ----------------------------------------------------------------------------- the table
def study_record(row: str, lr: float, seed: int, val: float, dev: float, **kw) -> dict:
    method = {"delta_lora": "delta_lora", "lora": "lora"}.get(row, "peft")
    rec = make_record("glue/rte", record_row(row, lr), seed, val, method=method, lr=lr)
    rec["best"]["extra_splits"] = {"dev": {"accuracy": dev, "loss": kw.get("dev_loss", 0.5)}}
    rec["params"]["trainable"] = kw.get("trainable", 10)
    rec["steps"] = 10
    rec["train_summary"] = {"train_runtime": kw.get("runtime", 1.0)}
    rec["provenance"].update(
        peak_memory_bytes=kw.get("peak", 1000) + 500,
        peak_memory_method="ru_maxrss (process peak RSS, CPU)",
        rss_at_start_bytes=500,
        process_run_index=kw.get("index", 0),
    )
    eff = kw.get("rank", 8)
    rec["analysis"] = {
        "update_rank": {"layers": {"q": {"shape": [64, 64], "w": _ranked(1), "effective": _ranked(eff)}}}
    }
    return rec


def test_each_row_is_reported_on_validation_at_its_dev_selected_learning_rate():
    recs = []
    for seed in (0, 1, 2):
        # LoRA: lr 0.001 best on dev (but worse on validation: selection must not look there)
        recs += [study_record("lora", 0.001, seed, 60 + seed, 80, runtime=1.0, peak=1000, index=seed)]
        recs += [study_record("lora", 0.003, seed, 90 + seed, 70, runtime=1.0, peak=9999, index=seed + 3)]
        # LoHa: tie on dev at both rates; the lower dev loss (0.003) wins
        recs += [study_record("loha", 0.001, seed, 50, 75, dev_loss=0.6, runtime=3.0, peak=2000, rank=16)]
        recs += [
            study_record(
                "loha", 0.003, seed, 70 + 2 * seed, 75, dev_loss=0.4, runtime=3.0, peak=2000, rank=16
            )
        ]
    table, info = baselines_table(
        recs, rows=["lora", "loha", "hira"], skipped={"hira": "HiraConfig needs peft >= 0.20"}
    )
    t = table.set_index("row")
    assert (
        t.loc["lora", "rte_lr"] == 0.001 and t.loc["lora", "rte"] == 61.0 and t.loc["lora", "rte_std"] == 1.0
    )
    assert (
        t.loc["loha", "rte_lr"] == 0.003 and t.loc["loha", "rte"] == 72.0 and t.loc["loha", "rte_std"] == 2.0
    )
    assert t.loc["loha", "step_time_ratio"] == pytest.approx(3.0, rel=1e-12)
    # peak: only first-of-process runs (index 0) count, minus the RSS they started from: 2000 / 1000
    assert t.loc["loha", "peak_memory_ratio"] == 2.0
    assert t.loc["loha", "update_rank"] == 16 and t.loc["lora", "update_rank"] == 8
    assert t.loc["hira", "status"] == "skipped: HiraConfig needs peft >= 0.20"
    assert info["lrs"] == [0.001, 0.003] and info["splits"] == ["dev"]
    assert lr_text(1e-5) == "0.00001" and record_row("loha", 3e-3) == "baselines.loha.lr0.003"


def test_collect_writes_csv_markdown_latex_and_plot(tmp_path):
    paths = []
    for i, (row, lr, seed) in enumerate(
        (r, lr, s) for r in ("lora", "vera") for lr in (0.001, 0.01) for s in (0, 1)
    ):
        p = tmp_path / "runs" / f"{i}" / "record.json"
        p.parent.mkdir(parents=True)
        p.write_text(json.dumps(study_record(row, lr, seed, 50 + i, 50 + i)))
        paths.append(p)
    out = tmp_path / "results" / "baselines_table.csv"
    collect_baselines(
        paths,
        out,
        profile="default",
        rows=["lora", "vera", "hira"],
        skipped={"hira": "why"},
        plots_dir=tmp_path / "results" / "plots",
    )
    md = out.with_suffix(".md").read_text()
    assert "| VeRA |" in md and "@0.01" in md and "| HiRA | skipped: why |" in md
    assert "\\begin{tabular}" in out.with_suffix(".tex").read_text()
    assert (tmp_path / "results" / "plots" / "baselines_rank.png").stat().st_size > 1000


# ----------------------------------------------------------------------------- audit claim 9
def _claim8_records(delta_gain: float) -> list:
    recs = []
    for seed in range(8):
        noise = (-1) ** seed * 0.3 * (seed % 3)
        for lr, dev in ((0.001, 70), (0.003, 60)):
            recs.append(
                study_record(
                    "delta_lora", lr, seed, 70 + noise + (delta_gain + 0.1 * seed) * (lr == 0.001), dev
                )
            )
            recs.append(
                study_record("loha", lr, seed, 70 + noise - 5 * (lr == 0.001), 60 + 20 * (lr == 0.003))
            )
            recs.append(study_record("lora", lr, seed, 70, 60))
    return recs


def _claim8(delta_gain: float) -> list:
    recs = _claim8_records(delta_gain)
    rows = [r for r in assess(Evidence("default", recs), Settings(n_resamples=2000)) if r.claim_id == "9"]
    return rows


def test_claim_9_pairs_each_method_at_its_dev_selected_rate():
    assert "9" in CLAIMS
    head, pooled, detail = _claim8(2.0)
    assert head.level == "claim" and head.verdict == SUPPORTED and pooled.id == "9.loha"
    # LoHa's dev picks 0.003 (where it does not lose 5 points); Delta-LoRA's picks 0.001
    assert (
        "selected baselines.loha.lr0.003" in detail.evidence
        and "selected baselines.delta_lora.lr0.001" in detail.evidence
    )
    assert detail.data["cmp"].diffs.mean() == pytest.approx(2.0 + 0.35, abs=1e-9)  # gain + mean(0.1 seed)
    # the power columns, as on claims 4 and 5: minimum detectable effect and seeds needed for 1 point
    assert pooled.mde is not None and pooled.seeds_needed is not None and detail.mde is not None
    assert _claim8(-2.0)[0].verdict == REFUTED
    # LoRA and the scale control are claims 4/5, not variants
    assert all(".lora" not in r.id for r in _claim8(2.0))


def test_claim_1_compares_the_update_rank_across_methods():
    recs = [
        study_record(r, 0.001, 0, 50, 50, rank=k) for r, k in (("loha", 16), ("lora", 8), ("delta_lora", 12))
    ]
    rows = {r.id: r for r in assess(Evidence("default", recs), Settings(n_resamples=200))}
    evid = rows["1a.methods"].evidence
    assert evid.index("LoHa 16/64") < evid.index("Delta-LoRA 12/64 (W itself 1)") < evid.index("LoRA 8/64")
    assert rows["1a.methods"].verdict == REFUTED  # the study's Delta-LoRA W update: rank 1 <= 2r = 16
    assert rows["1a"].evidence.startswith("no evidence")  # the study's runs do not enter 1a's own verdict


# ----------------------------------------------------------------------------- the pipeline, YAML only
def test_a_peft_method_added_by_yaml_alone_gets_its_table_row(tmp_path):
    from test_pipeline import copy_workflow, snakemake, workflow_env

    wd = copy_workflow(tmp_path)
    cfg = yaml.safe_load((wd / "workflow" / "config" / "test.yaml").read_text())
    cfg["rows"]["lokr_mine"] = {"method": "peft", "hp": {"config": "LoKrConfig", "r": 2, "alpha": 4}}
    cfg["baselines"] = {
        "tasks": ["rte"],
        "rows": ["lora", "lokr_mine"],
        "seeds": [0, 1],
        "lrs": [0.001, 0.003],
    }
    (wd / "mine.yaml").write_text(yaml.safe_dump(cfg))
    r = snakemake(
        wd, "results/baselines_table.csv", "--cores", "2", "--configfile", "mine.yaml", env=workflow_env(wd)
    )
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
    import pandas as pd

    t = pd.read_csv(wd / "results" / "baselines_table.csv").set_index("row")
    assert t.loc["lokr_mine", "status"] == "ok" and t.loc["lokr_mine", "config"] == "LoKrConfig"
    assert t.loc["lokr_mine", "rte_n"] == 2 and t.loc["lokr_mine", "rte_lr"] in (0.001, 0.003)
    assert 0 < t.loc["lokr_mine", "trainable_params"] < t.loc["lora", "trainable_params"] * 10
    rec = json.loads(
        next(
            (wd / "runs" / "test" / "baselines" / "rte").glob("baselines.lokr_mine.lr0.001/seed0/record.json")
        ).read_text()
    )
    assert rec["config"]["hp"] == {
        "config": "LoKrConfig",
        "optimizer": "adamw",
        "loraplus_lr_ratio": 16.0,
        "r": 2,
        "alpha": 4,
    }
    assert "| lokr_mine |" in (wd / "results" / "baselines_table.md").read_text()


def test_the_audit_report_renders_claim_9_and_the_rank_across_methods(tmp_path):
    from deltalora.audit.report import build_audit

    paths = []
    for i, rec in enumerate(_claim8_records(2.0)):
        p = tmp_path / "runs" / str(i) / "record.json"
        p.parent.mkdir(parents=True)
        p.write_text(json.dumps(rec))
        paths.append(p)
    build_audit(
        paths,
        profile="default",
        out_md=tmp_path / "audit.md",
        plots_dir=tmp_path / "plots",
        settings=Settings(n_resamples=500),
    )
    md = (tmp_path / "audit.md").read_text()
    section = md.split("## Claim 9: Delta-LoRA outperforms the LoRA variants published since")[1]
    assert "**Verdict: supported**" in section and "vs LoHa, pooled over tasks" in section
    ranks = md.split("Rank across methods")[1]
    assert "| loha | 8 | 1 | 64 | 16 |" in ranks and "| delta_lora | 8 | 1 | 64 | 16 |" in ranks
