"""The claim registry: every family keeps its contract, and one registration adds a family to the report.

Why: adding a claim must be one module plus one ``register(...)`` line. That holds only if the summary,
the CSV and the report's sections all follow the registry, and if each family's ``assess`` returns one
claim-level row per claim it declares (the report looks rows up by claim id).
"""

from __future__ import annotations

import pandas as pd
import pytest

from deltalora.audit import claims, rules
from deltalora.audit.claims import CLAIMS, FAMILIES, Claim, ClaimFamily, Settings, audit_row, register
from deltalora.audit.evidence import Evidence
from deltalora.audit.report import build_audit

FAST = Settings(n_resamples=200)
TOY = Claim("10", "A toy claim added by one registration", "this test", "the count of run records")


def _assess_toy(ev: Evidence, s: Settings) -> list:
    n = len(ev.records)
    return [
        audit_row(
            ev,
            TOY,
            "",
            "claim",
            TOY.test,
            f"{n} run record(s) counted",
            rules.rule_paired_gain(None, alpha=s.alpha),
            "no measurement",
            {"n": n},
        )
    ]


@pytest.fixture
def toy_family():
    family = ClaimFamily(section="10", title="Claim 10: a toy family", claims=(TOY,), assess=_assess_toy)
    register(family)
    try:
        yield family
    finally:
        claims.FAMILIES.remove(family)
        del claims.CLAIMS[TOY.id]


def test_registry_holds_the_nine_families_in_report_order():
    assert [f.section for f in FAMILIES] == ["1", "2", "3", "4", "5", "6", "7", "8", "9"]
    assert list(CLAIMS) == [
        "1a",
        "1b",
        "2",
        "3a",
        "3b",
        "4a",
        "4b",
        "4c",
        "4d",
        "5",
        "6a",
        "6b",
        "7",
        "8",
        "9",
    ]
    assert [c for f in FAMILIES for c in f.claims] == list(CLAIMS.values())


@pytest.mark.parametrize("family", FAMILIES, ids=lambda f: f.section)
def test_each_family_returns_one_claim_row_per_claim_and_only_its_own(family):
    rows = family.assess(Evidence("default", []), FAST)  # no evidence at all: every claim inconclusive
    own = {c.id for c in family.claims}
    assert {r.claim_id for r in rows} <= own
    assert sorted(r.claim_id for r in rows if r.level == "claim") == sorted(own)
    assert {r.verdict for r in rows if r.level == "claim"} == {rules.INCONCLUSIVE}


def test_one_registration_adds_a_family_to_summary_csv_and_report(tmp_path, toy_family):
    table = build_audit([], profile="default", out_md=tmp_path / "a.md", settings=FAST)
    ids = [r["id"] for r in table]
    assert ids[-1] == "10" and ids.count("10") == 1  # after the families registered before it
    row = next(r for r in table if r["id"] == "10")
    assert row["evidence"] == "0 run record(s) counted" and row["verdict"] == rules.INCONCLUSIVE
    csv = pd.read_csv(tmp_path / "a.csv", keep_default_na=False)
    assert csv.loc[csv["id"] == "10", "claim"].item() == f"{TOY.text} [{TOY.where}]"
    md = (tmp_path / "a.md").read_text()
    summary = md.split("## Claim 1")[0]
    assert f"| 10 | {TOY.text} | **{rules.INCONCLUSIVE}**" in summary
    section = md.split("## Claim 10: a toy family")[1]
    assert f"### 10. {TOY.text}" in section and "- Evidence: 0 run record(s) counted" in section


def test_a_claim_id_or_section_registered_twice_is_refused(toy_family):
    with pytest.raises(ValueError, match="claim id.*10.*already registered"):
        register(ClaimFamily(section="11", title="again", claims=(TOY,), assess=_assess_toy))
    with pytest.raises(ValueError, match="section '10' already registered"):
        register(
            ClaimFamily(section="10", title="again", claims=(Claim("11", "t", "w", "x"),), assess=_assess_toy)
        )
    assert FAMILIES[-1] is toy_family and "11" not in CLAIMS
