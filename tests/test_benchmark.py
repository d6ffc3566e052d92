"""deltalora/benchmark.py: the ratio arithmetic of the memory table, and the bf16 rounding loss measured."""

from __future__ import annotations

import pytest

from deltalora import benchmark

# per configuration, the (median step time, peak bytes) each of three rounds reports
ROUNDS = {
    "lora": [(1.0, 100), (3.0, 400), (2.5, 200)],  # medians 2.5 s, 200 B (means 2.17 s, 233 B)
    "inplace": [(2.4, 260), (2.2, 220), (2.0, 210)],  # medians 2.2 s, 220 B
    "full_ft": [(5.0, 900), (4.0, 800), (6.0, 1000)],  # medians 5.0 s, 900 B
}


def test_measure_ratios_are_medians_over_rounds_divided_by_loras(monkeypatch):
    calls: list[str] = []

    def fake_run_one(model, config, **kw):
        i = sum(c == config for c in calls)
        calls.append(config)
        step, peak = ROUNDS[config][i]
        return {
            "model": model,
            "config": config,
            "device": kw["device"],
            "dtype": kw["dtype"],
            "batch": kw["batch"],
            "seq": kw["seq"],
            "peak_method": "fake",
            "weights_bytes": 10,
            "gradients_bytes": 1,
            "optimizer_bytes": 2,
            "trainable_params": 5,
            "extra_updated_params": 0,
            "median_step_s": step,
            "peak_bytes": peak,
            "activations_bytes": peak - 13,
            "saved_activation_bytes": peak - 13,
        }

    monkeypatch.setattr(benchmark, "run_one", fake_run_one)
    # device "cuda" takes the in-process path (run_one) that the fake replaces; no GPU is needed for that
    monkeypatch.setattr(benchmark, "check_device", lambda device: None)
    rows = benchmark.measure(
        ["tiny"],
        device="cuda",
        dtypes=["fp32"],
        rounds=3,
        batch=2,
        seq=4,
        steps=1,
        warmup=0,
        threads=0,
        configs=("full_ft", "lora", "inplace"),
    )
    # configurations interleaved in rotating order, one call each per round
    assert calls == ["full_ft", "lora", "inplace", "lora", "inplace", "full_ft", "inplace", "full_ft", "lora"]
    by = {r["config"]: r for r in rows}
    assert by["lora"]["step_ratio_to_lora"] == 1.0 and by["lora"]["peak_ratio_to_lora"] == 1.0
    assert by["inplace"]["median_step_s"] == 2.2 and by["inplace"]["peak_bytes"] == 220
    assert by["inplace"]["step_ratio_to_lora"] == pytest.approx(2.2 / 2.5)
    assert by["inplace"]["peak_ratio_to_lora"] == pytest.approx(220 / 200)
    assert by["full_ft"]["step_ratio_to_lora"] == pytest.approx(5.0 / 2.5)
    assert by["full_ft"]["peak_ratio_to_lora"] == pytest.approx(900 / 200)
    assert (by["inplace"]["step_s_min"], by["inplace"]["step_s_max"]) == (2.0, 2.4)
    assert (by["full_ft"]["peak_bytes_min"], by["full_ft"]["peak_bytes_max"]) == (800, 1000)
    assert all(r["rounds"] == 3 for r in rows)


def test_bf16_lost_fraction_is_measured_for_both_engines():
    """The folded engine keeps W_0 and carries the update in float32: its measured effective weight matches
    the float64 Algorithm 1 to rounding of float64. The inplace engine rounds the update into a bf16 W and
    loses a measurable part of it."""
    out = benchmark.bf16_rounding_loss("tiny", steps=4, batch=4, seq=16)
    assert out["folded_lost_fraction"] < 1e-9
    assert out["inplace_lost_fraction"] > 0.05
