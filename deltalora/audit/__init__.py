"""Audit of the Delta-LoRA paper's claims: evidence -> measured numbers -> rule -> verdict -> report.

* ``evidence``: reads run records (refusing other profiles) and the optional measurement CSVs.
* ``stats``: paired bootstrap CI, exact sign test, exact Wilcoxon signed-rank.
* ``rules``: one small function per verdict rule, returning (verdict, rule_text).
* ``claims``: the claims (with where they are made) and how each is tested: one module per claim
  family, registered in ``claims.FAMILIES``.
* ``report``: ``build_audit`` writes results/audit.md, results/audit.csv and plots.
* ``command``: ``deltalora audit``'s parser (light: no pandas or scipy until the audit runs).
* ``plots``: the report's figures.
"""

from __future__ import annotations

import importlib
from typing import Any

# name -> the submodule that defines it. Imported on first use (PEP 562): `deltalora audit`'s parser
# (.command) is built by every `deltalora` command, and the modules below pull in pandas, scipy and
# matplotlib.
_EXPORTS = {
    "CLAIMS": "claims",
    "AuditRow": "claims",
    "Claim": "claims",
    "Settings": "claims",
    "assess": "claims",
    "Evidence": "evidence",
    "gather": "evidence",
    "CSV_COLUMNS": "report",
    "build_audit": "report",
    "add_audit_command": "command",
    "INCONCLUSIVE": "rules",
    "NOT_SUPPORTED": "rules",
    "REFUTED": "rules",
    "SUPPORTED": "rules",
    "VERDICTS": "rules",
}


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = sorted(_EXPORTS)
