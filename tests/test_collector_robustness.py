"""Every collector (deltalora/collect/*) on random subsets of valid records: missing seeds, a row on some
tasks only, one model or method only, partial grids. Each gives a table whose cells are the records'
numbers, or a clear error (ValueError, RecordError) that names what is missing; never an IndexError,
KeyError, TypeError or ZeroDivisionError. The memory table's own property test is in test_memory_table.py.
Runtime ~40 s on 2 cores (6 examples a collector; plots drawn on about half)."""

from __future__ import annotations

import itertools
import statistics
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_ablation_collectors import make_record as glue_record
from test_audit import make_record as audit_record
from test_nlg_collector import record as nlg_record
from test_nlg_collector import write

from deltalora.collect import collect_glue
from deltalora.collect.ablations import collect_dropout, collect_lambda_k, collect_rank
from deltalora.collect.generation_tables import collect_nlg
from deltalora.collect.qlora import collect_qlora
from deltalora.collect.runtime import collect_runtime

SETTINGS = settings(
    max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
CLEAR = (ValueError,)  # RecordError is a ValueError


def fresh(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("case")


def build_or_explain(build, *names: str):
    """Run `build`; a failure must be a clear error whose message names one of `names` (what is missing)."""
    try:
        return build()
    except CLEAR as e:
        msg = str(e)
        assert msg and any(n in msg for n in names), msg
        return None


def subset(draw, items: list, min_size: int = 1) -> list:
    keep = draw(st.lists(st.booleans(), min_size=len(items), max_size=len(items)))
    chosen = [x for x, k in zip(items, keep, strict=True) if k]
    return chosen if len(chosen) >= min_size else items[:min_size]


# ---------------------------------------------------------------------------------------------- GLUE
@st.composite
def glue_cells(draw):
    cells = list(itertools.product(("lora", "delta_lora", "full_ft"), ("sst2", "mrpc"), (0, 1, 2)))
    return [(m, t, s, draw(st.floats(40, 95))) for m, t, s in subset(draw, cells)]


@SETTINGS
@given(cells=glue_cells(), plot=st.booleans())
def test_glue_table_from_any_subset(tmp_path_factory, cells, plot):
    d = fresh(tmp_path_factory)
    recs = [glue_record(task=t, method=m, seed=s, hp={}, value=v) for m, t, s, v in cells]
    out = collect_glue(write(d, recs), d / "glue.csv", profile="default", plots_dir=d / "p" if plot else None)
    df = pd.read_csv(out).set_index("row")
    for (m, t), group in itertools.groupby(sorted(cells), key=lambda c: (c[0], c[1])):
        assert df.loc[m, t] == pytest.approx(statistics.median(v for *_, v in group), abs=1e-9)
    for m in {c[0] for c in cells}:  # a row absent on a task has no number there
        for t in {"sst2", "mrpc"} - {c[1] for c in cells if c[0] == m}:
            assert t not in df.columns or pd.isna(df.loc[m, t])


# ------------------------------------------------------------------------------------------ ablations
@st.composite
def dropout_cells(draw):
    cells = list(itertools.product(("lora", "delta_lora"), (0.0, 0.1), ("sst2", "mrpc"), (0, 1)))
    return [(*c, draw(st.floats(40, 95))) for c in subset(draw, cells)], draw(st.booleans())


@SETTINGS
@given(case=dropout_cells(), plot=st.booleans())
def test_dropout_ablation_from_any_subset(tmp_path_factory, case, plot):
    cells, with_cosines = case
    d = fresh(tmp_path_factory)
    recs = []
    for m, p, t, s, v in cells:
        hp = {"dropout": p} | ({"allow_dropout": p > 0} if m == "delta_lora" else {})
        gc = {"0": {"layer0": 1.0 if p == 0 else 0.9}} if with_cosines else None
        recs.append(glue_record(task=t, method=m, seed=s, hp=hp, value=v, grad_cosine=gc))
    build_or_explain(
        lambda: collect_dropout(
            write(d, recs), d / "dropout.csv", profile="default", plots_dir=d / "p" if plot else None
        ),
        "dropout",
        "lora",
    )


@st.composite
def lambda_k_cells(draw):
    cells = list(itertools.product((0.0, 2.0), (0, 4), ("sst2", "mrpc"), (0, 1)))
    return [(*c, draw(st.floats(40, 95))) for c in subset(draw, cells)]


@SETTINGS
@given(cells=lambda_k_cells(), plot=st.booleans())
def test_lambda_k_ablation_from_any_subset(tmp_path_factory, cells, plot):
    d = fresh(tmp_path_factory)
    recs = [
        glue_record(task=t, method="delta_lora", seed=s, value=v, hp={"update_ratio": lam, "start_step": k})
        for lam, k, t, s, v in cells
    ]
    build_or_explain(
        lambda: collect_lambda_k(
            write(d, recs), d / "lk.csv", profile="default", plots_dir=d / "p" if plot else None
        ),
        "lambda",
        "K",
    )


@st.composite
def rank_cells(draw):
    cells = list(itertools.product(("lora", "delta_lora"), (2, 4), ("sst2", "mrpc"), (0, 1)))
    return [(*c, draw(st.floats(40, 95))) for c in subset(draw, cells)]


@SETTINGS
@given(cells=rank_cells(), plot=st.booleans())
def test_rank_ablation_from_any_subset(tmp_path_factory, cells, plot):
    d = fresh(tmp_path_factory)
    recs = []
    for m, r, t, s, v in cells:
        ranks = {"base_model.model.layer0.query": (0 if m == "lora" else r + 1, r + 1)}
        recs.append(glue_record(task=t, method=m, seed=s, value=v, hp={"r": r}, layer_ranks=ranks))
    out = build_or_explain(
        lambda: collect_rank(
            write(d, recs), d / "rank.csv", profile="default", plots_dir=d / "p" if plot else None
        ),
        "rank",
    )
    if out is not None:
        df = pd.read_csv(out)
        assert set(zip(df["method"], df["r"], strict=True)) == {(m, r) for m, r, *_ in cells}


# ------------------------------------------------------------------------------------------------ NLG
E2E = {"bleu": 60.0, "nist": 8.0, "meteor": 40.0, "rouge_l": 60.0, "cider": 2.0}


@st.composite
def nlg_cells(draw):
    rows = [("lora", "lora"), ("delta_lora", "delta_lora"), ("lora_nodrop", "lora"), ("full_ft", "full_ft")]
    cells = list(itertools.product(rows, (0, 1, 2)))
    return [(row, m, s, draw(st.floats(10, 80))) for (row, m), s in subset(draw, cells)]


@SETTINGS
@given(cells=nlg_cells(), meteor=st.booleans(), plot=st.booleans())
def test_nlg_table_from_any_subset(tmp_path_factory, cells, meteor, plot):
    d = fresh(tmp_path_factory)
    recs = [
        nlg_record("e2e", row, m, s, {**E2E, "bleu": v, "meteor": E2E["meteor"] if meteor else None})
        for row, m, s, v in cells
    ]
    out = collect_nlg(
        "e2e", write(d, recs), d / "e2e.csv", profile="default", plots_dir=d / "p" if plot else None
    )
    df = pd.read_csv(out)
    assert set(df["row"]) == {c[0] for c in cells}


# ---------------------------------------------------------------------------------------------- QLoRA
@st.composite
def qlora_cells(draw):
    rows = ("lora_fp32", "delta_lora_fp32", "lora_nf4", "delta_lora_nf4")
    cells = list(itertools.product(rows, ("glue/rte", "glue/mrpc"), (0, 1, 2)))
    return [(row, t, s, draw(st.floats(40, 95))) for row, t, s in subset(draw, cells)]


@SETTINGS
@given(cells=qlora_cells(), plot=st.booleans())
def test_qlora_table_from_any_subset(tmp_path_factory, cells, plot):
    d = fresh(tmp_path_factory)
    recs = []
    for row, t, s, v in cells:
        r = audit_record(t, row, s, v)
        if row.endswith("_nf4"):
            r["config"]["model_options"]["quantize"] = "nf4"
        recs.append(r)
    build_or_explain(
        lambda: collect_qlora(
            write(d, recs),
            d / "q.csv",
            profile="default",
            rows=["lora", "delta_lora"],
            quantize="nf4",
            plots_dir=d / "p" if plot else None,
        ),
        "lora",
        "nf4",
        "fp32",
    )


# -------------------------------------------------------------------------------------------- runtime
@SETTINGS
@given(
    jobs=st.lists(
        st.sampled_from(
            ["glue/rte", "glue/sst2", "nlg/e2e/lora", "ablations/rank/rte/lora/r8", "pretrain_gpt2"]
        ),
        min_size=1,
        unique=True,
    ),
    empty=st.booleans(),
)
def test_runtime_table_from_any_subset(tmp_path_factory, jobs, empty):
    d = fresh(tmp_path_factory)
    paths = []
    for k, job in enumerate(jobs):
        p = d / "benchmarks" / f"{job}.tsv"
        p.parent.mkdir(parents=True, exist_ok=True)
        blank = empty and k == 0
        p.write_text("" if blank else f"s\th:m:s\tmax_rss\tcpu_time\n{10 + k}\t0:00:10\t100.0\t{9 + k}\n")
        paths.append(p)
    out = collect_runtime(paths, d / "runtime.csv", root=d / "benchmarks", profile="default")
    df = pd.read_csv(out)
    assert set(jobs) <= set(df["job"])
