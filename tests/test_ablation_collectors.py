"""Ablation collectors (dropout, lambda x K, rank) on synthetic, complete run records.

Every expected cell is computed here from the records with the standard library (statistics.median,
statistics.stdev), independently of pandas and of the collector's code.
"""

from __future__ import annotations

import itertools
import json
import math
import statistics as st
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from deltalora.collect.ablations import collect_dropout, collect_lambda_k, collect_rank
from deltalora.records import RecordError

TASKS = {"sst2": "accuracy", "mrpc": "f1"}
THRESHOLDS = ("0.01", "0.001", "0.0001", "1e-06")


def make_record(
    *,
    task: str,
    method: str,
    seed: int,
    hp: dict,
    value: float,
    profile: str = "default",
    row: str | None = None,
    grad_cosine: dict | None = None,
    layer_ranks: dict | None = None,
    steps: int = 32,
) -> dict:
    """A complete run record (the schema of deltalora.train.run), with the given score and analysis."""
    metric = TASKS[task]
    hp_full = {
        "r": 8,
        "alpha": 16.0,
        "dropout": 0.0,
        "rslora": False,
        **(
            {"update_ratio": 2.0, "start_step": 4, "engine": "folded", "allow_dropout": False}
            if method == "delta_lora"
            else {}
        ),
        **hp,
    }
    analysis: dict = {}
    if layer_ranks is not None:
        layers = {}
        for name, (w, eff) in layer_ranks.items():
            layers[name] = {
                "shape": [384, 384],
                "w": {
                    "fro_norm": 0.1 * w,
                    "ranks": {t: (w if t == "0.001" else w + 1) for t in THRESHOLDS},
                    "singular_values": [1.0] * w,
                },
                "effective": {
                    "fro_norm": 0.2,
                    "ranks": {t: (eff if t == "0.001" else eff + 1) for t in THRESHOLDS},
                    "singular_values": [1.0] * eff,
                },
                "two_r": 2 * int(hp_full["r"]),
            }
        analysis["update_rank"] = {
            "thresholds": [1e-2, 1e-3, 1e-4, 1e-6],
            "headline_threshold": 1e-3,
            "layers": layers,
        }
    if grad_cosine is not None:
        analysis["grad_cosine"] = grad_cosine
    best = {"epoch": 2, "step": steps, "metrics": {metric: value, "eval_loss": 0.5}}
    return {
        "schema_version": 1,
        "status": "complete",
        "task": f"glue/{task}",
        "task_family": "glue",
        "model": "embedded:minilm",
        "method": method,
        "row": row or method,
        "seed": seed,
        "profile": profile,
        "config": {
            "profile": profile,
            "task": f"glue/{task}",
            "method": method,
            "seed": seed,
            "hp": hp_full,
            "train": {"epochs": 2, "batch_size": 16, "grad_accum": 1, "lr": 3e-3},
            "analysis": {"update_rank": layer_ranks is not None},
        },
        "metric": metric,
        "epochs": [{"epoch": 1, "step": steps // 2, "metrics": {metric: value - 1.0}}, best],
        "best": best,
        "final": best,
        "train_curve": [{"step": 4, "epoch": 0.25, "loss": 0.7}],
        "train_summary": {},
        "steps": steps,
        "params": {"total": 1000, "trainable": 10, "extra_updated": 0},
        "delta_lora": None,
        "analysis": analysis,
        "provenance": {
            "versions": {"torch": "2.13.0"},
            "git_commit": "0123456789abcdef",
            "git_dirty": False,
            "device": {"type": "cpu", "name": "test cpu"},
            "wall_time_s": 1.0,
            "peak_memory_bytes": 1,
            "peak_memory_method": "ru_maxrss (process peak RSS, CPU)",
        },
    }


def write(tmp_path: Path, recs: list[dict]) -> list[Path]:
    paths = []
    for i, r in enumerate(recs):
        p = tmp_path / "runs" / f"{i:03d}" / "record.json"
        p.parent.mkdir(parents=True)
        p.write_text(json.dumps(r))
        paths.append(p)
    return paths


def close(a, b) -> bool:
    if isinstance(b, float) and math.isnan(b):
        return isinstance(a, float) and math.isnan(a)
    return abs(float(a) - float(b)) <= 1e-9 * max(1.0, abs(float(b)))


def expected_scores(values: dict) -> dict:
    """values: {(task, seed): score} for one row -> per-task median/std, avg, avg_std."""
    tasks = sorted({t for t, _ in values})
    out = {}
    for t in tasks:
        v = [x for (tt, _), x in values.items() if tt == t]
        out[t], out[f"{t}_std"] = st.median(v), st.stdev(v)
    out["avg"] = st.fmean(out[t] for t in tasks)
    seeds = sorted({s for _, s in values})
    out["avg_std"] = st.stdev([st.fmean(values[(t, s)] for t in tasks) for s in seeds])
    return out


def plots_written(plots: Path, base: str) -> bool:
    return all((plots / f"{base}.{ext}").stat().st_size > 1000 for ext in ("png", "pdf"))


# --------------------------------------------------------------------------- dropout
def dropout_records(rng):
    recs, values, cos = [], {}, {}
    for method, p, task, seed in itertools.product(("delta_lora", "lora"), (0.0, 0.1), TASKS, (0, 1, 2)):
        v = float(rng.uniform(60, 90))
        values.setdefault((method, p), {})[(task, seed)] = v
        gc = {
            str(step): {f"layer{k}": (1.0 if p == 0 else float(rng.uniform(0.5, 0.95))) for k in range(2)}
            for step in (0, 10)
        }
        for step, layers in gc.items():
            for layer, c in layers.items():
                cos[(method, p, task, seed, int(step), layer)] = c
        hp = {"dropout": p} | ({"allow_dropout": p > 0} if method == "delta_lora" else {})
        # the row name deliberately does not tell the dropout: the collector must read config.hp
        recs.append(make_record(task=task, method=method, seed=seed, hp=hp, value=v, grad_cosine=gc))
    return recs, values, cos


def test_dropout_table_cells_equal_records(tmp_path):
    recs, values, cos = dropout_records(np.random.default_rng(0))
    out = collect_dropout(
        write(tmp_path, recs),
        tmp_path / "results" / "ablation_dropout.csv",
        profile="default",
        plots_dir=tmp_path / "results" / "plots",
    )
    df = pd.read_csv(out)
    assert list(zip(df["method"], df["dropout"], strict=False)) == [
        ("lora", 0.0),
        ("lora", 0.1),
        ("delta_lora", 0.0),
        ("delta_lora", 0.1),
    ]
    assert len(df) == 4 and set(df["n_seeds"]) == {3}
    for _, row in df.iterrows():
        exp = expected_scores(values[(row["method"], row["dropout"])])
        for k, v in exp.items():
            assert close(row[k], v), (row["method"], row["dropout"], k)
        assert row["sst2_n"] == row["mrpc_n"] == 3

    c = pd.read_csv(tmp_path / "results" / "ablation_dropout_cosines.csv")
    assert {"method", "dropout", "step", "layer", "cosine"} <= set(c.columns)
    assert len(c) == len(cos) == 2 * 2 * 2 * 3 * 2 * 2
    for _, r in c.iterrows():
        assert close(
            r["cosine"], cos[(r["method"], r["dropout"], r["task"], r["seed"], r["step"], r["layer"])]
        )

    md = out.with_suffix(".md").read_text()
    assert "default profile" in md and "±" in md and "embedded profile" in md
    for method, p in [("lora", 0.1), ("delta_lora", 0.1)]:
        m = st.fmean(v for k, v in cos.items() if k[:2] == (method, p))
        assert f"{m:.4f}" in md
    assert "1.0000" in md  # without dropout the cosine is 1
    assert plots_written(tmp_path / "results" / "plots", "ablation_dropout_scores")
    assert plots_written(tmp_path / "results" / "plots", "ablation_dropout_cosines")
    assert "plots/ablation_dropout_scores.png" in md


def test_dropout_without_cosines_still_builds(tmp_path):
    recs = [
        make_record(task="sst2", method="lora", seed=s, hp={"dropout": p}, value=70.0 + s + p)
        for s in (0, 1)
        for p in (0.0, 0.1)
    ]
    out = collect_dropout(write(tmp_path, recs), tmp_path / "ablation_dropout.csv", profile="default")
    assert len(pd.read_csv(out)) == 2
    assert len(pd.read_csv(tmp_path / "ablation_dropout_cosines.csv")) == 0
    assert "did not measure it" in out.with_suffix(".md").read_text()


# --------------------------------------------------------------------------- lambda x K
def test_lambda_k_grid_cells_equal_records(tmp_path):
    rng = np.random.default_rng(1)
    recs, values = [], {}
    for lam, k, task, seed in itertools.product((0.0, 2.0, 0.5), (0, 4), TASKS, (0, 1, 2)):
        v = float(rng.uniform(50, 90))
        values.setdefault((lam, k), {})[(task, seed)] = v
        recs.append(
            make_record(
                task=task, method="delta_lora", seed=seed, value=v, hp={"update_ratio": lam, "start_step": k}
            )
        )
    out = collect_lambda_k(
        write(tmp_path, recs),
        tmp_path / "ablation_lambda_k.csv",
        profile="default",
        plots_dir=tmp_path / "plots",
    )
    df = pd.read_csv(out)
    assert {"lambda", "K", "mean", "std", "n"} <= set(df.columns)
    assert len(df) == 6
    assert list(zip(df["lambda"], df["K"], strict=False)) == sorted(values)
    for _, row in df.iterrows():
        vals = values[(row["lambda"], row["K"])]
        per_seed = [st.fmean(vals[(t, s)] for t in TASKS) for s in (0, 1, 2)]
        assert close(row["mean"], st.fmean(vals.values()))  # mean over tasks and seeds
        assert close(row["std"], st.stdev(per_seed))
        assert row["n"] == 3 and row["n_runs"] == 6 and row["incomplete_seeds"] == 0
    md = out.with_suffix(".md").read_text()
    assert "lambda \\ K" in md and "default profile" in md and "±" in md
    assert plots_written(tmp_path / "plots", "ablation_lambda_k_heatmap")


def test_lambda_k_heatmap_colour_bar_names_the_metric(tmp_path, monkeypatch):
    """The colour bar says which metric the cells average (accuracy, or each task's where they differ)."""
    from deltalora.collect import plots as plots_mod

    labels = []

    def capture(fig, base):
        labels.append(fig.axes[-1].get_ylabel())  # the colour bar's own axes
        plots_mod._plt().close(fig)
        return []

    monkeypatch.setattr(plots_mod, "save", capture)
    for tasks, expected in (
        (("sst2",), "mean best-epoch accuracy over tasks and seeds"),
        (("sst2", "mrpc"), "mean over tasks and seeds of the best-epoch sst2 accuracy, mrpc f1"),
    ):
        recs = [
            make_record(
                task=t, method="delta_lora", seed=s, value=70.0 + s, hp={"update_ratio": 2.0, "start_step": 0}
            )
            for t in tasks
            for s in (0, 1)
        ]
        d = tmp_path / "_".join(tasks)
        d.mkdir()
        collect_lambda_k(write(d, recs), d / "l.csv", profile="default", plots_dir=d / "plots")
        assert labels[-1] == expected


def test_lambda_k_refuses_other_methods(tmp_path):
    recs = [make_record(task="sst2", method="lora", seed=0, hp={}, value=1.0)]
    with pytest.raises(RecordError, match="delta_lora"):
        collect_lambda_k(write(tmp_path, recs), tmp_path / "x.csv", profile="default")


# --------------------------------------------------------------------------- rank
def test_rank_table_cells_equal_records(tmp_path):
    rng = np.random.default_rng(2)
    recs, values, ranks = [], {}, {}
    for method, r, task, seed in itertools.product(("lora", "delta_lora"), (2, 4), TASKS, (0, 1)):
        v = float(rng.uniform(50, 90))
        values.setdefault((method, r), {})[(task, seed)] = v
        lr = {}
        for k in range(3):
            eff = int(rng.integers(1, (2 if method == "delta_lora" else 1) * r + 1))
            w = 0 if method == "lora" else int(rng.integers(1, 2 * r + 1))
            lr[f"base_model.model.layer{k}.query"] = (w, eff)
            ranks.setdefault((method, r), []).append((w, eff))
        recs.append(make_record(task=task, method=method, seed=seed, value=v, hp={"r": r}, layer_ranks=lr))
    out = collect_rank(
        write(tmp_path, recs), tmp_path / "ablation_rank.csv", profile="default", plots_dir=tmp_path / "plots"
    )
    df = pd.read_csv(out)
    assert list(zip(df["method"], df["r"], strict=False)) == [
        ("lora", 2),
        ("lora", 4),
        ("delta_lora", 2),
        ("delta_lora", 4),
    ]
    for _, row in df.iterrows():
        key = (row["method"], row["r"])
        for k, v in expected_scores(values[key]).items():
            assert close(row[k], v), (key, k)
        ws, effs = zip(*ranks[key], strict=False)
        assert close(row["eff_rank"], st.median(effs)) and close(row["w_rank"], st.median(ws))
        assert row["eff_rank_min"] == min(effs) and row["eff_rank_max"] == max(effs)
        assert row["two_r"] == 2 * row["r"] and row["n_layers"] == 3 and row["rank_threshold"] == 1e-3
    md = out.with_suffix(".md").read_text()
    assert "sigma_1" in md and "0.001" in md and "default profile" in md
    assert plots_written(tmp_path / "plots", "ablation_rank")


def test_rank_needs_the_update_rank_analysis(tmp_path):
    recs = [make_record(task="sst2", method="lora", seed=0, hp={}, value=1.0)]
    with pytest.raises(RecordError, match="update_rank"):
        collect_rank(write(tmp_path, recs), tmp_path / "x.csv", profile="default")


# --------------------------------------------------------------------------- refusals
@pytest.mark.parametrize("collector", [collect_dropout, collect_lambda_k, collect_rank])
def test_a_record_from_another_profile_is_refused(tmp_path, collector):
    kw = {"layer_ranks": {"l": (0, 2)}}
    recs = [
        make_record(task="sst2", method="delta_lora", seed=0, hp={}, value=1.0, **kw),
        make_record(task="sst2", method="delta_lora", seed=1, hp={}, value=2.0, profile="paper", **kw),
    ]
    paths = write(tmp_path, recs)
    with pytest.raises(RecordError, match="profile 'paper'") as e:
        collector(paths, tmp_path / "out.csv", profile="default")
    assert str(paths[1]) in str(e.value)
    assert not (tmp_path / "out.csv").exists()


def test_two_records_for_the_same_cell_are_refused(tmp_path):
    recs = [make_record(task="sst2", method="lora", seed=0, hp={"dropout": 0.1}, value=v) for v in (1.0, 2.0)]
    with pytest.raises(RecordError, match="two records"):
        collect_dropout(write(tmp_path, recs), tmp_path / "out.csv", profile="default")


def test_dropout_refuses_other_methods(tmp_path):
    recs = [make_record(task="sst2", method="full_ft", seed=0, hp={}, value=1.0)]
    with pytest.raises(RecordError, match="dropout ablation"):
        collect_dropout(write(tmp_path, recs), tmp_path / "out.csv", profile="default")
