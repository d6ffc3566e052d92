"""The memory table and its plot take any set of measured (model, dtype, config) rows, and the measured rows
reach the disk before the table or the plot can fail. No measurement is run here (rows are synthetic);
runtime ~6 s."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from deltalora.benchmark import CONFIGS, QLORA_CONFIGS
from deltalora.collect.memory import read_measurements, write_measurements, write_memory_table


def row(model: str, dtype: str, config: str, peak: float = 100.0, step: float = 0.01) -> dict:
    """One row as benchmark.measure writes it (every column), ratios to be filled in by `with_ratios`."""
    return {
        "model": model,
        "config": config,
        "device": "cpu",
        "dtype": dtype,
        "batch": 4,
        "seq": 16,
        "peak_method": "peak RSS",
        "weights_bytes": 2**20,
        "gradients_bytes": 2**19,
        "optimizer_bytes": 2**20,
        "trainable_params": 10,
        "extra_updated_params": 0,
        "median_step_s": step,
        "step_s_min": step * 0.9,
        "step_s_max": step * 1.1,
        "peak_bytes": peak * 2**20,
        "peak_bytes_min": peak * 2**20,
        "peak_bytes_max": peak * 2**20,
        "activations_bytes": 2**20,
        "rounds": 1,
        "model_note": "",
        "base": "nf4" if config in QLORA_CONFIGS else dtype,
        "saved_activation_bytes": 1000,
    }


def with_ratios(rows: list[dict]) -> list[dict]:
    """Ratios to LoRA and to QLoRA within each (model, dtype), None where the group lacks one (as measure)."""
    for r in rows:
        group = [x for x in rows if x["model"] == r["model"] and x["dtype"] == r["dtype"]]
        for ref, suffix in (("lora", "lora"), ("qlora", "qlora")):
            base = next((x for x in group if x["config"] == ref), None)
            r[f"step_ratio_to_{suffix}"] = r["median_step_s"] / base["median_step_s"] if base else None
            r[f"peak_ratio_to_{suffix}"] = r["peak_bytes"] / base["peak_bytes"] if base else None
        q = next((x for x in group if x["config"] == "qlora"), None)
        r["saved_ratio_to_qlora"] = r["saved_activation_bytes"] / q["saved_activation_bytes"] if q else None
    return rows


def default_profile_rows() -> list[dict]:
    """The default profile's shape: two models, fp32, 4-bit rows on minilm only (qlora_models: [minilm])."""
    rows = []
    for k, model in enumerate(("minilm", "gpt2m-4l")):
        configs = CONFIGS + (QLORA_CONFIGS if model == "minilm" else ())
        for i, c in enumerate(configs):
            rows.append(row(model, "fp32", c, peak=100 + 10 * k + i, step=0.01 * (1 + i / 10)))
    return with_ratios(rows)


def test_default_profile_shape_with_4bit_rows_on_one_model(tmp_path):
    """Regression: the plot looked up every config for every model and died (IndexError) on the default
    profile, where only minilm has the 4-bit rows."""
    out = tmp_path / "memory_table.csv"
    write_memory_table(default_profile_rows(), out, profile="default", plots_dir=tmp_path / "plots")
    assert (tmp_path / "plots" / "memory_speed.png").stat().st_size > 0
    df = pd.read_csv(out)
    assert len(df) == 12 and set(df[df["config"] == "qlora"]["model"]) == {"minilm"}
    md = out.with_suffix(".md").read_text()
    assert "## Delta-LoRA on a 4-bit base" in md
    assert "| minilm | Delta-LoRA folded, NF4 base |" in md
    assert "| gpt2m-4l | Delta-LoRA folded, NF4 base |" not in md
    # the fp32-base rows of minilm beside QLoRA: folded_4bit's peak 106 over qlora's 105
    assert f"peak x{106 / 105:.3f}" in md


def test_a_verdict_from_disturbed_rounds_says_it_is_noisy(tmp_path):
    """A goal verdict whose rounds spread wider than x1.5 (a full build's memory table once had a 4-bit
    round at 5.3x the fastest, beside other work) is marked noisy; the undisturbed ones are not."""
    rows = default_profile_rows()
    for r in rows:
        if r["model"] == "minilm" and r["config"] in ("folded_4bit", "inplace"):
            r["step_s_max"] = r["step_s_min"] * 5.3
    out = tmp_path / "memory_table.csv"
    write_memory_table(rows, out, profile="default")
    lines = [x for x in out.with_suffix(".md").read_text().splitlines() if x.startswith("- ")]
    verdicts = {x.split(":")[0]: x for x in lines if "goal" in x and "noisy" not in x.split(":")[0]}
    assert "noisy: slowest/fastest round folded_4bit x5.3" in verdicts["- minilm"]  # the QLoRA section
    assert "noisy: slowest/fastest round inplace x5.3" in verdicts["- minilm fp32 inplace"]
    for quiet in ("- minilm fp32 folded", "- gpt2m-4l fp32 inplace", "- gpt2m-4l fp32 folded"):
        assert "noisy" not in verdicts[quiet], verdicts[quiet]


def test_a_measurement_failing_table_keeps_the_measurements_and_a_rerun_does_not_measure(tmp_path):
    """`bench memory` writes the measured rows before the table; `collect memory` rebuilds the table from
    them (the workflow's memory_table rule) without measuring."""
    raw = tmp_path / "memory" / "measurements.json"
    rows = default_profile_rows()
    bad = [dict(r) for r in rows]
    del bad[0]["peak_bytes_min"]  # a table that cannot be made
    (tmp_path / "rows.json").write_text(json.dumps(bad))
    code = (  # `measure` replaced by the rows above: the CLI's own order of writes is what is tested
        "import json, sys, deltalora.benchmark as b\n"
        f"b.measure = lambda *a, **k: json.load(open({str(tmp_path / 'rows.json')!r}))\n"
        "from deltalora.cli import main\n"
        f"sys.exit(main(['bench', 'memory', '--bf16-steps', '0', '--measurements', {str(raw)!r}, "
        f"'--out', {str(tmp_path / 'memory_table.csv')!r}]))\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode != 0 and "peak_bytes_min" in r.stderr, r.stderr[-2000:]
    assert not (tmp_path / "memory_table.csv").exists()
    kept, bf16 = read_measurements(raw)
    assert kept == json.loads(json.dumps(bad)) and bf16 is None
    # the table from the kept measurements (fixed), by the CLI alone: no measurement can run
    write_measurements(
        raw, rows, {"model": "minilm", "inplace_lost_fraction": 0.5, "folded_lost_fraction": 0}
    )
    out = tmp_path / "again" / "memory_table.csv"
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "deltalora",
            "collect",
            "memory",
            str(raw),
            "--profile",
            "default",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    assert len(pd.read_csv(out)) == 12 and "0.5000" in out.with_suffix(".md").read_text()


def test_bad_measurements_name_what_is_missing(tmp_path):
    rows = default_profile_rows()
    with pytest.raises(ValueError, match="no measured rows"):
        write_memory_table([], tmp_path / "t.csv", profile="default")
    broken = [{k: v for k, v in r.items() if k != "step_ratio_to_lora"} for r in rows]
    with pytest.raises(ValueError, match="step_ratio_to_lora"):
        write_memory_table(broken, tmp_path / "t.csv", profile="default")
    with pytest.raises(ValueError, match="minilm/fp32/lora"):
        write_memory_table([*rows, rows[1]], tmp_path / "t.csv", profile="default")
    no_q = [{k: v for k, v in r.items() if k != "saved_ratio_to_qlora"} for r in rows]
    with pytest.raises(ValueError, match="saved_ratio_to_qlora"):
        write_memory_table(no_q, tmp_path / "t.csv", profile="default")
    (tmp_path / "m.json").write_text("[]")
    with pytest.raises(ValueError, match="not a memory measurements file"):
        read_measurements(tmp_path / "m.json")
    assert not (tmp_path / "t.csv").exists()


@st.composite
def measured_subsets(draw):
    """Any non-empty set of (model, dtype, config) rows a measurement can give: configs missing, 4-bit rows
    (fp32 only) on some models, mixed dtypes, one model only."""
    models = draw(
        st.lists(st.sampled_from(["tiny", "minilm", "gpt2m-4l"]), min_size=1, max_size=3, unique=True)
    )
    rows = []
    for model in models:
        for dtype in draw(st.lists(st.sampled_from(["fp32", "bf16"]), min_size=1, max_size=2, unique=True)):
            allowed = CONFIGS + (QLORA_CONFIGS if dtype == "fp32" else ())
            for c in draw(st.lists(st.sampled_from(allowed), min_size=1, max_size=len(allowed), unique=True)):
                rows.append(
                    row(model, dtype, c, peak=draw(st.floats(10, 500)), step=draw(st.floats(1e-3, 1)))
                )
    return with_ratios(rows)


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=measured_subsets())
def test_any_subset_of_measured_rows_gives_a_table_and_a_plot(tmp_path, rows):
    out = tmp_path / "memory_table.csv"
    write_memory_table(rows, out, profile="default", plots_dir=tmp_path / "plots")
    df = pd.read_csv(out)
    assert len(df) == len(rows)
    md = out.with_suffix(".md").read_text()
    for r in rows:  # every row is in the table, with its ratio to LoRA where the group has LoRA
        ratio = r["peak_ratio_to_lora"]
        cell = "-" if ratio is None or math.isnan(ratio) else f"{ratio:.3f}"
        assert f"| {r['model']} | {r['dtype']} | {r['config']} |" in md
        assert any(
            line.startswith(f"| {r['model']} | {r['dtype']} | {r['config']} |") and f"| {cell} |" in line
            for line in md.splitlines()
        )
    assert ("## Delta-LoRA on a 4-bit base" in md) == any(r["config"] == "qlora" for r in rows)
