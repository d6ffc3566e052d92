"""Audit of the Delta-LoRA paper's claims: evidence -> measured numbers -> rule -> verdict -> report.

* ``evidence``: reads run records (refusing other profiles) and the optional measurement CSVs.
* ``stats``: paired bootstrap CI, exact sign test, exact Wilcoxon signed-rank.
* ``rules``: one small function per verdict rule, returning (verdict, rule_text).
* ``claims``: the claims (with where they are made) and how each is tested: one module per claim
  family, registered in ``claims.FAMILIES``.
* ``report``: ``build_audit`` writes results/audit.md, results/audit.csv and plots; ``add_audit_command``.
* ``plots``: the report's figures.
"""

from __future__ import annotations

from .claims import CLAIMS, AuditRow, Claim, Settings, assess
from .evidence import Evidence, gather
from .report import CSV_COLUMNS, add_audit_command, build_audit
from .rules import INCONCLUSIVE, NOT_SUPPORTED, REFUTED, SUPPORTED, VERDICTS

__all__ = [
    "CLAIMS",
    "CSV_COLUMNS",
    "INCONCLUSIVE",
    "NOT_SUPPORTED",
    "REFUTED",
    "SUPPORTED",
    "VERDICTS",
    "AuditRow",
    "Claim",
    "Evidence",
    "Settings",
    "add_audit_command",
    "assess",
    "build_audit",
    "gather",
]
