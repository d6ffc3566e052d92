"""The audit engine: statistics against hand values, every verdict of every rule on synthetic evidence,
and an end-to-end build of audit.md/audit.csv from synthetic run records."""

from __future__ import annotations

import argparse
import math

import numpy as np
import pandas as pd
import pytest

from deltalora.audit import rules, stats
from deltalora.audit.claims import CLAIMS, Settings
from deltalora.audit.command import add_audit_command
from deltalora.audit.report import CSV_COLUMNS, build_audit
from deltalora.audit.rules import INCONCLUSIVE, NOT_SUPPORTED, REFUTED, SUPPORTED, VERDICTS
from deltalora.records import (
    REQUIRED_KEYS,
    REQUIRED_PROVENANCE,
    SCHEMA_VERSION,
    RecordError,
    atomic_write_json,
)

FAST = Settings(n_resamples=2000)


# =========================================================================== stats
def test_sign_test_hand_values():
    assert stats.sign_test([1, 2, 3, 4, 5]).p_value == pytest.approx(2 * 0.5**5)  # 0.0625
    assert stats.sign_test([1, 2, 3, 4, 5], alternative="greater").p_value == pytest.approx(0.5**5)
    assert stats.sign_test([1, 2, 3, 4, 5], alternative="less").p_value == pytest.approx(1.0)
    # 4 of 5 positive, one-sided: P(X >= 4) = (5 + 1) / 32
    assert stats.sign_test([1, 1, 1, 1, -1], alternative="greater").p_value == pytest.approx(6 / 32)
    # zeros are dropped: 3 non-zero, 2 positive -> P(X >= 2 | n=3) = 4/8
    r = stats.sign_test([1, 1, 0, -1], alternative="greater")
    assert (r.n, r.p_value) == (3, pytest.approx(0.5))
    z = stats.sign_test([0, 0, 0])
    assert z.p_value is None and "zero" in z.reason


def test_wilcoxon_hand_values_and_refusals():
    # all 6 positive, distinct: only the all-plus assignment reaches T+ = 21 -> p = 1/64
    r = stats.wilcoxon_signed_rank([1, 2, 3, 4, 5, 6], alternative="greater")
    assert r.statistic == 21 and r.p_value == pytest.approx(1 / 64)
    assert stats.wilcoxon_signed_rank([1, 2, 3, 4, 5, 6]).p_value == pytest.approx(2 / 64)
    # ties: five equal differences, mid-rank 3 each -> T+ = 15 only with all plus -> 1/32
    assert stats.wilcoxon_signed_rank([1] * 5, alternative="greater").p_value == pytest.approx(1 / 32)
    # ranks 1..5 with rank 1 negative: T+ = 14; P(T+ >= 14) = 2/32 (sets {2,3,4,5}, {1,...,5})
    assert stats.wilcoxon_signed_rank([-1, 2, 3, 4, 5], alternative="greater").p_value == pytest.approx(
        2 / 32
    )
    # n too small to ever reach alpha, and all-zero differences: no p-value, with a reason
    small = stats.wilcoxon_signed_rank([1, 2, 3], alternative="greater")
    assert small.p_value is None and "too small" in small.reason
    zero = stats.wilcoxon_signed_rank([0.0] * 6)
    assert zero.p_value is None and "zero" in zero.reason


def test_wilcoxon_exact_matches_scipy_without_ties():
    from scipy.stats import wilcoxon

    rng = np.random.default_rng(1)
    for n in (6, 9, 12):
        d = rng.normal(0.3, 1, n)
        for alt in ("two-sided", "greater", "less"):
            ours = stats.wilcoxon_signed_rank(d, alternative=alt).p_value
            ref = wilcoxon(d, alternative=alt, method="exact").pvalue
            assert ours == pytest.approx(ref, rel=1e-9)


def test_min_attainable_p_and_pairs():
    assert stats.min_attainable_p(5, "greater") == pytest.approx(1 / 32)
    assert stats.min_attainable_p(5, "two-sided") == pytest.approx(1 / 16)
    assert stats.min_pairs_for(0.05, "greater") == 5
    assert stats.min_pairs_for(0.05, "two-sided") == 6


def test_bootstrap_ci_hand_values():
    c = stats.bootstrap_ci([2.0, 2.0, 2.0])
    assert (c.estimate, c.low, c.high) == (2.0, 2.0, 2.0)
    # two values 0 and 1: resampled means are 0 (1/4), 0.5 (1/2), 1 (1/4) -> 95% interval [0, 1]
    c = stats.bootstrap_ci([0.0, 1.0], n_resamples=10_000, seed=3)
    assert (c.estimate, c.low, c.high) == (0.5, 0.0, 1.0)
    # strata: mean of stratum means, each stratum constant
    c = stats.bootstrap_ci([[1.0, 1.0], [3.0, 3.0, 3.0]], strata=True)
    assert (c.estimate, c.low, c.high) == (2.0, 2.0, 2.0)
    assert stats.bootstrap_ci([]) is None
    # seeded: identical on a rerun
    d = [0.3, -0.1, 0.8, 0.5, 0.2]
    assert stats.bootstrap_ci(d, seed=7) == stats.bootstrap_ci(d, seed=7)


def _exact_percentile(values, q):
    """The q-quantile of the exact bootstrap distribution: the smallest mean whose CDF reaches q."""
    import itertools

    means = np.sort([np.mean(c) for c in itertools.product(values, repeat=len(values))])
    cdf = np.arange(1, means.size + 1) / means.size
    return float(means[np.searchsorted(cdf, q)])


def test_bootstrap_ci_matches_exact_enumeration():
    """n = 3 gives 27 equally likely resamples; each tail below sits well inside one step of their CDF, so a
    seeded 100,000-resample percentile bootstrap lands exactly on the enumerated quantile."""
    x = [0.0, 1.0, 5.0]
    for conf in (0.5, 0.6, 0.8, 0.9, 0.95):
        c = stats.bootstrap_ci(x, confidence=conf, n_resamples=100_000, seed=1)
        tail = (1 - conf) / 2
        assert c.estimate == pytest.approx(2.0)
        assert c.low == pytest.approx(_exact_percentile(x, tail), abs=1e-12), conf
        assert c.high == pytest.approx(_exact_percentile(x, 1 - tail), abs=1e-12), conf


def test_bootstrap_ci_widens_with_the_confidence_level():
    x = [0.0, 1.0, 5.0]
    cis = [stats.bootstrap_ci(x, confidence=c, n_resamples=100_000, seed=1) for c in (0.5, 0.8, 0.95)]
    widths = [c.high - c.low for c in cis]
    assert widths[0] < widths[1] < widths[2]
    for narrow, wide in zip(cis, cis[1:], strict=False):
        assert wide.low <= narrow.low and wide.high >= narrow.high


def test_bootstrap_ci_matches_scipy_percentile_bootstrap():
    from scipy.stats import bootstrap

    x = np.array([0.3, -0.1, 0.8, 0.5, 0.2, 1.4, -0.6, 0.9])
    for conf in (0.8, 0.95):
        ours = stats.bootstrap_ci(x, confidence=conf, n_resamples=50_000, seed=0)
        ref = bootstrap(
            (x,),
            np.mean,
            method="percentile",
            confidence_level=conf,
            n_resamples=50_000,
            rng=np.random.default_rng(5),
        ).confidence_interval
        assert ours.low == pytest.approx(ref.low, abs=0.02) and ours.high == pytest.approx(ref.high, abs=0.02)


def test_wilcoxon_normal_approximation_above_20_pairs_with_ties():
    """27 differences (two zeros, many ties): the normal-approximation branch against scipy and the formula
    with the tie correction, z = (T+ - n(n+1)/4) / sqrt(n(n+1)(2n+1)/24 - sum(t^3 - t)/48)."""
    from scipy.stats import norm, rankdata, wilcoxon

    d = np.array([1, 1, 1, 2, 2, -1, 3, 3, 3, -2, 4, 0, 0, 5, 5, -3, 1, 2, 6, 6, -1, 2, 3, 0.5, -0.5, 1, 7.0])
    nz = d[d != 0]
    n = nz.size
    assert n == 25 > stats.EXACT_MAX_N
    ranks = rankdata(np.abs(nz))
    t_plus = ranks[nz > 0].sum()
    _, ties = np.unique(np.abs(nz), return_counts=True)
    z = (t_plus - n * (n + 1) / 4) / math.sqrt(n * (n + 1) * (2 * n + 1) / 24 - (ties**3 - ties).sum() / 48)
    hand = {"greater": norm.sf(z), "less": norm.cdf(z), "two-sided": 2 * norm.sf(abs(z))}
    for alt in ("greater", "less", "two-sided"):
        ours = stats.wilcoxon_signed_rank(d, alternative=alt)
        ref = wilcoxon(d, alternative=alt, zero_method="wilcox", method="approx", correction=False)
        assert "normal approx" in ours.name and ours.n == 25
        assert ours.p_value == pytest.approx(ref.pvalue, rel=1e-12)
        assert ours.p_value == pytest.approx(hand[alt], rel=1e-9)
    assert stats.wilcoxon_signed_rank(d, alternative="greater").statistic == t_plus == 282.5
    pinned = stats.wilcoxon_signed_rank(d, alternative="greater").p_value
    assert pinned == pytest.approx(5.905793e-4, rel=1e-6)


def test_pair_by_seed_and_comparison():
    d = stats.pair_by_seed({0: 1.0, 1: 2.0, 2: float("nan"), 3: 5.0}, {0: 0.5, 1: 2.5, 2: 1.0})
    assert d == {0: 0.5, 1: -0.5}
    cmp = stats.paired_comparison({"a": {0: 1, 1: 2, 2: 3, 3: 4, 4: 5}})
    assert cmp.decision_test("greater").name.startswith("Wilcoxon")
    pooled = stats.paired_comparison({"a": {0: 1, 1: 2, 2: 3}, "b": {0: 1, 1: 1, 2: 1}})
    assert pooled.pooled and pooled.n == 6 and pooled.decision_test("greater").name == "sign test"
    assert pooled.decision_test("greater").p_value == pytest.approx(0.5**6)


# =========================================================================== rules: every verdict
def _cmp(diffs):
    return stats.paired_comparison({"t": dict(enumerate(diffs))}, n_resamples=2000)


def _check(result, expected):
    verdict, text = result
    assert verdict in VERDICTS and text
    assert verdict == expected, text


def test_rule_paired_gain_each_verdict():
    _check(rules.rule_paired_gain(_cmp([1.0, 1.2, 0.8, 1.1, 0.9])), SUPPORTED)
    _check(rules.rule_paired_gain(_cmp([-1.0, -1.2, -0.8, -1.1, -0.9])), REFUTED)
    _check(rules.rule_paired_gain(_cmp([1.0, -1.0, 0.5, -0.5, 0.2])), NOT_SUPPORTED)
    _check(rules.rule_paired_gain(_cmp([0.0] * 5)), NOT_SUPPORTED)  # enough seeds, no difference at all
    _check(rules.rule_paired_gain(_cmp([1.0, 1.2, 0.8])), INCONCLUSIVE)  # 3 pairs: min p = 1/8
    _check(rules.rule_paired_gain(None), INCONCLUSIVE)
    # a claimed magnitude: a significant gain whose CI stays below the claim is not support for the claim
    _check(rules.rule_paired_gain(_cmp([0.3, 0.35, 0.25, 0.3, 0.32]), claimed_gain=1.24), NOT_SUPPORTED)
    _check(rules.rule_paired_gain(_cmp([1.3, 1.1, 1.4, 1.2, 1.25]), claimed_gain=1.24), SUPPORTED)


def test_rule_beats_best_control_each_verdict():
    win, loss = _cmp([1.0, 1.2, 0.8, 1.1, 0.9]), _cmp([-1.0, -1.2, -0.8, -1.1, -0.9])
    _check(rules.rule_beats_best_control(win, controls_complete=True), SUPPORTED)
    _check(rules.rule_beats_best_control(win, controls_complete=False), INCONCLUSIVE)
    _check(rules.rule_beats_best_control(loss, controls_complete=False), REFUTED)
    _check(
        rules.rule_beats_best_control(_cmp([1.0, -1.0, 0.5, -0.5, 0.2]), controls_complete=True),
        NOT_SUPPORTED,
    )


def test_rule_part_of_all_each_verdict():
    """Bonferroni for refutation: 5 negative pairs give one-sided p = 1/32 = 0.031 (< 0.05, > 0.05/2); 7 give
    1/128 = 0.0078 (< 0.05/6 = 0.0083, > 0.05/7 = 0.0071)."""
    five_down = _cmp([-1.0, -1.2, -0.8, -1.1, -0.9])
    seven_down = _cmp([-1.0, -1.2, -0.8, -1.1, -0.9, -1.3, -0.7])
    _check(rules.rule_part_of_all(five_down, k=1), REFUTED)
    _check(rules.rule_part_of_all(five_down, k=2), NOT_SUPPORTED)  # refuted at 0.05, not at 0.025
    _check(rules.rule_part_of_all(seven_down, k=6), REFUTED)
    _check(rules.rule_part_of_all(seven_down, k=7), NOT_SUPPORTED)
    _check(rules.rule_part_of_all(_cmp([1.0, 1.2, 0.8, 1.1, 0.9]), k=8), SUPPORTED)  # no correction
    _check(rules.rule_part_of_all(_cmp([1.0, -1.0, 0.5, -0.5, 0.2]), k=3), NOT_SUPPORTED)
    _check(rules.rule_part_of_all(_cmp([-1.0, -1.2, -0.8]), k=3), INCONCLUSIVE)
    _check(rules.rule_part_of_all(None, k=3), INCONCLUSIVE)
    assert "alpha/2 = 0.025 (Bonferroni)" in rules.rule_part_of_all(five_down, k=2)[1]


def test_aggregate_all_each_verdict():
    req = ["a", "b"]
    _check(rules.aggregate_all([("a", SUPPORTED), ("b", SUPPORTED)], required=req), SUPPORTED)
    _check(rules.aggregate_all([("a", SUPPORTED), ("b", REFUTED)], required=req), REFUTED)
    _check(rules.aggregate_all([("a", SUPPORTED), ("b", NOT_SUPPORTED)], required=req), NOT_SUPPORTED)
    _check(rules.aggregate_all([("a", SUPPORTED), ("b", INCONCLUSIVE)], required=req), INCONCLUSIVE)
    _check(rules.aggregate_all([("a", SUPPORTED)], required=req), INCONCLUSIVE)  # b not measured
    _check(rules.aggregate_all([], required=req), INCONCLUSIVE)


def test_rule_high_rank_each_verdict():
    _check(rules.rule_high_rank([(120, 16), (200, 16)]), SUPPORTED)
    _check(rules.rule_high_rank([(16, 16), (9, 16)]), REFUTED)
    _check(rules.rule_high_rank([(16, 16), (40, 16)]), NOT_SUPPORTED)
    _check(rules.rule_high_rank([]), INCONCLUSIVE)


def test_rule_telescoping_each_verdict():
    tol = rules.telescoping_tolerance(16)
    assert tol == pytest.approx(1e-3 / 4)
    _check(rules.rule_telescoping([(1e-6, 16), (2e-5, 16)]), SUPPORTED)
    _check(rules.rule_telescoping([(1e-2, 16), (1e-2, 16), (1e-6, 16)]), REFUTED)
    _check(rules.rule_telescoping([(1e-6, 16), (1e-6, 16), (1e-2, 16)]), NOT_SUPPORTED)
    _check(rules.rule_telescoping([]), INCONCLUSIVE)


def test_rule_comparable_cost_each_verdict():
    _check(rules.rule_comparable_cost([(1.01, 2.5), (1.05, 1.8)]), SUPPORTED)
    _check(rules.rule_comparable_cost([(1.01, 2.5), (1.5, 1.8)]), REFUTED)  # 1.5 >= (1 + 1.8) / 2 = 1.4
    _check(rules.rule_comparable_cost([(1.01, 2.5), (1.2, 1.8)]), NOT_SUPPORTED)
    _check(rules.rule_comparable_cost([(1.3, None)]), NOT_SUPPORTED)  # no full-FT reference: cannot refute
    _check(rules.rule_comparable_cost([]), INCONCLUSIVE)
    _check(rules.rule_comparable_cost([(float("nan"), 2.0)]), INCONCLUSIVE)
    # a disturbed measurement decides nothing, however its ratios fall
    _check(rules.rule_comparable_cost([(1.01, 2.5)], disturbed=["minilm fp32 inplace x5.3"]), INCONCLUSIVE)


def test_claim_2_on_a_disturbed_memory_measurement_is_inconclusive(synthetic):
    """The memory CSV carries each configuration's round range; one inplace round at 5.3x its fastest
    makes claim 2 (inplace) inconclusive and says why, while the undisturbed folded row keeps its verdict."""
    mem = pd.read_csv(synthetic["memory"])
    mem["step_s_min"] = mem["median_step_s"] * 0.95
    mem["step_s_max"] = mem["median_step_s"] * 1.05
    mem.loc[mem["config"] == "inplace", "step_s_max"] = mem["step_s_min"] * 5.3
    mem.to_csv(synthetic["memory"], index=False)
    _, out = _build(synthetic, plots=False)
    df = pd.read_csv(out / "audit.csv", keep_default_na=False).set_index("id")
    assert df.loc["2", "verdict"] == INCONCLUSIVE
    assert (
        "disturbed measurement (slowest/fastest round): minilm fp32 inplace x5.3" in df.loc["2", "evidence"]
    )
    assert df.loc["2.folded", "verdict"] == SUPPORTED


def test_rule_dropout_cosine_each_verdict():
    _check(rules.rule_dropout_cosine([1.0, 0.99999], [0.95, 0.93]), SUPPORTED)
    _check(rules.rule_dropout_cosine([1.0, 1.0], [0.999, 0.998]), REFUTED)  # dropout does not break it
    _check(rules.rule_dropout_cosine([0.9, 0.92], [0.9, 0.8]), REFUTED)  # no equivalence even without dropout
    _check(rules.rule_dropout_cosine([1.0, 1.0, 0.995], [0.95]), NOT_SUPPORTED)
    _check(rules.rule_dropout_cosine([], [0.95]), INCONCLUSIVE)


def test_rule_engine_equivalence_each_verdict():
    _check(rules.rule_engine_equivalence([(0.0, 0.26), (0.26, 0.26)]), SUPPORTED)
    _check(rules.rule_engine_equivalence([(1.0, 0.26), (0.8, 0.26), (0.0, 0.26)]), REFUTED)
    _check(rules.rule_engine_equivalence([(0.0, 0.26), (0.0, 0.26), (0.8, 0.26)]), NOT_SUPPORTED)
    _check(rules.rule_engine_equivalence([]), INCONCLUSIVE)


def test_rule_bf16_each_verdict():
    _check(rules.rule_bf16_update_kept(0.001), SUPPORTED)
    _check(rules.rule_bf16_update_kept(0.9), REFUTED)
    _check(rules.rule_bf16_update_kept(0.2), NOT_SUPPORTED)
    _check(rules.rule_bf16_update_kept(None), INCONCLUSIVE)


# =========================================================================== synthetic run records
RTE, MRPC = "glue/rte", "glue/mrpc"
SEEDS = (0, 1, 2, 3, 4)
LAYERS = ("bert.encoder.layer.0.attention.self.query", "bert.encoder.layer.0.attention.self.value")


def _ranked(rank: int, dim: int = 64, fro: float = 0.5) -> dict:
    sv = [1.0 / (i + 1) for i in range(rank)] + [1e-7] * (dim - rank)
    ranks = {f"{t:g}": sum(s > t * sv[0] for s in sv) for t in (1e-2, 1e-3, 1e-4, 1e-6)}
    return {"fro_norm": fro, "ranks": ranks, "singular_values": sv}


def make_record(
    task: str,
    row: str,
    seed: int,
    value: float,
    *,
    method: str | None = None,
    profile: str = "default",
    metrics: dict | None = None,
    analysis: dict | None = None,
    engine: str | None = None,
    lr: float = 1e-3,
    n_val: int = 384,
) -> dict:
    method = method or (
        "delta_lora"
        if row.startswith("delta_lora") or row.startswith("dropout_delta")
        else "full_ft"
        if row == "full_ft"
        else "adalora"
        if row == "adalora"
        else "dylora"
        if row == "dylora"
        else "lora"
    )
    family = "glue" if task.startswith("glue/") else "nlg"
    metric = {"glue/rte": "accuracy", "glue/mrpc": "accuracy", "e2e": "bleu", "webnlg": "bleu_all"}[task]
    hp = {"r": 8, "alpha": 16.0, "dropout": 0.0}
    if method == "delta_lora":
        hp.update({"update_ratio": 2.0, "start_step": 10, "engine": engine or "folded"})
    cfg = {
        "profile": profile,
        "task": task,
        "method": method,
        "seed": seed,
        "row": row,
        "model": "embedded:minilm",
        "model_options": {"num_hidden_layers": 2},
        "data": {"n_train": 512, "n_val": n_val, "seed": 0},
        "train": {"epochs": 3, "lr": lr, "batch_size": 16},
        "hp": hp,
        "generation": {},
        "analysis": {"update_rank": analysis is not None},
    }
    best = {"epoch": 2, "step": 64, "metrics": {metric: value, **(metrics or {})}, "extra_splits": {}}
    rec = {
        "schema_version": SCHEMA_VERSION,
        "status": "complete",
        "task": task,
        "task_family": family,
        "model": "embedded:minilm",
        "method": method,
        "row": row,
        "seed": seed,
        "profile": profile,
        "config": cfg,
        "metric": metric,
        "epochs": [best],
        "best": best,
        "final": best,
        "params": {"total": 1000, "trainable": 10, "extra_updated": 0},
        "delta_lora": (
            {
                "steps_counted": 96,
                "switched": True,
                "engine": hp["engine"],
                "update_ratio": 2.0,
                "start_step": 10,
                "extra_updated_params": 100,
            }
            if method == "delta_lora"
            else None
        ),
        "analysis": {"update_rank": analysis} if analysis is not None else {},
        "provenance": {
            "versions": {},
            "git_commit": "0" * 40,
            "device": {"type": "cpu", "name": "test"},
            "wall_time_s": 1.0,
            "peak_memory_bytes": 1,
            "peak_memory_method": "test",
        },
    }
    assert set(REQUIRED_KEYS) <= set(rec) and set(REQUIRED_PROVENANCE) <= set(rec["provenance"])
    return rec


def _analysis(w_rank: int, *, inplace: bool = False, full: bool = False) -> dict:
    layers = {}
    for name in LAYERS:
        entry = {"shape": [64, 64], "w": _ranked(w_rank), "effective": _ranked(w_rank)}
        if not full:
            entry["two_r"] = 16
        if inplace:
            entry["telescoping_rel_err"] = 3e-6
        layers[name] = entry
    return {"thresholds": [1e-2, 1e-3, 1e-4, 1e-6], "headline_threshold": 1e-3, "layers": layers}


NOISE = {0: 0.1, 1: -0.2, 2: 0.3, 3: -0.1, 4: 0.05}


def scores_for(task: str, row: str, seed: int) -> float:
    """Deterministic synthetic scores with known orderings per row."""
    base = {RTE: 70.0, MRPC: 80.0, "e2e": 60.0}[task] + NOISE[seed]
    offsets = {
        "lora": 0.0,
        "delta_lora": 2.0 + 0.2 * seed,  # clear win over LoRA on every seed
        "delta_lora_inplace": 2.0 + 0.2 * seed,  # identical to folded
        "adalora": 4.0 + 0.1 * seed,  # AdaLoRA clearly better: Delta-LoRA loses
        "dylora": 2.0 + 0.2 * seed + (1.0, -1.0, 0.5, -0.5, 0.2)[seed],  # mixed
        "lora_scaled": 1.0,
        "lora_nodrop": 0.5,
        "lora_lr0.003": 3.0 + 0.25 * seed,  # the tuned LoRA beats Delta-LoRA on every seed
        "full_ft": 5.0,
        "dropout_delta_lora_p0": 2.0 + 0.2 * seed,
        "dropout_delta_lora_p0.1": 1.0 + 0.1 * seed,  # dropout hurts Delta-LoRA
        "dropout_lora_p0": 0.5,
        "dropout_lora_p0.1": 0.0,
    }
    return base + offsets[row]


@pytest.fixture()
def synthetic(tmp_path):
    paths = []
    rows_all = [
        "lora",
        "delta_lora",
        "delta_lora_inplace",
        "adalora",
        "dylora",
        "lora_scaled",
        "lora_nodrop",
        "lora_lr0.003",
        "full_ft",
    ]
    for task in (RTE, MRPC, "e2e"):
        rows = rows_all if task == RTE else ["lora", "delta_lora", "adalora", "dylora"]
        if task == RTE:
            rows = rows + [
                "dropout_delta_lora_p0",
                "dropout_delta_lora_p0.1",
                "dropout_lora_p0",
                "dropout_lora_p0.1",
            ]
        for row in rows:
            for seed in SEEDS:
                analysis = None
                if task == RTE and row == "delta_lora":
                    analysis = _analysis(16)
                elif task == RTE and row == "delta_lora_inplace":
                    analysis = _analysis(16, inplace=True)
                elif task == RTE and row == "full_ft":
                    analysis = _analysis(60, full=True)
                rec = make_record(
                    task,
                    row,
                    seed,
                    scores_for(task, row, seed),
                    analysis=analysis,
                    engine="inplace" if row == "delta_lora_inplace" else None,
                    lr=0.003 if row == "lora_lr0.003" else 1e-3,
                )
                p = tmp_path / "runs" / task.replace("/", "_") / row / f"seed{seed}" / "record.json"
                atomic_write_json(p, rec)
                paths.append(p)
    memory = tmp_path / "memory.csv"
    mem_rows = []
    for cfg, peak, step in (
        ("full_ft", 2.0, 1.9),
        ("lora", 1.0, 1.0),
        ("inplace", 1.04, 1.06),
        ("folded", 1.01, 1.02),
        ("naive", 1.6, 1.3),
    ):
        mem_rows.append(
            {
                "model": "minilm",
                "config": cfg,
                "device": "cpu",
                "dtype": "fp32",
                "median_step_s": step,
                "peak_bytes": int(peak * 1e8),
                "step_ratio_to_lora": step,
                "peak_ratio_to_lora": peak,
                "bf16_inplace_lost_fraction": 0.9,
                "bf16_folded_lost_fraction": 1e-9,
                "bf16_model": "minilm",
            }
        )
    pd.DataFrame(mem_rows).to_csv(memory, index=False)
    cosines = tmp_path / "cos.csv"
    cos_rows = []
    for method in ("lora", "delta_lora"):
        for p, c in ((0.0, 1.0), (0.1, 0.95)):
            for step in (10, 20):
                for layer in LAYERS:
                    cos_rows.append(
                        {
                            "method": method,
                            "dropout": p,
                            "step": step,
                            "layer": layer,
                            "cosine": c - (1e-7 if p == 0 else 0.01 * step / 20),
                        }
                    )
    pd.DataFrame(cos_rows).to_csv(cosines, index=False)
    return {"paths": paths, "memory": memory, "cosines": cosines, "tmp": tmp_path}


def _build(synthetic, *, plots: bool = True, **kw):
    out = synthetic["tmp"] / "results"
    table = build_audit(
        synthetic["paths"],
        profile="default",
        memory_csv=synthetic["memory"],
        cosines_csv=synthetic["cosines"],
        dropout_csv=kw.pop("dropout_csv", None),
        out_md=out / "audit.md",
        out_csv=out / "audit.csv",
        plots_dir=out / "plots" if plots else None,
        settings=FAST,
        **kw,
    )
    return table, out


def test_end_to_end_report(synthetic):
    table, out = _build(synthetic)
    df = pd.read_csv(out / "audit.csv", keep_default_na=False)
    assert list(df.columns[:5]) == ["claim", "test", "evidence", "verdict", "profile"]
    assert tuple(df.columns) == CSV_COLUMNS
    assert set(df["verdict"]) <= set(VERDICTS)
    assert set(df["profile"]) == {"default"}
    v = dict(zip(df["id"], df["verdict"], strict=True))
    # every claim has exactly one claim-level row
    assert sorted(df[df["level"] == "claim"]["id"]) == sorted(CLAIMS)
    assert v["1a"] == REFUTED  # rank 16 = 2r in every layer
    assert v["1b"] == SUPPORTED
    assert v["2"] == SUPPORTED and v["2.folded"] == SUPPORTED and v["2.naive"] == REFUTED
    assert v["3a"] == SUPPORTED
    assert v["3b"] == SUPPORTED
    assert v["4a.lora.glue/rte"] == SUPPORTED
    assert v["4a.adalora.glue/rte"] == REFUTED
    assert v["4a.dylora.glue/rte"] == NOT_SUPPORTED
    assert v["4a"] == REFUTED  # loses to AdaLoRA
    assert v["4b"] == INCONCLUSIVE  # gains on RTE and MRPC, but 6 GLUE tasks not measured
    assert v["4c"] == SUPPORTED  # direction only at proxy scale
    assert v["4d"] == INCONCLUSIVE  # no WebNLG runs
    assert v["5"] == REFUTED and v["5.glue/rte"] == REFUTED  # the tuned LoRA (lr 0.003) is better
    assert v["6a"] == SUPPORTED
    assert v["6b"] == REFUTED
    # equal tuning: on RTE LoRA's sweep picks lr 0.003 and wins; elsewhere LoRA has no sweep and loses
    assert v["8.glue/rte"] == REFUTED and v["8.glue/mrpc"] == SUPPORTED and v["8.e2e"] == SUPPORTED
    assert v["8"] == NOT_SUPPORTED  # pooled over the three tasks: mixed
    # proxy-scale label on the model comparisons
    assert "not a verdict on the paper" in df.set_index("id").loc["4a.lora.glue/rte", "scale"]

    md = (out / "audit.md").read_text()
    assert md.index("## Summary") < md.index("## Claim 1")
    assert "snakemake --cores all results/audit.md --configfile workflow/config/default.yaml" in md
    assert md.index("## Summary") < md.index("plots/audit_forest.png") < md.index("## Claim 1")
    for stem in (
        "audit_forest",
        "audit_rank_spectra",
        "audit_memory",
        "audit_dropout_cosines",
        "audit_baselines",
        "audit_controls",
        "audit_engines",
    ):
        assert (out / "plots" / f"{stem}.png").is_file() and (out / "plots" / f"{stem}.pdf").is_file()
        assert f"plots/{stem}.png" in md
    assert len(table) == len(df) and [r["id"] for r in table] == list(df["id"])


def _bytes_under(root):
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_rebuilt_audit_is_byte_identical(synthetic):
    """The same inputs built again, in a later second, give the same bytes: Markdown, CSV, PNG and PDF
    (no wall-clock stamp, no build duration, fixed plot metadata). ~15 s."""
    import time

    _, out = _build(synthetic)
    first = _bytes_under(out)
    assert any(name.endswith(".pdf") for name in first) and any(name.endswith(".png") for name in first)
    time.sleep(1.05 - time.time() % 1)  # a stamp to the second would differ now
    _build(synthetic)
    again = _bytes_under(out)
    assert sorted(again) == sorted(first)
    assert [name for name in first if again[name] != first[name]] == []


def test_csv_verdicts_follow_the_rules(synthetic):
    """Recompute some verdicts from the records' numbers with stats + rules: the CSV must agree."""
    _, out = _build(synthetic, plots=False)
    df = pd.read_csv(out / "audit.csv", keep_default_na=False).set_index("id")
    for base in ("lora", "adalora", "dylora"):
        d = {s: scores_for(RTE, "delta_lora", s) - scores_for(RTE, base, s) for s in SEEDS}
        cmp = stats.paired_comparison({RTE: d}, n_resamples=FAST.n_resamples, seed=FAST.bootstrap_seed)
        verdict, text = rules.rule_paired_gain(cmp, what="Delta-LoRA - x")
        assert df.loc[f"4a.{base}.{RTE}", "verdict"] == verdict
        assert df.loc[f"4a.{base}.{RTE}", "rule"].startswith("on the seed-paired differences")
    # pooled vs LoRA over the three tasks
    strata = {
        t: {s: scores_for(t, "delta_lora", s) - scores_for(t, "lora", s) for s in SEEDS}
        for t in (RTE, MRPC, "e2e")
    }
    cmp = stats.paired_comparison(strata, n_resamples=FAST.n_resamples)
    assert df.loc["4a.lora", "verdict"] == rules.rule_paired_gain(cmp)[0]
    assert df.loc["1a", "verdict"] == rules.rule_high_rank([(16, 16)] * 10)[0]
    assert df.loc["2", "verdict"] == rules.rule_comparable_cost([(1.04, 2.0), (1.06, 1.9)])[0]
    assert df.loc["6b", "verdict"] == rules.rule_bf16_update_kept(0.9)[0]
    # every row prints its rule
    assert (df["rule"].str.len() > 20).all()


def test_three_seeds_are_never_decisive(tmp_path):
    paths = []
    for row in ("lora", "delta_lora"):
        for seed in (0, 1, 2):
            p = tmp_path / row / f"{seed}.json"
            atomic_write_json(p, make_record(RTE, row, seed, scores_for(RTE, row, seed)))
            paths.append(p)
    table = build_audit(paths, profile="default", out_md=tmp_path / "a.md", settings=FAST)
    v = {r["id"]: r["verdict"] for r in table}
    assert v["4a.lora.glue/rte"] == INCONCLUSIVE  # 3/3 wins, but min one-sided p = 1/8
    assert all(r["verdict"] == INCONCLUSIVE for r in table if r["id"] in ("1a", "2", "3a", "6b"))
    assert (tmp_path / "a.csv").is_file()


def test_absent_inputs_are_inconclusive_not_crashes(tmp_path):
    table = build_audit(
        [],
        profile="paper",
        memory_csv=tmp_path / "missing.csv",
        dropout_csv=tmp_path / "nope.csv",
        cosines_csv=None,
        out_md=tmp_path / "a.md",
        out_csv=tmp_path / "a.csv",
        settings=FAST,
    )
    assert {r["verdict"] for r in table} == {INCONCLUSIVE}
    ev = {r["id"]: r["evidence"] for r in table}
    assert "does not exist" in ev["2"] and "not given" in ev["3a"]
    bad = tmp_path / "bad.csv"
    bad.write_text("model,dtype\nx,y\n")  # lacks the ratio columns
    table = build_audit([], profile="paper", memory_csv=bad, out_md=tmp_path / "b.md", settings=FAST)
    assert "lacks columns" in {r["id"]: r["evidence"] for r in table}["2"]


def test_other_profile_records_are_refused(tmp_path):
    p = tmp_path / "r.json"
    atomic_write_json(p, make_record(RTE, "lora", 0, 70.0, profile="paper"))
    with pytest.raises(RecordError, match="profile"):
        build_audit([p], profile="default", out_md=tmp_path / "a.md", settings=FAST)
    assert not (tmp_path / "a.md").exists()


def test_paper_profile_checks_the_claimed_magnitude(tmp_path):
    paths = []
    for row in ("lora", "delta_lora"):
        for seed in SEEDS:
            v = 68.0 + NOISE[seed] + (0.4 + 0.02 * seed if row == "delta_lora" else 0.0)  # +0.4, not +1.24
            rec = make_record("e2e", row, seed, v, profile="paper")
            p = tmp_path / row / f"{seed}.json"
            atomic_write_json(p, rec)
            paths.append(p)
    paper = {
        r["id"]: r["verdict"]
        for r in build_audit(paths, profile="paper", out_md=tmp_path / "p.md", settings=FAST)
    }
    assert paper["4c"] == NOT_SUPPORTED  # a significant gain, but its CI excludes +1.24
    assert paper["4a.lora.e2e"] == SUPPORTED


def test_cli_command(synthetic, capsys):
    parser = argparse.ArgumentParser(prog="deltalora")
    sub = parser.add_subparsers(dest="command")
    add_audit_command(sub)
    out = synthetic["tmp"] / "cli"
    listing = synthetic["tmp"] / "records.txt"
    listing.write_text("\n".join(map(str, synthetic["paths"])) + "\n")
    args = parser.parse_args(
        [
            "audit",
            "--records-from",
            str(listing),
            "--profile",
            "default",
            "--memory",
            str(synthetic["memory"]),
            "--out",
            str(out / "audit.md"),
            "--resamples",
            "500",
        ]
    )
    assert args.func(args) == 0
    assert (out / "audit.csv").is_file() and "wrote" in capsys.readouterr().out
    df = pd.read_csv(out / "audit.csv", keep_default_na=False)
    assert math.isclose(len(df[df["level"] == "claim"]), len(CLAIMS))


@pytest.mark.parametrize("lora_dropout", [0.0, 0.1])
def test_lora_without_dropout_is_its_own_no_dropout_control(synthetic, lora_dropout):
    """GLUE's LoRA protocol has no LoRA dropout: then LoRA itself is claim 5's no-dropout control."""
    import json

    paths = [p for p in synthetic["paths"] if "/lora_nodrop/" not in str(p)]
    for p in paths:
        rec = json.loads(p.read_text())
        if rec["row"] == "lora":
            rec["config"]["hp"]["dropout"] = lora_dropout
            atomic_write_json(p, rec)
    _, out = _build({**synthetic, "paths": paths}, plots=False)
    df = pd.read_csv(out / "audit.csv", keep_default_na=False).set_index("id")
    lacks = "RTE lacks no dropout" in df.loc["5", "evidence"]
    assert lacks == (lora_dropout > 0)
