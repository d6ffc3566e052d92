"""The paper's claims, and how each is tested on the evidence: the registry of claim families.

Each family module (one per section of the report) defines its claims (``CLAIM_*``, with where the
paper makes them) and an ``assess_*`` function that measures numbers from the evidence, hands them to a
rule of ``rules.py`` and returns audit rows. A row at ``level="claim"`` goes in the summary table;
``level="detail"`` rows (per task, per baseline, per engine) are the parts a claim-level verdict is
built from. The numbers a row was decided on are kept in ``row.data`` for the report's tables and plots.

``FAMILIES`` is the registry, in report order: adding a claim family is one module (ending in
``FAMILY = ClaimFamily(...)``) plus one ``register(module.FAMILY)`` line below (and the module on the
import line). ``CLAIMS``, ``assess`` and the report's sections all follow from it. Where each claim
is made is in its module's docstring (section numbers of docs/sources.md; derivations in docs/design.md).
"""

from __future__ import annotations

from .. import power
from ..evidence import Evidence
from . import baselines, cost, dropout, engines, equal_tuning, lr_objection, modern, quantized, rank
from .baselines import assess_baselines
from .common import AuditRow, Claim, ClaimFamily, Settings, audit_row, compare, records_scale, task_records
from .cost import assess_cost
from .dropout import assess_dropout
from .engines import assess_engines
from .equal_tuning import assess_equal_tuning
from .lr_objection import assess_lr_objection
from .quantized import assess_quantized
from .rank import assess_rank

FAMILIES: list[ClaimFamily] = []  # in report order
CLAIMS: dict[str, Claim] = {}  # claim id -> claim, over every registered family


def register(family: ClaimFamily) -> ClaimFamily:
    """Add a claim family to the audit, after those registered before it; returns it.

    Claim ids and section numbers must be unique: the report and the CSV are keyed by them.
    """
    taken = sorted(c.id for c in family.claims if c.id in CLAIMS)
    if taken:
        raise ValueError(f"claims.register: claim id(s) {', '.join(taken)} already registered")
    if any(f.section == family.section for f in FAMILIES):
        raise ValueError(f"claims.register: section {family.section!r} already registered")
    FAMILIES.append(family)
    CLAIMS.update((c.id, c) for c in family.claims)
    return family


register(rank.FAMILY)  # 1: high-rank update, telescoping identity
register(cost.FAMILY)  # 2: memory and compute
register(dropout.FAMILY)  # 3: dropout removed
register(baselines.FAMILY)  # 4: against LoRA, AdaLoRA, DyLoRA
register(lr_objection.FAMILY)  # 5: not LoRA with another learning rate
register(engines.FAMILY)  # 6: engine equivalence, bf16
register(quantized.FAMILY)  # 7: 4-bit base
register(equal_tuning.FAMILY)  # 8: against LoRA at equal tuning
register(modern.FAMILY)  # 9: against the LoRA variants published since, at equal tuning


def assess(ev: Evidence, settings: Settings | None = None) -> list[AuditRow]:
    """Every family's rows, in registry order, each comparison annotated with its power (mde, seeds)."""
    s = settings or Settings()
    rows: list[AuditRow] = []
    for family in FAMILIES:
        rows += family.assess(ev, s)
    power.annotate(rows, alpha=s.alpha)  # mde and seeds needed on every comparison row
    return rows


__all__ = [
    "CLAIMS",
    "FAMILIES",
    "AuditRow",
    "Claim",
    "ClaimFamily",
    "Settings",
    "assess",
    "assess_baselines",
    "assess_cost",
    "assess_dropout",
    "assess_engines",
    "assess_equal_tuning",
    "assess_lr_objection",
    "assess_quantized",
    "assess_rank",
    "audit_row",
    "compare",
    "records_scale",
    "register",
    "task_records",
]
