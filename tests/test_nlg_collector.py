"""NLG table collector on synthetic, complete run records: cells equal the records' medians (computed
here with the standard library), units follow the paper tables, and bad record sets are refused."""

from __future__ import annotations

import json
import statistics as st
from pathlib import Path

import pandas as pd
import pytest

from deltalora.collect.generation_tables import collect_nlg
from deltalora.records import RecordError

PROV = {
    "versions": {"torch": "x"},
    "git_commit": "abc",
    "device": {"name": "cpu"},
    "wall_time_s": 1.0,
    "peak_memory_bytes": 1,
    "peak_memory_method": "test",
}


def record(
    task: str,
    row: str,
    method: str,
    seed: int,
    metrics: dict,
    *,
    dropout: float = 0.0,
    profile: str = "default",
) -> dict:
    entry = {"epoch": 1, "step": 10, "metrics": metrics, "extra_splits": {}}
    return {
        "schema_version": 1,
        "status": "complete",
        "task": task,
        "task_family": "nlg",
        "model": "m",
        "method": method,
        "row": row,
        "seed": seed,
        "profile": profile,
        "config": {"hp": {"r": 8, "dropout": dropout}},
        "metric": next(iter(metrics)),
        "epochs": [entry],
        "best": entry,
        "final": entry,
        "params": {"total": 100, "trainable": 10},
        "provenance": PROV,
        "generation": {"decoding": {"num_beams": 10}, "n_eval": 5, "samples": []},
    }


def write(tmp: Path, recs: list[dict]) -> list[Path]:
    paths = []
    for i, r in enumerate(recs):
        p = tmp / f"r{i}" / "record.json"
        p.parent.mkdir(parents=True)
        p.write_text(json.dumps(r))
        paths.append(p)
    return paths


def test_webnlg_cells_equal_record_medians_in_paper_units(tmp_path):
    vals = {
        ("lora", 0): 40.0,
        ("lora", 1): 44.0,
        ("lora", 2): 41.0,
        ("delta_lora", 0): 45.0,
        ("delta_lora", 1): 43.0,
    }
    recs = []
    for (row, seed), bleu in vals.items():
        metrics = {
            f"{m}_{s}": bleu + i
            for i, m in enumerate(("bleu", "meteor", "ter"))
            for s in ("seen", "unseen", "all")
        }
        recs.append(record("webnlg", row, row, seed, metrics))
    out = collect_nlg("webnlg", write(tmp_path, recs), tmp_path / "webnlg_table.csv", profile="default")
    table = pd.read_csv(out).set_index("row")
    for row in ("lora", "delta_lora"):
        bleus = [v for (r, _), v in vals.items() if r == row]
        assert table.loc[row, "bleu_all"] == pytest.approx(st.median(bleus))
        assert table.loc[row, "bleu_all_std"] == pytest.approx(st.stdev(bleus))
        # METEOR and TER are stored x100 and shown as fractions, as in the LoRA paper's WebNLG table
        assert table.loc[row, "meteor_all"] == pytest.approx(st.median(bleus) / 100 + 0.01)
        assert table.loc[row, "ter_seen"] == pytest.approx(st.median(bleus) / 100 + 0.02)
        assert table.loc[row, "n_seeds"] == len(bleus)
    md = (tmp_path / "webnlg_table.md").read_text()
    assert "default profile" in md and "| LoRA |" in md


def test_redundant_no_dropout_control_is_noted(tmp_path):
    recs = [
        record("xsum", row, "lora", s, {"rouge1": 10.0 + s, "rouge2": 3.0, "rougeL": 9.0})
        for row in ("lora", "lora_nodrop")
        for s in (0, 1)
    ]
    collect_nlg("xsum", write(tmp_path, recs), tmp_path / "xsum_table.csv", profile="default")
    assert "control repeats the LoRA row" in (tmp_path / "xsum_table.md").read_text()
    recs = [
        record(
            "xsum",
            row,
            "lora",
            s,
            {"rouge1": 10.0, "rouge2": 3.0, "rougeL": 9.0},
            dropout=0.1 if row == "lora" else 0.0,
        )
        for row in ("lora", "lora_nodrop")
        for s in (0, 1)
    ]
    collect_nlg("xsum", write(tmp_path / "b", recs), tmp_path / "b.csv", profile="default")
    assert "control repeats" not in (tmp_path / "b.md").read_text()


def test_bad_record_sets_are_refused_by_name(tmp_path):
    ok = record(
        "e2e", "lora", "lora", 0, {"bleu": 1.0, "nist": 1.0, "meteor": 1.0, "rouge_l": 1.0, "cider": 1.0}
    )
    other = dict(ok, profile="paper")
    paths = write(tmp_path, [ok, other])
    with pytest.raises(RecordError, match=r"r1/record.json: record is from profile 'paper'"):
        collect_nlg("e2e", paths, tmp_path / "t.csv", profile="default")
    paths = write(tmp_path / "dup", [ok, ok])
    with pytest.raises(RecordError, match="two records for the same"):
        collect_nlg("e2e", paths, tmp_path / "t.csv", profile="default")
    paths[0].write_text(paths[0].read_text()[:50])
    with pytest.raises(RecordError, match="not a complete JSON run record"):
        collect_nlg("e2e", paths, tmp_path / "t.csv", profile="default")
    assert not (tmp_path / "t.csv").exists()
