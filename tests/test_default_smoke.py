"""The default profile runs for real, at smoke size: workflow/config/default-smoke.yaml layered on the
default config runs every rule of the default DAG (`snakemake -n all`) once, with the default config's
shape (the memory table's 4-bit rows on minilm only, as qlora_models: [minilm] asks), and every table says
"smoke run". The paper profile's counterpart is tests/test_paper_smoke.py.
Runtime: the build dominates, 573 s in CI's suite on 2 cores beside the paper smoke (58 jobs, measured
2026-12-06); the shape checks take < 1 s."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pandas as pd
import pytest
import yaml
from slurm_helpers import REPO, build_smoke, copy_workflow, dag_rules, mirror_env, rules_ran, snakemake

from deltalora import smoke

DEFAULT_SMOKE = ("--configfile", "workflow/config/default-smoke.yaml")
# The build runs inside the first test that uses it: allow it more than the suite's 600 s per test.
pytestmark = pytest.mark.timeout(1800)
CONFIG = REPO / "workflow" / "config"


def _layered(base: dict, over: dict) -> dict:
    """Snakemake's own layering of --configfile over the Snakefile's configfile (a recursive update)."""
    out = copy.deepcopy(base)
    for k, v in over.items():
        out[k] = _layered(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


@pytest.mark.parametrize("profile, smoke_file", [("default", "default-smoke"), ("paper", "smoke")])
def test_each_profile_has_a_smoke_of_its_shape(profile, smoke_file):
    """The smoke of a profile shrinks sizes only: the same rows (names and methods), row lists, memory
    models, 4-bit models and dtypes, QLoRA rows and NLG paper tables."""
    base = yaml.safe_load((CONFIG / f"{profile}.yaml").read_text())
    over = yaml.safe_load((CONFIG / f"{smoke_file}.yaml").read_text())
    layered = _layered(base, over)
    assert over["smoke"] is True and "train.smoke=true" in over["overrides"]
    assert over["runs_dir"] != base["runs_dir"]  # smoke runs never mix with real ones
    assert {r: v["method"] for r, v in layered["rows"].items()} == {
        r: v["method"] for r, v in base["rows"].items()
    }
    if (
        profile == "default"
    ):  # the paper smoke keeps a subset of the rows (its runs are hours each at full size)
        for key in (("glue", "rows"), ("nlg", "rows"), ("audit", "rows"), ("qlora", "rows")):
            assert layered[key[0]][key[1]] == base[key[0]][key[1]], key
        for key in ("models", "qlora_models", "dtypes", "device", "bf16_model"):
            assert layered["memory"][key] == base["memory"][key], key
    for key in ("glue", "nlg", "audit"):
        assert set(layered[key]["tasks"]) <= set(base[key]["tasks"])


@pytest.fixture(scope="module")
def default_smoke(tmp_path_factory):
    d = copy_workflow(tmp_path_factory.mktemp("default_smoke"))
    # an empty HF_HOME, offline: the default profile needs no hub
    return build_smoke(d, "default smoke", *DEFAULT_SMOKE, env=mirror_env(d / "hf", d))


def test_default_smoke_runs_every_rule_of_the_default_dag(default_smoke):
    r = snakemake(default_smoke["dir"], "-n", "all", env=default_smoke["env"], timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    full = dag_rules(r.stdout + r.stderr)
    assert {"glue_train", "nlg_train", "memory_measure", "memory_table", "qlora_table", "audit"} <= full
    assert rules_ran(default_smoke["log"]) == full


def test_default_smoke_memory_table_has_the_default_shape(default_smoke):
    """Both models in fp32, the 4-bit rows on minilm only (the shape that broke the plot)."""
    res = default_smoke["dir"] / "results"
    df = pd.read_csv(res / "memory_table.csv")
    assert set(df["model"]) == {"minilm", "gpt2m-4l"} and set(df["dtype"]) == {"fp32"}
    four_bit = set(df[df["config"].isin(["qlora", "folded_4bit"])]["model"])
    from deltalora.core.quantized import bnb_status

    assert four_bit == ({"minilm"} if bnb_status()[0] else set())  # without bitsandbytes: skipped, logged
    assert (res / "plots" / "memory_speed.png").stat().st_size > 0
    raw = json.loads((res / "memory" / "measurements.json").read_text())
    assert len(raw["rows"]) == len(df)


def test_default_smoke_records_and_tables_say_smoke(default_smoke):
    d: Path = default_smoke["dir"]
    recs = [json.loads(p.read_text()) for p in (d / "runs" / "default-smoke").rglob("record.json")]
    assert len(recs) >= 20
    for rec in recs:
        assert rec["profile"] == "default" and smoke.is_smoke(rec) and rec["steps"] <= 4
    for p in sorted((d / "results").glob("*.md")):
        title = next(line for line in p.read_text().splitlines() if line.startswith("# "))
        assert smoke.SMOKE_NOTE in title, f"{p.name}: {title}"
