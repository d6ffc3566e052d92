"""The 4-bit-base study's table (deltalora/collect/qlora.py) and the audit's claim 7, on synthetic records."""

from __future__ import annotations

import statistics

import pytest
from test_audit import FAST, _check, _cmp, make_record

from deltalora.audit import rules
from deltalora.audit.claims import assess_quantized
from deltalora.audit.evidence import Evidence
from deltalora.audit.rules import INCONCLUSIVE, NOT_SUPPORTED, REFUTED, SUPPORTED
from deltalora.collect.qlora import qlora_table
from deltalora.records import RecordError

NOISE = {0: 0.1, 1: -0.2, 2: 0.3, 3: -0.1, 4: 0.05}
TASKS = ("glue/rte", "glue/mrpc")


def study(gain_fp32: float, gain_q: float, *, seeds=range(5), quantize: str = "nf4") -> list[dict]:
    recs = []
    for task in TASKS:
        for s in seeds:
            for base, gain in (("fp32", gain_fp32), (quantize, gain_q)):
                lora = 70.0 + s + (0.5 if base != "fp32" else 0.0)
                for row, v in ((f"lora_{base}", lora), (f"delta_lora_{base}", lora + gain + NOISE[s])):
                    r = make_record(task, row, s, v)
                    if base != "fp32":
                        r["config"]["model_options"]["quantize"] = base
                    r["_path"] = f"/x/{task}/{row}/{s}"
                    recs.append(r)
    return recs


def claim(recs) -> str:
    head = assess_quantized(Evidence(profile="default", records=recs), FAST)[0]
    assert head.claim_id == "7" and head.level == "claim"
    return head.verdict


def test_rule_gain_survives_each_verdict():
    sup = (SUPPORTED, "")
    nots = (NOT_SUPPORTED, "")
    flat = _cmp([0.1, -0.1, 0.05, -0.05, 0.0])
    down = _cmp([-1.0, -1.2, -0.8, -1.1, -0.9])
    up = _cmp([1.0, 1.2, 0.8, 1.1, 0.9])
    _check(rules.rule_gain_survives(sup, sup, flat), SUPPORTED)
    _check(rules.rule_gain_survives(nots, nots, flat), SUPPORTED)  # "or not": no gain on either base
    _check(rules.rule_gain_survives(sup, nots, down), REFUTED)  # the gain is lost on the 4-bit base
    _check(rules.rule_gain_survives(nots, sup, up), REFUTED)  # a gain appears only on the 4-bit base
    _check(rules.rule_gain_survives(sup, nots, flat), NOT_SUPPORTED)  # outcomes differ, gap not significant
    _check(
        rules.rule_gain_survives(sup, sup, down), NOT_SUPPORTED
    )  # same outcome, but the gain shrank significantly
    _check(rules.rule_gain_survives((INCONCLUSIVE, ""), sup, flat), INCONCLUSIVE)
    _check(rules.rule_gain_survives(sup, sup, _cmp([0.1, -0.1, 0.0])), INCONCLUSIVE)  # too few pairs
    _check(rules.rule_gain_survives(None, None, None), INCONCLUSIVE)


def test_claim_7_on_records():
    assert claim(study(1.0, 1.0)) == SUPPORTED  # same gain on both bases
    assert claim(study(1.0, -1.0)) == REFUTED  # gain on fp32, loss on 4-bit
    assert claim(study(0.0, 0.0)) == SUPPORTED  # no gain on either: the "or not" survives too
    assert claim(study(1.0, 1.0, seeds=range(2))) == INCONCLUSIVE  # 2 seeds x 2 tasks: too few pairs per base
    assert claim([r for r in study(1.0, 1.0) if "fp32" not in r["row"]]) == INCONCLUSIVE  # no fp32 rows


def test_claim_7_without_study_records_is_inconclusive():
    recs = [make_record("glue/rte", "lora", s, 70.0) for s in range(5)]
    for r in recs:
        r["_path"] = "x"
    rows = assess_quantized(Evidence(profile="default", records=recs), FAST)
    assert [r.verdict for r in rows] == [INCONCLUSIVE] and "no evidence" in rows[0].evidence


def test_table_cells_are_record_statistics():
    recs = study(1.0, -0.5)
    table = qlora_table(recs, rows=["lora", "delta_lora"], quantize="nf4").set_index("row")
    assert list(table.index) == [
        "lora_fp32",
        "delta_lora_fp32",
        "gain_fp32",
        "lora_nf4",
        "delta_lora_nf4",
        "gain_nf4",
    ]
    for row in ("lora_nf4", "delta_lora_fp32"):
        vals = [r["best"]["metrics"]["accuracy"] for r in recs if r["row"] == row and r["task"] == "glue/rte"]
        assert table.loc[row, "rte"] == pytest.approx(statistics.median(vals))
        assert table.loc[row, "rte_std"] == pytest.approx(statistics.stdev(vals))
    paired = [-0.5 + NOISE[s] for s in range(5)]
    assert table.loc["gain_nf4", "mrpc"] == pytest.approx(statistics.median(paired))
    assert table.loc["gain_fp32", "avg"] == pytest.approx(1.0 + statistics.median(NOISE.values()))
    assert table.loc["delta_lora_nf4", "base"] == "nf4" and table.loc["gain_nf4", "kind"] == "gain"


def test_table_refuses_a_row_on_the_wrong_base():
    recs = study(1.0, 1.0)
    for r in recs:
        if r["row"] == "lora_nf4":
            r["config"]["model_options"].pop("quantize")  # trained on the fp32 base by mistake
    with pytest.raises(RecordError, match="row 'lora_nf4' has records on a fp32 base, expected nf4"):
        qlora_table(recs, rows=["lora", "delta_lora"], quantize="nf4")
    with pytest.raises(RecordError, match="no records for row 'dora_fp32'"):
        qlora_table(recs, rows=["lora", "dora"], quantize="nf4")
