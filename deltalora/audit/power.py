"""Power of the audit's paired tests: what the seeds run can detect, and how many seeds would decide.

Why: "inconclusive" or "not supported" says nothing about what would decide. For every comparison row
the audit states, from the observed spread of the seed-paired differences,

* ``mde``: the minimum detectable effect (points) at the pairs run, at 80% power and one-sided
  alpha = 0.05, for the test the rule decides with;
* ``seeds_needed``: the seeds (pairs per task) needed to detect an effect of 1 point, and of the
  claim's stated size where it has one.

The tests, as ``rules.rule_paired_gain`` uses them:

* one task: the exact one-sided **Wilcoxon signed-rank** test. Its power is computed with the
  asymptotic-relative-efficiency method (Noether; what G*Power calls the A.R.E. method): the power
  of the one-sided paired t-test (noncentral t, scipy) at n x 3/pi pairs, 3/pi being the Wilcoxon
  test's efficiency relative to the t-test for normal differences. Below the fewest pairs with which
  the exact test can reach p < alpha (5 at alpha = 0.05) the power is 0: no effect is detectable.
  Where only the all-positive outcome rejects (n = 5 at alpha = 0.05) the power is exact,
  Phi(delta / sigma)^n. Checked by simulation: within a few points of 80% from n = 5 up (the A.R.E.
  method is slightly optimistic at n = 8-15, about 76-79% actual).
* pooled over tasks: the exact one-sided **sign test** on all pairs. For normal differences with
  mean delta and within-task SD sigma, each difference is positive with probability
  Phi(delta / sigma), so the power is an exact binomial tail (scipy), from the exact critical count.

The rule also needs the bootstrap CI to exclude 0; for normal differences that is implied, up to the
percentile bootstrap's small-sample optimism, by the test's rejection at the same alpha. The formulas
are checked against a seeded Monte-Carlo simulation of the rule's own tests in
``tests/test_audit_power.py``. The SD is estimated from the few pairs run, so the numbers are a
planning estimate, not a guarantee.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .stats import PairedComparison, min_pairs_for

POWER = 0.8
ARE_WILCOXON = 3 / math.pi  # efficiency of the Wilcoxon signed-rank test relative to the t-test (normal data)
MAX_SEEDS = 10_000


def t_power(effect: float, sd: float, n: float, alpha: float = 0.05) -> float:
    """Power of the one-sided paired t-test of H0: mean = 0 against mean = effect > 0, with n pairs."""
    from scipy.stats import nct, t

    if n < 2 or sd <= 0:
        return 0.0
    df = n - 1
    crit = t.ppf(1 - alpha, df)
    return float(nct.sf(crit, df, effect / sd * math.sqrt(n)))


def wilcoxon_power(effect: float, sd: float, n: int, alpha: float = 0.05) -> float:
    """Power of the exact one-sided Wilcoxon signed-rank test (A.R.E. method; 0 below its minimum n)."""
    from scipy.stats import norm

    if n < min_pairs_for(alpha, "greater") or sd <= 0:
        return 0.0
    if 0.5 ** (n - 1) >= alpha:  # only the all-positive outcome rejects (n = 5 at 0.05): exact power
        return float(norm.cdf(effect / sd) ** n)
    return t_power(effect, sd, n * ARE_WILCOXON, alpha)


def sign_critical(n: int, alpha: float = 0.05) -> int | None:
    """Smallest count k of positive signs with P(Bin(n, 1/2) >= k) < alpha (None: none exists)."""
    from scipy.stats import binom

    ks = np.arange(n + 1)
    ok = ks[binom.sf(ks - 1, n, 0.5) < alpha]
    return int(ok[0]) if ok.size else None


def sign_power(effect: float, sd: float, n: int, alpha: float = 0.05) -> float:
    """Power of the exact one-sided sign test with n pairs, for normal differences N(effect, sd^2)."""
    from scipy.stats import binom, norm

    k = sign_critical(n, alpha)
    if k is None or sd <= 0:
        return 0.0
    return float(binom.sf(k - 1, n, norm.cdf(effect / sd)))


def power_of(test: str, effect: float, sd: float, n: int, alpha: float = 0.05) -> float:
    if test == "wilcoxon":
        return wilcoxon_power(effect, sd, n, alpha)
    if test == "sign":
        return sign_power(effect, sd, n, alpha)
    raise ValueError(f"test must be 'wilcoxon' or 'sign', not {test!r}")


def mde(test: str, sd: float, n: int, alpha: float = 0.05, power: float = POWER) -> float:
    """Smallest effect (in the units of sd) detected with the given power: inf when none is."""
    from scipy.optimize import brentq

    if sd <= 0 or power_of(test, 1e6 * sd, sd, n, alpha) < power:
        return math.inf
    return float(brentq(lambda e: power_of(test, e, sd, n, alpha) - power, 0.0, 1e6 * sd, xtol=1e-9 * sd))


def pairs_needed(
    test: str, effect: float, sd: float, alpha: float = 0.05, power: float = POWER, max_n: int = MAX_SEEDS
) -> int | None:
    """Fewest pairs with which the test reaches the power for this effect (None: more than max_n)."""
    if effect <= 0 or sd <= 0:
        return None
    n = min_pairs_for(alpha, "greater")
    while n <= max_n:
        if power_of(test, effect, sd, n, alpha) >= power:
            return n
        n += 1 if n < 200 else max(1, n // 50)
    return None


PLAN_KEYS = {
    "paired_sd": "SD of the seed-paired differences in points, from a pilot (> 0)",
    "effect": "effect to detect in points (> 0)",
    "power": "target power in (0, 1), default 0.8",
    "alpha": "one-sided level in (0, 1), default 0.05",
    "test": "wilcoxon (one task) or sign (pooled)",
    "max": "most seeds the budget allows (>= 1)",
}


@dataclass(frozen=True)
class SeedPlan:
    """How many seeds a study runs and why: as listed, or as the power analysis asks for."""

    seeds: list[int]
    needed: int | None  # seeds the power analysis asks for (None: listed by hand, or more than MAX_SEEDS)
    text: str  # one line for the report


def plan_seeds(spec: Sequence[int] | Mapping[str, Any], *, field: str = "decisive.seeds") -> SeedPlan:
    """The seeds of the decisive study: a list as given, or ``{paired_sd, effect, ...}`` planned by power.

    Why: the seed count should follow from the spread the study will see, not from habit. A pilot's SD of
    the seed-paired differences and the effect worth detecting give the pairs the rule's test needs for
    80% power (:func:`pairs_needed`); ``max`` caps it at what the budget allows, and the plan says when
    the cap leaves the study short of that power.
    """
    if isinstance(spec, Mapping):
        bad = sorted(set(spec) - set(PLAN_KEYS))
        if bad:
            raise ValueError(
                f"{field}: unknown key(s) {', '.join(bad)}; allowed: "
                + "; ".join(f"{k} ({v})" for k, v in PLAN_KEYS.items())
            )

        def num(key: str, default: float | None, low: float, high: float | None) -> float:
            v = spec.get(key, default)
            if v is None:
                raise ValueError(f"{field}.{key} is required: {PLAN_KEYS[key]}")
            if (
                isinstance(v, bool)
                or not isinstance(v, (int, float))
                or not (v > low and (high is None or v < high))
            ):
                raise ValueError(f"{field}.{key} = {v!r}: must be {PLAN_KEYS[key]}")
            return float(v)

        sd, effect = num("paired_sd", None, 0, None), num("effect", None, 0, None)
        pw, alpha = num("power", POWER, 0, 1), num("alpha", 0.05, 0, 1)
        cap = int(num("max", MAX_SEEDS, 0.5, None))
        test = spec.get("test", "wilcoxon")
        if test not in ("wilcoxon", "sign"):
            raise ValueError(f"{field}.test = {test!r}: must be {PLAN_KEYS['test']}")
        need = pairs_needed(test, effect, sd, alpha=alpha, power=pw)
        n = min(need or cap, cap)
        text = (
            f"{n} seeds, planned by power: paired SD {sd:g} points (pilot), {effect:g}-point effect, "
            f"{pw:.0%} power, one-sided alpha {alpha:g}, {test} test -> "
            + (f"{need} seeds needed" if need else f"more than {MAX_SEEDS} needed")
        )
        if need is None or need > cap:
            text += (
                f"; capped at {cap} by the budget, so that effect is detected with less than {pw:.0%} power"
            )
        return SeedPlan(list(range(n)), need, text)
    seeds = list(spec)
    if (
        not seeds
        or any(isinstance(x, bool) or not isinstance(x, int) or x < 0 for x in seeds)
        or len(set(seeds)) != len(seeds)
    ):
        raise ValueError(
            f"{field}: a list of distinct seeds (integers >= 0), or a power plan with keys "
            + ", ".join(PLAN_KEYS)
        )
    return SeedPlan(seeds, None, f"{len(seeds)} seeds, listed in the configuration")


@dataclass(frozen=True)
class Power:
    """The power statement of one comparison row."""

    test: str  # "wilcoxon" (one task) or "sign" (pooled)
    sd: float  # within-task SD of the paired differences (points)
    pairs: int  # pairs run
    tasks: int  # strata
    mde: float  # points, at the pairs run
    seeds_needed: int | None  # per task, for 1 point
    stated: float | None = None  # the claim's stated size (points), if any
    seeds_needed_stated: int | None = None

    def describe(self) -> str:
        per = " per task" if self.tasks > 1 else ""
        need = (
            "more than " + str(MAX_SEEDS // max(self.tasks, 1))
            if self.seeds_needed is None
            else str(self.seeds_needed)
        )
        parts = [
            f"power ({self.test} test, 80%, alpha 0.05, SD of paired differences {self.sd:.2f}): "
            f"minimum detectable effect {_pts(self.mde)} at {self.pairs} pair(s); "
            f"{need} seeds{per} would detect 1 point"
        ]
        if self.stated is not None:
            s = "?" if self.seeds_needed_stated is None else str(self.seeds_needed_stated)
            parts.append(f"{s} seeds{per} the stated {self.stated:+g}")
        return ", ".join(parts)


def _pts(x: float) -> str:
    return "none (too few pairs for the exact test)" if not math.isfinite(x) else f"{x:.2f} points"


def within_sd(strata: Sequence[Sequence[float]]) -> float | None:
    """Pooled within-stratum SD (ddof 1 per stratum): the spread of a difference around its task's mean."""
    num, den = 0.0, 0
    for g in strata:
        g = np.asarray(list(g), dtype=float)
        if g.size >= 2:
            num += float(((g - g.mean()) ** 2).sum())
            den += g.size - 1
    if den == 0:
        return None
    return math.sqrt(num / den)


def power_for(cmp: PairedComparison, *, alpha: float = 0.05, stated: float | None = None) -> Power | None:
    """The power statement of a comparison (None when the spread cannot be estimated)."""
    groups = [list(s.values()) for s in cmp.strata.values()]
    sd = within_sd(groups)
    if sd is None or sd == 0:
        return None
    test = "sign" if cmp.pooled else "wilcoxon"
    k = max(len(groups), 1)

    def per_task(pairs: int | None) -> int | None:
        return None if pairs is None else math.ceil(pairs / k)

    return Power(
        test=test,
        sd=sd,
        pairs=cmp.n,
        tasks=k,
        mde=mde(test, sd, cmp.n, alpha),
        seeds_needed=per_task(pairs_needed(test, 1.0, sd, alpha)),
        stated=stated,
        seeds_needed_stated=per_task(pairs_needed(test, stated, sd, alpha)) if stated else None,
    )


UNDECIDED = ("inconclusive", "not supported")


def annotate(rows: Sequence, *, alpha: float = 0.05) -> None:
    """Attach the power statement to every row that holds a seed-paired comparison (``data['cmp']``).

    Sets ``row.mde``, ``row.seeds_needed`` and ``row.seeds_needed_stated`` (the CSV columns) and, on an
    undecided verdict, says in the evidence what would decide it.
    """
    for row in rows:
        cmp = (row.data or {}).get("cmp")
        if not isinstance(cmp, PairedComparison) or cmp.n == 0:
            continue
        p = power_for(cmp, alpha=alpha, stated=row.data.get("stated"))
        if p is None:
            if row.verdict in UNDECIDED:
                row.evidence += (
                    "; power: not estimable (fewer than 2 pairs in every task, or no spread): run more seeds"
                )
            continue
        row.data["power"] = p
        row.mde = p.mde
        row.seeds_needed = p.seeds_needed
        row.seeds_needed_stated = p.seeds_needed_stated
        if row.verdict in UNDECIDED:
            row.evidence += "; would decide: " + p.describe()
