"""What every claim family shares: the claim and audit-row types, the settings, and small helpers.

A family module (one per section of the report) defines its ``Claim`` constants, an ``assess_*``
function that turns the evidence into ``AuditRow``s, and a ``ClaimFamily`` tying them together; the
package's ``__init__`` lists the families in report order. Nothing here knows any particular claim.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ... import smoke
from .. import rules
from ..evidence import Evidence, scale_label
from ..stats import PairedComparison, paired_comparison

DELTA = "delta_lora"  # the row of Delta-LoRA at its base settings, which most claims compare


@dataclass(frozen=True)
class Claim:
    id: str
    text: str
    where: str
    test: str


@dataclass
class AuditRow:
    id: str
    claim_id: str
    level: str  # "claim" (summary) or "detail"
    claim: str
    test: str
    evidence: str
    verdict: str
    rule: str
    profile: str
    scale: str
    data: dict[str, Any] = field(default_factory=dict)
    mde: float | None = None  # power.py: minimum detectable effect (points) at the pairs run
    seeds_needed: int | None = None  # power.py: seeds (per task) to detect 1 point
    seeds_needed_stated: int | None = None  # ... to detect the claim's stated size

    def csv_dict(self) -> dict[str, str]:
        return {
            "claim": self.claim,
            "test": self.test,
            "evidence": self.evidence,
            "verdict": self.verdict,
            "profile": self.profile,
            "rule": self.rule,
            "scale": self.scale,
            "id": self.id,
            "level": self.level,
            "mde": "" if self.mde is None else ("inf" if math.isinf(self.mde) else f"{self.mde:.3f}"),
            "seeds_needed": "" if self.seeds_needed is None else str(self.seeds_needed),
            "seeds_needed_stated": "" if self.seeds_needed_stated is None else str(self.seeds_needed_stated),
            "smoke": str(smoke.active()),  # a smoke build's rows say so (deltalora.smoke)
        }


@dataclass(frozen=True)
class Settings:
    alpha: float = rules.ALPHA
    n_resamples: int = 10_000
    bootstrap_seed: int = 0

    @property
    def confidence(self) -> float:
        return 1 - self.alpha


Assessor = Callable[[Evidence, Settings], list[AuditRow]]


@dataclass(frozen=True)
class ClaimFamily:
    """One section of the audit report: its claims, in order, and the function that tests them.

    ``assess`` returns the family's rows: one ``level="claim"`` row per claim (the summary table) and
    any ``level="detail"`` rows the verdicts were built from.
    """

    section: str  # "1", "2", ...: the report's section number
    title: str  # the report's section heading
    claims: tuple[Claim, ...]
    assess: Assessor


def audit_row(
    ev: Evidence,
    claim: Claim,
    suffix: str,
    level: str,
    test: str,
    evidence: str,
    verdict: tuple[str, str],
    scale: str,
    data: dict[str, Any] | None = None,
) -> AuditRow:
    """One row of the audit for ``claim`` (id ``<claim id>.<suffix>``), with a rule's (verdict, rule text)."""
    return AuditRow(
        id=claim.id + (f".{suffix}" if suffix else ""),
        claim_id=claim.id,
        level=level,
        claim=f"{claim.text} [{claim.where}]",
        test=test,
        evidence=evidence,
        verdict=verdict[0],
        rule=verdict[1],
        profile=ev.profile,
        scale=scale,
        data=data or {},
    )


def absent_evidence(ev: Evidence, name: str) -> str:
    """The evidence text of a claim whose input ``name`` (memory, cosines, ...) was not given."""
    return f"no evidence: {name} {ev.absent.get(name, 'absent')}"


def records_scale(ev: Evidence, recs: Sequence[dict[str, Any]] | None = None) -> str:
    """The scale label (model, data, profile) of the records a verdict was decided on."""
    recs = ev.records if recs is None else recs
    return scale_label(ev.profile, recs) if recs else "no measurement"


def fmt(x: float | None, digits: int = 2) -> str:
    return "-" if x is None or (isinstance(x, float) and not math.isfinite(x)) else f"{x:.{digits}f}"


def median_or_none(vals: Sequence[float]) -> float | None:
    return float(statistics.median(vals)) if vals else None


def compare(
    ev: Evidence,
    s: Settings,
    strata: dict[str, dict[Any, float]],
    label: str,
    extra: dict[str, Any] | None = None,
) -> PairedComparison:
    """The seed-paired comparison (bootstrap CI and exact test) of per-task paired differences, per ``s``."""
    return paired_comparison(
        strata,
        label=label,
        alpha=s.alpha,
        confidence=s.confidence,
        n_resamples=s.n_resamples,
        seed=s.bootstrap_seed,
        extra=extra,
    )


def task_records(ev: Evidence, task: str, rows: Sequence[str]) -> list[dict[str, Any]]:
    """Every run record of ``rows`` on ``task`` (all seeds)."""
    return [rec for row in rows for rec in ev.runs(task, row).values()]
