"""paper_tables/*.csv: format, provenance rules, scales, and spot checks against the research notes."""

from __future__ import annotations

import math
import re
from pathlib import Path

import pandas as pd
import pytest

TABLES = Path(__file__).resolve().parents[1] / "paper_tables"
BASE_COLUMNS = ["paper", "method", "label", "params", "source", "confirmed", "note"]
METRICS = {
    "glue_roberta_base.csv": ["mnli", "sst2", "mrpc", "cola", "qnli", "qqp", "rte", "stsb", "avg"],
    "e2e_gpt2_medium.csv": ["bleu", "nist", "meteor", "rouge_l", "cider"],
    "webnlg_gpt2_medium.csv": [
        "bleu_seen",
        "bleu_unseen",
        "bleu_all",
        "meteor_seen",
        "meteor_unseen",
        "meteor_all",
        "ter_seen",
        "ter_unseen",
        "ter_all",
    ],
    "xsum_bart_large.csv": ["rouge1", "rouge2", "rougeL"],
    "lora_e2e_rank_sweep.csv": ["r", "val_loss", "bleu", "nist", "meteor", "rouge_l", "cider"],
}
# (low, high) of each metric in the file's printed scale: catches a percent/fraction mix-up
RANGES = {
    "glue_roberta_base.csv": {m: (50, 100) for m in METRICS["glue_roberta_base.csv"]},
    "e2e_gpt2_medium.csv": {
        "bleu": (50, 100),
        "nist": (5, 15),
        "meteor": (30, 100),
        "rouge_l": (50, 100),
        "cider": (1, 5),
    },
    "webnlg_gpt2_medium.csv": {
        **{f"bleu_{s}": (10, 100) for s in ("seen", "unseen", "all")},
        **{f"{m}_{s}": (0, 1) for m in ("meteor", "ter") for s in ("seen", "unseen", "all")},
    },
    "xsum_bart_large.csv": {m: (0, 100) for m in METRICS["xsum_bart_large.csv"]},
    "lora_e2e_rank_sweep.csv": {
        "r": (1, 64),
        "val_loss": (0.5, 3),
        "bleu": (50, 100),
        "nist": (5, 15),
        "meteor": (0, 1),
        "rouge_l": (0, 1),
        "cider": (1, 5),
    },
}


def _load(name: str) -> pd.DataFrame:
    return pd.read_csv(TABLES / name, keep_default_na=True)


def _std_cols(df: pd.DataFrame) -> list[str]:
    return [c for c in df.columns if c.endswith("_std")]


def test_every_table_is_known_and_documented():
    found = sorted(p.name for p in TABLES.glob("*.csv"))
    assert found == sorted(METRICS)
    readme = (TABLES / "README.md").read_text()
    for name in found:
        assert name in readme
    assert "https://arxiv.org/pdf/2309.02411" in readme


@pytest.mark.parametrize("name", sorted(METRICS))
def test_format(name):
    df = _load(name)
    assert len(df) > 0
    missing = [c for c in BASE_COLUMNS + METRICS[name] if c not in df.columns]
    assert not missing, missing
    for c in _std_cols(df):
        assert c[: -len("_std")] in METRICS[name], c
    assert df["confirmed"].dtype == bool
    assert df["source"].notna().all() and (df["source"].str.strip() != "").all()
    assert df["source"].str.match(r"^https?://").all()
    assert df["paper"].notna().all() and df["method"].notna().all() and df["note"].notna().all()
    assert df["method"].str.match(r"^[a-z][a-z0-9_.]*[A-Za-z0-9]$").all(), df["method"].tolist()
    assert not df.duplicated(["paper", "method", "label"]).any()
    numeric = METRICS[name] + _std_cols(df)
    for c in numeric:
        assert pd.api.types.is_numeric_dtype(df[c]) or df[c].isna().all(), c


@pytest.mark.parametrize("name", sorted(METRICS))
def test_confirmed_rows_have_numbers_unconfirmed_rows_none(name):
    df = _load(name)
    cells = METRICS[name] + _std_cols(df)
    for _, row in df.iterrows():
        if row["confirmed"]:
            assert all(not pd.isna(row[m]) for m in METRICS[name]), row.to_dict()
            for m in METRICS[name]:
                lo, hi = RANGES[name][m]
                assert lo <= row[m] <= hi, (name, row["label"], m, row[m])
        else:
            assert all(pd.isna(row[c]) for c in cells), row.to_dict()
            assert "UNCONFIRMED" in row["note"]


@pytest.mark.parametrize("name", sorted(METRICS))
def test_delta_lora_paper_rows_are_unfilled_templates(name):
    """No Delta-LoRA table cell is confirmed in the research notes: those rows must stay empty until
    someone checks the PDF (and then sets confirmed=true, which this test will flag for review)."""
    df = _load(name)
    dl = df[df["paper"].str.startswith("Delta-LoRA")]
    if name != "lora_e2e_rank_sweep.csv":
        assert "delta_lora" in set(dl["method"])
    assert (~dl["confirmed"]).all()
    assert dl["source"].eq("https://arxiv.org/pdf/2309.02411").all()
    assert dl["note"].str.contains("https://arxiv.org/pdf/2309.02411", regex=False).all()


def test_provenance_marks():
    g = _load("glue_roberta_base.csv")
    starred = g[g["label"].str.endswith("*")]
    assert set(starred["method"]) == {"full_ft", "bitfit", "adapter_d_0.3M", "adapter_d_0.9M"}
    assert starred["note"].str.contains("prior work").all()
    lora = g[(g["method"] == "lora") & g["confirmed"]].iloc[0]
    assert "MNLI" in lora["note"] and all(t in lora["note"] for t in ("MRPC", "RTE", "STS-B"))
    e = _load("e2e_gpt2_medium.csv")
    assert e[e["label"].str.endswith("*")]["note"].str.contains("prior work").all()


def _cell(name, method, col, paper_prefix="LoRA", label=None):
    df = _load(name)
    sel = df[(df["method"] == method) & df["paper"].str.startswith(paper_prefix)]
    if label is not None:
        sel = sel[sel["label"] == label]
    assert len(sel) == 1, (name, method, label)
    return sel.iloc[0][col]


@pytest.mark.parametrize(
    ("name", "method", "col", "value", "label"),
    [
        ("glue_roberta_base.csv", "lora", "rte", 86.6, None),
        ("glue_roberta_base.csv", "lora", "rte_std", 0.7, None),
        ("glue_roberta_base.csv", "lora", "cola_std", 1.2, None),
        ("glue_roberta_base.csv", "lora", "avg", 87.2, None),
        ("glue_roberta_base.csv", "full_ft", "rte", 78.7, None),
        ("glue_roberta_base.csv", "adapter_d_0.3M", "rte_std", 2.7, None),
        ("glue_roberta_base.csv", "bitfit", "params", "0.1M", None),
        ("e2e_gpt2_medium.csv", "lora", "bleu", 70.4, None),
        ("e2e_gpt2_medium.csv", "lora", "meteor", 46.8, None),
        ("e2e_gpt2_medium.csv", "lora", "nist_std", 0.02, None),
        ("e2e_gpt2_medium.csv", "full_ft", "params", "354.92M", None),
        ("e2e_gpt2_medium.csv", "prelayer", "bleu", 69.7, None),
        ("webnlg_gpt2_medium.csv", "lora", "bleu_unseen", 46.7, None),
        ("webnlg_gpt2_medium.csv", "lora", "bleu_seen", 62.1, None),
        ("webnlg_gpt2_medium.csv", "lora", "bleu_all_std", 0.2, None),
        ("webnlg_gpt2_medium.csv", "lora", "meteor_all", 0.41, None),
        ("webnlg_gpt2_medium.csv", "full_ft", "ter_unseen", 0.76, None),
        ("lora_e2e_rank_sweep.csv", "lora", "bleu", 69.57, "r=8"),
        ("lora_e2e_rank_sweep.csv", "lora", "meteor", 0.4689, "r=4"),
        ("lora_e2e_rank_sweep.csv", "lora", "cider", 2.4329, "r=1"),
    ],
)
def test_spot_checks_against_facts(name, method, col, value, label):
    got = _cell(name, method, col, label=label)
    if isinstance(value, str):
        assert got == value
    else:
        assert math.isclose(float(got), value, rel_tol=0, abs_tol=1e-9), (got, value)


def test_rank_sweep_is_complete():
    df = _load("lora_e2e_rank_sweep.csv")
    assert df["r"].tolist() == [1, 2, 4, 8, 16, 32, 64]
    assert (df["label"] == [f"r={r}" for r in df["r"]]).all()
    assert re.search(r"fraction", df["note"].iloc[0])


@pytest.mark.parametrize("name", ["glue_roberta_base.csv", "e2e_gpt2_medium.csv", "webnlg_gpt2_medium.csv"])
def test_rendered_paper_rows_are_told_apart(name):
    """Two rows with one label (AdapterL* at 0.37M and 11.09M) get their parameter counts in the tables."""
    from deltalora.collect.tables import paper_rows

    body, _ = paper_rows(TABLES / name, METRICS[name][:1])
    labels = [row[0] for row in body]
    assert labels and len(labels) == len(set(labels))
    if name != "webnlg_gpt2_medium.csv":  # its labels already carry the counts
        assert any(re.search(r"\(\d+(\.\d+)?M\) \[", label) for label in labels)
