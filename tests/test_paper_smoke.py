"""The paper profile runs for real, at smoke size, offline.

`deltalora mirror` fills an HF_HOME with stand-ins under the paper's hub ids; the paper profile's own
loaders read them with HF_HUB_OFFLINE=1. Then the smoke DAG (paper.yaml + smoke.yaml) runs locally:
every rule of the full paper DAG runs at least once, records say smoke and the precision really used,
and every table and the audit say "smoke run, not the paper's numbers" in their titles.

The smoke is built once per session (`slurm_helpers.paper_smoke`): through the local SLURM cluster when
one answers (CI), else with the local executor. tests/test_slurm.py checks the same build's submissions.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from slurm_helpers import PAPER, dag_rules, mirror_env, rules_ran, snakemake

from deltalora import smoke

# The build runs inside the first test that uses it (in one worker; another worker waits for it): allow
# more than the suite's 600 s per test.
pytestmark = pytest.mark.timeout(2700)


def test_mirror_is_loaded_by_the_paper_profiles_own_calls(mirror_home, tmp_path):  # noqa: F811
    code = (
        "from transformers import AutoModelForSequenceClassification, AutoModelForCausalLM, "
        "AutoModelForSeq2SeqLM, AutoTokenizer, RobertaForSequenceClassification, GPT2LMHeadModel, "
        "BartForConditionalGeneration\n"
        "from deltalora.tasks.glue import load_glue\n"
        "from deltalora.tasks import e2e, webnlg, xsum\n"
        "import json\n"
        "out = {}\n"
        "for t in ['cola','sst2','mrpc','qqp','stsb','mnli','qnli','rte']:\n"
        "    dd = load_glue(t, profile='paper'); out[t] = {s: len(v) for s, v in dd.items()}\n"
        "out['e2e'] = {s: len(v) for s, v in e2e.load_real().items()}\n"
        "out['webnlg'] = {s: len(v) for s, v in webnlg.load_real().items()}\n"
        "out['xsum'] = {s: len(v) for s, v in xsum.load_real().items()}\n"
        "m = AutoModelForSequenceClassification.from_pretrained('FacebookAI/roberta-base', num_labels=3)\n"
        "assert isinstance(m, RobertaForSequenceClassification)\n"
        "gpt2 = AutoModelForCausalLM.from_pretrained('openai-community/gpt2-medium')\n"
        "assert isinstance(gpt2, GPT2LMHeadModel)\n"
        "bart = AutoModelForSeq2SeqLM.from_pretrained('facebook/bart-large')\n"
        "assert isinstance(bart, BartForConditionalGeneration)\n"
        "rt = AutoTokenizer.from_pretrained('FacebookAI/roberta-base')\n"
        "gt = AutoTokenizer.from_pretrained('openai-community/gpt2-medium')\n"
        "out['roberta_specials'] = [rt.bos_token_id, rt.pad_token_id, rt.eos_token_id, rt.unk_token_id, "
        "rt.mask_token_id == len(rt) - 1]\n"
        "out['gpt2_eos'] = [gt.eos_token, gt.eos_token_id == len(gt) - 1]\n"
        "print('RESULT' + json.dumps(out))\n"
    )
    r = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=mirror_env(mirror_home, tmp_path),
        timeout=600,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    out = json.loads(r.stdout.split("RESULT", 1)[1])
    assert out["rte"] == {"train": 64, "validation": 32}
    assert out["mnli"] == {"train": 64, "validation_matched": 32, "validation_mismatched": 32}
    assert set(out["e2e"]) == {"train", "validation", "test"}
    assert set(out["webnlg"]) == {"train", "dev", "test"}
    assert set(out["xsum"]) == {"train", "validation", "test"}
    assert out["roberta_specials"] == [0, 1, 2, 3, True]
    assert out["gpt2_eos"] == ["<|endoftext|>", True]
    snap = next((mirror_home / "hub" / "models--FacebookAI--roberta-base" / "snapshots").iterdir())
    assert {"config.json", "model.safetensors", "vocab.json", "merges.txt", "tokenizer.json"} <= {
        p.name for p in snap.iterdir()
    }


def test_smoke_runs_every_rule_of_the_paper_dag(paper_smoke):
    r = snakemake(paper_smoke["dir"], "-n", "all", *PAPER, env=paper_smoke["env"], timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    paper = dag_rules(r.stdout + r.stderr)
    assert {"glue_train", "nlg_train", "memory_table", "audit", "glue_table"} <= paper
    assert rules_ran(paper_smoke["log"]) == paper


def _records(d: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in (d / "runs" / "paper-smoke").rglob("record.json")]


def test_smoke_records_say_smoke_and_the_precision_really_used(paper_smoke):
    recs = _records(paper_smoke["dir"])
    assert len(recs) >= 17
    for rec in recs:
        assert rec["profile"] == "paper" and rec["smoke"] is True and smoke.is_smoke(rec)
        # The paper profile asks for fp16; without a GPU the run trains in fp32, and says so.
        assert rec["precision"]["requested"] == "fp16"
        assert rec["precision"]["used"] == ("fp16" if rec["precision"]["device"] == "cuda" else "fp32")
    # the GLUE table's RTE runs (the decisive study's RTE runs, with the same row names, start from RoBERTa)
    glue_rte = paper_smoke["dir"] / "runs" / "paper-smoke" / "glue" / "rte"
    rte = [
        json.loads(p.read_text())
        for row in ("lora", "delta_lora")
        for p in (glue_rte / row).rglob("record.json")
    ]
    assert rte and all(r["config"]["train"]["init_from"].endswith("/init_state") for r in rte)  # MNLI init


def test_every_table_and_the_audit_say_smoke_in_their_title(paper_smoke):
    res = paper_smoke["dir"] / "results"
    mds = sorted(res.glob("*.md"))
    names = {p.name for p in mds}
    assert {
        "glue_table.md",
        "e2e_table.md",
        "webnlg_table.md",
        "xsum_table.md",
        "ablation_dropout.md",
        "ablation_lambda_k.md",
        "ablation_rank.md",
        "memory_table.md",
        "audit.md",
    } <= names
    for p in mds:
        title = next(line for line in p.read_text().splitlines() if line.startswith("# "))
        assert smoke.SMOKE_NOTE in title, f"{p.name}: {title}"
    assert smoke.SMOKE_NOTE in (res / "glue_table.tex").read_text().splitlines()[0]
    source = next(line for line in (res / "glue_table.md").read_text().splitlines() if "Profile:" in line)
    assert "smoke mirror" in source, source  # the mirror's stand-ins, not the hub


def test_every_csv_row_of_a_smoke_build_says_smoke(paper_smoke):
    import pandas as pd

    csvs = sorted((paper_smoke["dir"] / "results").glob("*.csv"))
    assert {"glue_table.csv", "audit.csv", "memory_table.csv", "runtime_table.csv"} <= {p.name for p in csvs}
    for p in csvs:
        df = pd.read_csv(p, keep_default_na=False)
        assert "smoke" in df.columns and df["smoke"].astype(str).eq("True").all(), p.name
    audit = pd.read_csv(paper_smoke["dir"] / "results" / "audit.csv", keep_default_na=False)
    assert not audit["scale"].str.startswith("paper scale").any()
    assert audit["scale"].str.startswith("smoke scale").any()


def test_smoke_and_real_records_never_mix():
    real = {"config": {"train": {"smoke": False}}, "_path": "real/record.json"}
    fake = {"config": {"train": {"smoke": True}}, "_path": "smoke/record.json"}
    with pytest.raises(ValueError, match="never mix smoke runs"):
        smoke.check_records([fake, real])
    try:
        assert smoke.check_records([real]) is False and not smoke.active()
        assert smoke.check_records([fake]) is True and smoke.active()
        assert smoke.label("paper") == f"paper profile - {smoke.SMOKE_NOTE}"
    finally:
        smoke.activate(False)


def test_smoke_plots_carry_the_note_in_their_title():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = plt.figure()
    fig.suptitle("GLUE: score per seed")
    try:
        smoke.mark_figure(fig)
        assert smoke.SMOKE_NOTE.upper() not in fig._suptitle.get_text()  # not a smoke process
        smoke.activate()
        smoke.mark_figure(fig)
        assert fig._suptitle.get_text().startswith(smoke.SMOKE_NOTE.upper())
        assert fig._suptitle.get_text().endswith("GLUE: score per seed")
    finally:
        smoke.activate(False)
        plt.close(fig)


def test_precision_really_used_is_what_the_record_says():
    """The paper profile's fp16 is mixed precision on a GPU; on CPU the run trains in fp32 (and its record
    says so, see test_smoke_records_say_smoke_and_the_precision_really_used)."""
    from deltalora.train import precision_used

    assert precision_used("fp16", use_cuda=False) == "fp32"
    assert precision_used("fp16", use_cuda=True) == "fp16"
    assert precision_used("bf16", use_cuda=False) == "bf16"
    assert precision_used("fp32", use_cuda=True) == "fp32"
