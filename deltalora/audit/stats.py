"""Statistics for paired comparisons across seeds: bootstrap CI, exact sign test, exact Wilcoxon.

Pure functions on plain numbers; no I/O. A comparison of method X with method Y on one task pairs the
runs by seed (same data, same initial adapter seed) and works on the differences d_i = X_i - Y_i.

* ``bootstrap_ci``: percentile bootstrap of the mean difference (seeded ``numpy.random.Generator``,
  10,000 resamples, 95% by default). With strata (several tasks pooled), seeds are resampled within
  each task and the statistic is the mean over tasks of the per-task mean difference (equal task
  weights, as the tables' "Avg" column). The percentile bootstrap is anti-conservative for very small
  n (with 3 pairs its 95% interval is close to [min d, max d]); the rules therefore never decide from
  the interval alone, see ``rules.py``.
* ``sign_test``: exact binomial test on the signs of the non-zero differences (zeros dropped).
* ``wilcoxon_signed_rank``: exact signed-rank test by enumerating all 2^n sign assignments of the
  mid-ranks of |d| (exact also with ties; zeros dropped, Wilcoxon's convention). Returns no p-value,
  with the reason, when every difference is zero or when n is so small that no outcome could reach
  the significance level (the smallest attainable p is 2^-n one-sided, 2^(1-n) two-sided). Above
  ``EXACT_MAX_N`` non-zero differences it uses scipy's normal approximation.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

ALTERNATIVES = ("two-sided", "greater", "less")
EXACT_MAX_N = 20  # 2^20 sign vectors: still fast


@dataclass(frozen=True)
class SignificanceTest:
    """One hypothesis test. ``p_value`` is None when the test could not be run (``reason`` says why)."""

    name: str
    alternative: str
    n: int  # differences used (non-zero)
    statistic: float | None
    p_value: float | None
    reason: str | None = None

    def describe(self) -> str:
        if self.p_value is None:
            return f"{self.name}: not computed ({self.reason})"
        return f"{self.name} ({self.alternative}, n={self.n}): p = {self.p_value:.4g}"


@dataclass(frozen=True)
class CI:
    estimate: float
    low: float
    high: float
    confidence: float
    n_resamples: int

    def describe(self, digits: int = 2) -> str:
        return (
            f"{self.estimate:+.{digits}f} [{self.low:+.{digits}f}, {self.high:+.{digits}f}] "
            f"({self.confidence:.0%} bootstrap CI)"
        )


@dataclass(frozen=True)
class PairedComparison:
    """X - Y paired by seed, on one task (one stratum) or pooled over tasks (several strata)."""

    label: str
    strata: dict[str, dict[Any, float]]  # stratum (task) -> seed -> difference
    ci: CI | None
    sign_greater: SignificanceTest
    sign_less: SignificanceTest
    wilcoxon_greater: SignificanceTest
    wilcoxon_less: SignificanceTest
    alpha: float
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def diffs(self) -> np.ndarray:
        return np.array([d for s in self.strata.values() for d in s.values()], dtype=float)

    @property
    def n(self) -> int:
        return int(self.diffs.size)

    @property
    def pooled(self) -> bool:
        return len(self.strata) > 1

    def decision_test(self, alternative: str) -> SignificanceTest:
        """The test a rule decides with: Wilcoxon when it can be computed on one task, else the sign test.

        Pooled over tasks only the sign test is used: signed ranks would compare magnitudes across
        metrics of different tasks.
        """
        w = self.wilcoxon_greater if alternative == "greater" else self.wilcoxon_less
        s = self.sign_greater if alternative == "greater" else self.sign_less
        if not self.pooled and w.p_value is not None:
            return w
        return s

    def describe(self, digits: int = 2) -> str:
        if self.n == 0:
            return "no paired seeds"
        parts = [
            f"n = {self.n} pairs" + (f" over {len(self.strata)} tasks" if self.pooled else ""),
            f"mean diff {self.ci.describe(digits)}" if self.ci else "no CI",
            f"{int((self.diffs > 0).sum())}+/{int((self.diffs < 0).sum())}-/{int((self.diffs == 0).sum())}=",
            self.decision_test("greater").describe(),
            self.decision_test("less").describe(),
        ]
        return "; ".join(parts)


def _clean(diffs: Sequence[float] | np.ndarray) -> np.ndarray:
    d = np.asarray(diffs, dtype=float).ravel()
    if not np.all(np.isfinite(d)):
        raise ValueError("differences must be finite numbers")
    return d


def _check_alternative(alternative: str) -> None:
    if alternative not in ALTERNATIVES:
        raise ValueError(f"alternative must be one of {ALTERNATIVES}, not {alternative!r}")


def min_attainable_p(n: int, alternative: str = "two-sided") -> float:
    """Smallest p an exact sign or signed-rank test can give with n non-zero differences."""
    _check_alternative(alternative)
    if n <= 0:
        return 1.0
    return min(1.0, (2.0 if alternative == "two-sided" else 1.0) * 0.5**n)


def min_pairs_for(alpha: float, alternative: str = "greater") -> int:
    """Fewest non-zero pairs with which an exact sign/signed-rank test can reach p < alpha."""
    n = 1
    while min_attainable_p(n, alternative) >= alpha:
        n += 1
    return n


def sign_test(diffs: Sequence[float] | np.ndarray, *, alternative: str = "two-sided") -> SignificanceTest:
    """Exact binomial sign test of H0: P(d > 0) = P(d < 0) = 1/2, zeros dropped.

    greater: p = P(Bin(n, 1/2) >= #positive); two-sided: scipy's binomtest (for p = 1/2 this is
    min(1, 2 * the smaller tail)). Example: 5 of 5 positive -> two-sided 2 * 0.5**5 = 0.0625.
    """
    from scipy.stats import binomtest

    _check_alternative(alternative)
    d = _clean(diffs)
    pos, neg = int((d > 0).sum()), int((d < 0).sum())
    n = pos + neg
    if n == 0:
        reason = "no differences" if d.size == 0 else "all differences are zero"
        return SignificanceTest("sign test", alternative, 0, None, None, reason)
    p = binomtest(pos, n, 0.5, alternative=alternative).pvalue
    return SignificanceTest("sign test", alternative, n, float(pos), float(p))


def _signed_rank_exact(d: np.ndarray, alternative: str) -> tuple[float, float]:
    from scipy.stats import rankdata

    ranks = rankdata(np.abs(d))  # mid-ranks for ties
    t_plus = float(ranks[d > 0].sum())
    n = d.size
    # all 2^n sign assignments: T+ = sum of ranks given a '+' sign
    signs = ((np.arange(2**n)[:, None] >> np.arange(n)[None, :]) & 1).astype(float)
    dist = signs @ ranks
    eps = 1e-9 * max(1.0, float(ranks.sum()))
    p_ge = float(np.mean(dist >= t_plus - eps))
    p_le = float(np.mean(dist <= t_plus + eps))
    if alternative == "greater":
        p = p_ge
    elif alternative == "less":
        p = p_le
    else:
        p = min(1.0, 2.0 * min(p_ge, p_le))
    return t_plus, p


def wilcoxon_signed_rank(
    diffs: Sequence[float] | np.ndarray, *, alternative: str = "two-sided", alpha: float = 0.05
) -> SignificanceTest:
    """Wilcoxon signed-rank test on paired differences (zeros dropped; statistic T+ = sum of positive ranks).

    Returns p_value None (with the reason) when every difference is zero, or when there are so few
    non-zero differences that even the most extreme outcome gives p >= alpha (then the test cannot
    decide anything and the sign test is reported instead).
    """
    _check_alternative(alternative)
    d = _clean(diffs)
    nz = d[d != 0]
    n = int(nz.size)
    if d.size == 0:
        return SignificanceTest("Wilcoxon signed-rank", alternative, 0, None, None, "no differences")
    if n == 0:
        return SignificanceTest(
            "Wilcoxon signed-rank", alternative, 0, None, None, "all differences are zero"
        )
    floor = min_attainable_p(n, alternative)
    if floor >= alpha:
        return SignificanceTest(
            "Wilcoxon signed-rank",
            alternative,
            n,
            None,
            None,
            f"n = {n} non-zero differences is too small: the smallest attainable {alternative} "
            f"p is {floor:.4g}, not below alpha = {alpha:g}",
        )
    if n <= EXACT_MAX_N:
        t_plus, p = _signed_rank_exact(nz, alternative)
        return SignificanceTest("Wilcoxon signed-rank (exact)", alternative, n, t_plus, p)
    from scipy.stats import wilcoxon

    res = wilcoxon(nz, alternative=alternative, zero_method="wilcox", method="approx")
    return SignificanceTest(
        "Wilcoxon signed-rank (normal approx.)", alternative, n, float(res.statistic), float(res.pvalue)
    )


def bootstrap_ci(
    diffs: Sequence[float] | np.ndarray | Sequence[Sequence[float]],
    *,
    confidence: float = 0.95,
    n_resamples: int = 10_000,
    seed: int = 0,
    strata: bool = False,
) -> CI | None:
    """Percentile bootstrap CI of the mean paired difference.

    ``strata=False``: ``diffs`` is one sequence; resample it with replacement. ``strata=True``:
    ``diffs`` is a sequence of sequences (one per task); resample within each, statistic = mean over
    strata of the stratum means. Returns None when there is no difference at all.
    """
    if not 0 < confidence < 1:
        raise ValueError("confidence must be in (0, 1)")
    groups = [_clean(g) for g in diffs] if strata else [_clean(diffs)]
    groups = [g for g in groups if g.size]
    if not groups:
        return None
    rng = np.random.default_rng(seed)
    estimate = float(np.mean([g.mean() for g in groups]))
    stats = np.zeros(n_resamples)
    for g in groups:
        idx = rng.integers(0, g.size, size=(n_resamples, g.size))
        stats += g[idx].mean(axis=1)
    stats /= len(groups)
    tail = (1 - confidence) / 2
    low, high = np.quantile(stats, [tail, 1 - tail])
    return CI(estimate, float(low), float(high), confidence, n_resamples)


def pair_by_seed(x: Mapping[Any, float], y: Mapping[Any, float]) -> dict[Any, float]:
    """x - y for the seeds present (and finite) in both, in seed order."""
    out = {}
    for s in sorted(set(x) & set(y), key=lambda v: (str(type(v)), v)):
        a, b = x[s], y[s]
        if a is None or b is None or not (math.isfinite(a) and math.isfinite(b)):
            continue
        out[s] = float(a) - float(b)
    return out


def paired_comparison(
    strata: Mapping[str, Mapping[Any, float]],
    *,
    label: str = "",
    alpha: float = 0.05,
    confidence: float = 0.95,
    n_resamples: int = 10_000,
    seed: int = 0,
    extra: dict[str, Any] | None = None,
) -> PairedComparison:
    """Everything a paired rule needs, from {stratum: {seed: difference}} (one stratum = one task)."""
    strata = {k: dict(v) for k, v in strata.items() if len(v)}
    all_d = np.array([d for s in strata.values() for d in s.values()], dtype=float)
    ci = (
        bootstrap_ci(
            [list(s.values()) for s in strata.values()],
            confidence=confidence,
            n_resamples=n_resamples,
            seed=seed,
            strata=True,
        )
        if all_d.size
        else None
    )
    return PairedComparison(
        label=label,
        strata=strata,
        ci=ci,
        sign_greater=sign_test(all_d, alternative="greater"),
        sign_less=sign_test(all_d, alternative="less"),
        wilcoxon_greater=wilcoxon_signed_rank(all_d, alternative="greater", alpha=alpha),
        wilcoxon_less=wilcoxon_signed_rank(all_d, alternative="less", alpha=alpha),
        alpha=alpha,
        extra=dict(extra or {}),
    )
