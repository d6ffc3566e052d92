"""The decisive study (deltalora/audit/decisive.py): the convergence criterion, claim 4 at equal tuning
selected on dev, and the report files."""

from __future__ import annotations

import json
import os

import pandas as pd
import pytest
from test_audit_selection import NOISE, SEEDS, _rec

from deltalora.audit import decisive
from deltalora.audit.claims import Settings, assess_equal_tuning
from deltalora.audit.evidence import Evidence
from deltalora.audit.rules import SUPPORTED


def _curve(losses):
    return {
        "task": "glue/rte",
        "row": "lora",
        "method": "lora",
        "seed": 0,
        "steps": len(losses),
        "train_curve": [{"step": i + 1, "loss": v} for i, v in enumerate(losses)],
    }


def test_convergence_criterion():
    flat = [1.0 - 0.5 * min(i, 40) / 40 for i in range(100)]  # falls, then flat over the last quarter
    falling = [1.0 - 0.005 * i for i in range(100)]  # still falling: 0.125 over the last 25 steps
    assert decisive.convergence(_curve(flat)).converged is True
    c = decisive.convergence(_curve(falling))
    assert c.converged is False and c.points == 25
    assert c.rel_drop == pytest.approx(0.005 * 24 / 1.0, rel=1e-6)  # fitted fall / first logged loss
    assert decisive.convergence(_curve(falling), max_drop=0.5).converged is True
    assert decisive.convergence(_curve([1.0, 0.9, 0.8])).converged is None  # too few points to check


def test_a_fall_within_the_per_step_noise_is_not_called_still_falling():
    """Small batches with flipped labels: per-step losses jump; a fitted 'fall' must beat that noise."""
    import random

    rng = random.Random(3)
    head = [1.0] * 75
    noisy_flat = head + [0.05 + (0.35 if rng.random() < 0.3 else 0.0) for _ in range(25)]
    c = decisive.convergence(_curve(noisy_flat))
    assert c.rel_drop >= decisive.MAX_DROP  # the fitted line falls by more than 5% of the first loss...
    assert c.p_falling > 0.05 and c.converged is True  # ...but the noise explains it
    noisy_falling = [1.0 - 0.008 * i + (0.1 if i % 3 == 0 else 0.0) for i in range(100)]
    c = decisive.convergence(_curve(noisy_falling))
    assert c.p_falling < 0.05 and c.converged is False


def test_claim4_at_equal_tuning_selects_each_learning_rate_on_dev():
    # dev picks delta_lora_lr0.001 (val 60) and lora_lr0.001 (val 50); validation would pick 70 vs 90
    planted = {
        "delta_lora": (70.0, 60.0),
        "delta_lora_lr0.001": (60.0, 80.0),
        "lora": (90.0, 70.0),
        "lora_lr0.001": (50.0, 75.0),
    }
    recs = [_rec(r, s, v, d) for r, (v, d) in planted.items() for s in SEEDS]
    rows = {r.id: r for r in assess_equal_tuning(Evidence("default", recs), Settings(n_resamples=500))}
    cmp = rows["8.glue/rte"].data["cmp"]
    assert cmp.extra["best_delta"] == "delta_lora_lr0.001" and cmp.extra["best_lora"] == "lora_lr0.001"
    assert cmp.ci.estimate == pytest.approx(10.0)
    assert rows["8"].verdict == SUPPORTED


def test_build_writes_both_files_with_power_and_convergence(tmp_path):
    planted = {
        "delta_lora": (70.0, 60.0),
        "lora": (69.0, 61.0),
        "lora_lr0.001": (50.0, 75.0),
        "lora_scaled": (68.0, 50.0),
    }
    paths = []
    for r, (v, d) in planted.items():
        for s in SEEDS:
            rec = _rec(r, s, v + (NOISE[s] * 3 if r == "delta_lora" else 0), d)
            rec.update(
                steps=16,
                train_curve=[{"step": i, "loss": 1.0} for i in range(1, 17)],
                train_summary={"train_runtime": 8.0},
                provenance={"wall_time_s": 9.0},
            )
            p = tmp_path / f"{r}{s}.json"
            p.write_text(json.dumps(rec))
            paths.append(str(p))
    out, csv = tmp_path / "d.md", tmp_path / "d.csv"
    decisive.build(paths, profile="default", out=out, csv=csv, read=lambda p: json.loads(open(p).read()))
    df = pd.read_csv(csv, keep_default_na=False).set_index("id")
    assert {"8", "5", "5.scale"} <= set(df.index)
    assert df.loc["8", "mde"] != "" and df.loc["8", "seeds_needed"] != ""
    md = out.read_text()
    assert "20/20 runs converged" in md and "0.500 s per optimizer step" in md
    # built again from the same records: the same bytes (no build duration or time stamp in the report)
    first = (out.read_bytes(), csv.read_bytes())
    decisive.build(paths, profile="default", out=out, csv=csv, read=lambda p: json.loads(open(p).read()))
    assert (out.read_bytes(), csv.read_bytes()) == first


@pytest.mark.parametrize(
    ("configfile", "jobs", "runs"),
    [
        # one job per (task, row): 4 tasks x 9 rows, the 20 seeds the power plan asks for
        ("workflow/config/paper.yaml", 4 * 9, 4 * 9 * 20),
        # SST-2 x 5 rows, each row's 20 seeds split over 2 jobs
        ("workflow/config/default.yaml", 5 * 2, 5 * 20),
    ],
)
def test_decisive_dry_run_lists_the_study_at_the_seeds_the_power_plan_asks_for(
    tmp_path, configfile, jobs, runs
):
    import re

    import yaml
    from test_pipeline import copy_workflow, snakemake, workflow_env

    from deltalora.audit.power import pairs_needed

    (tmp_path / "wd").mkdir()
    wd = copy_workflow(tmp_path / "wd")
    r = snakemake(
        wd, "-n", "-p", "results/audit_decisive.md", "--configfile", configfile, env=workflow_env(wd)
    )
    assert r.returncode == 0, r.stdout + r.stderr
    text = r.stdout + r.stderr
    plan = yaml.safe_load((wd / configfile).read_text())["decisive"]["seeds"]
    assert pairs_needed("wilcoxon", plan["effect"], plan["paired_sd"]) == 20
    assert (
        len(re.findall(r"rule decisive_train(?:_\d+)?:", text)) == jobs
        and text.count("rule audit_decisive:") == 1
    )
    assert len(set(re.findall(r"[\w/.]*/decisive/[\w/.]+?/record\.json", text))) == runs
    assert "planned by power" in text and "20 seeds needed" in text
    if (
        "paper" in configfile
    ):  # the paper study keeps the paper profile's epochs: no proxy-study override leaks in
        for cmd in re.findall(r"deltalora train [^>]*", text):
            sets = re.findall(r"--set (\S+)", cmd)
            assert all(s.startswith(("train.lr=", "train.threads=", "hp.", "analysis.")) for s in sets), cmd


def test_plan_seeds_command_prints_the_power_plan_and_names_a_bad_field(capsys):
    """`deltalora plan-seeds` is what the workflow calls to lay out the study: the function's own plan."""
    from deltalora.audit.power import plan_seeds
    from deltalora.cli import main

    spec = {"paired_sd": 1.66, "effect": 1, "max": 20}
    assert main(["plan-seeds", json.dumps(spec)]) == 0
    got = json.loads(capsys.readouterr().out)
    want = plan_seeds(spec)
    assert got == {"seeds": want.seeds, "needed": want.needed, "text": want.text} and len(got["seeds"]) == 20
    assert main(["plan-seeds", "[3, 5]"]) == 0 and json.loads(capsys.readouterr().out)["seeds"] == [3, 5]
    assert main(["plan-seeds", json.dumps({"paired_sd": -1, "effect": 1})]) == 2
    assert "decisive.seeds.paired_sd = -1: must be" in capsys.readouterr().err


def test_workflow_plans_seeds_by_the_command_not_by_importing_the_package(tmp_path):
    """The DAG's seeds come from `python3 -m deltalora plan-seeds` (run like the rules run theirs), not from
    importing the package into Snakemake (which made scipy a requirement of Snakemake itself); when the
    command fails, the DAG fails naming the field and the command. A `python3` shim on PATH logs each call.
    ~20 s."""
    import shutil
    import sys

    from test_pipeline import REPO, copy_workflow, snakemake, workflow_env

    for smk in [REPO / "Snakefile", *(REPO / "workflow" / "rules").glob("*.smk")]:
        text = smk.read_text()
        assert "sys.path" not in text and "import deltalora" not in text and "from deltalora" not in text, smk
    (tmp_path / "wd").mkdir()
    wd = copy_workflow(tmp_path / "wd")
    shim, log = tmp_path / "bin" / "python3", tmp_path / "calls.log"
    shim.parent.mkdir()
    args = ("-n", "-p", "results/audit_decisive.md", "--configfile", "workflow/config/test.yaml")
    for works in (True, False):
        run = f'exec {sys.executable} "$@"' if works else 'echo "no deltalora here" >&2; exit 7'
        shim.write_text(f'#!/bin/sh\necho "$@" >> {log}\n{run}\n')
        shim.chmod(0o755)
        env = workflow_env(wd, PATH=f"{shim.parent}:{os.environ['PATH']}")
        r = snakemake(wd, *args, env=env)
        text = r.stdout + r.stderr
        if works:
            assert r.returncode == 0, text[-3000:]
            assert "-m deltalora plan-seeds [0, 1] --field decisive.seeds" in log.read_text()
            assert "2 seeds, listed in the configuration" in text  # the plan's text reaches the rule
        else:
            assert r.returncode != 0
            assert "decisive.seeds: `python3 -m deltalora plan-seeds" in text and "no deltalora here" in text
    assert shutil.which("python3", path=env["PATH"]) == str(shim)


def test_the_mean_curve_over_seeds_shows_a_fall_that_single_noisy_runs_hide():
    """Each run's slow fall drowns in per-step noise; averaged over 20 seeds it is clear: still falling."""
    import random

    rng = random.Random(3)
    recs = []
    for s in range(20):
        losses = [1.0] * 75 + [0.3 - 0.003 * i + (0.35 if rng.random() < 0.3 else 0.0) for i in range(25)]
        recs.append({**_curve(losses), "seed": s})
    assert sum(decisive.convergence(r).converged is True for r in recs) >= 15  # most runs look flat alone
    row = decisive.row_convergence(recs)
    assert len(row) == 1 and row[0].seed == "mean of 20" and row[0].points == 25
    assert row[0].rel_drop >= decisive.MAX_DROP and row[0].p_falling < 0.05 and row[0].converged is False
    assert row[0].rel_drop == pytest.approx(
        0.003 * 24, abs=0.025
    )  # the true fall (7.2%); single runs: -7% to 30%
    flat = [{**_curve([1.0] * 75 + [0.2] * 25), "seed": s} for s in range(3)]
    assert decisive.row_convergence(flat)[0].converged is True
