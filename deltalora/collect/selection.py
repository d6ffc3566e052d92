"""The one selection rule, as a pure function: the best median score on dev, ties by the lower dev loss.

Why here: the audit (``deltalora.audit.selection``) and the collectors that select a learning rate
(``deltalora.collect.baselines``) must pick by the same rule, and collectors sit below the audit.
"""

from __future__ import annotations

import math
from collections.abc import Mapping


def best_by_median(medians: Mapping[str, float], losses: Mapping[str, float]) -> str | None:
    """The candidate with the best median score; ties go to the lower median loss, then to the name
    that sorts last (a small dev split saturates: many candidates reach the same count of correct
    examples)."""
    if not medians:
        return None
    return max(medians, key=lambda r: (medians[r], -losses.get(r, math.inf), r))
