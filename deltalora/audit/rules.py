"""Verdict rules: each turns measured numbers into a verdict, and says in words what it did.

Every rule is a small pure function returning ``(verdict, rule_text)``. ``rule_text`` is printed
beside the verdict in ``results/audit.md`` and ``results/audit.csv``; it states the rule with its
thresholds filled in, so a reader can re-derive the verdict from the evidence column. No verdict is
written anywhere else.

The four verdicts, used the same way by every rule:

* ``supported``: the measured numbers meet the claim's criterion (for a statistical comparison: in
  the claimed direction, at the stated confidence).
* ``refuted``: the measured numbers meet the criterion of the claim's *negation*: the evidence
  contradicts the claim (a significant difference in the opposite direction; an update whose rank is
  bounded by 2r when the claim is "high rank"; a cost closer to full fine-tuning's than to LoRA's).
* ``not supported``: the evidence is adequate for the test (enough seeds, the inputs present), yet
  meets neither criterion: the claim is not shown, and neither is its negation (no significant
  difference with enough seeds; a gain smaller than the one claimed; mixed results across layers).
  This is absence of a demonstrated effect, not evidence that the claim is false.
* ``inconclusive``: the test could not decide: its evidence is missing or incomplete, or too small
  for the test to reach its confidence level (e.g. fewer seed pairs than an exact test needs to reach
  p < alpha). The reason is always stated in the evidence.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

from .stats import PairedComparison, min_pairs_for

SUPPORTED = "supported"
NOT_SUPPORTED = "not supported"
REFUTED = "refuted"
INCONCLUSIVE = "inconclusive"
VERDICTS = (SUPPORTED, NOT_SUPPORTED, REFUTED, INCONCLUSIVE)

Verdict = tuple[str, str]

# Thresholds, each used by exactly one rule below (and printed in its rule text).
ALPHA = 0.05
HEADLINE_RANK_THRESHOLD = 1e-3  # relative singular-value threshold (deltalora.analysis)
COMPARABLE_RATIO = 1.10  # "comparable to LoRA": at most 10% more peak memory and step time
COSINE_EQUAL_EPS = 1e-4  # cos >= 1 - eps: the two gradients are equal up to float32 rounding
COSINE_BROKEN_DELTA = 0.01  # cos <= 0.99 (an 8-degree angle): materially different gradients
BF16_OK = 0.01  # at most 1% of the intended W update lost to rounding
BF16_BAD = 0.5  # half or more of it lost


def _g(x: float) -> str:
    return f"{x:.4g}"


# --------------------------------------------------------------------------- paired comparisons
def paired_gain_rule_text(
    *, alpha: float = ALPHA, claimed_gain: float | None = None, what: str = "X - Y", n_min: int | None = None
) -> str:
    n_min = n_min or min_pairs_for(alpha, "greater")
    conf = f"{1 - alpha:.0%}"
    gain = f" and its upper end reaches the claimed +{_g(claimed_gain)}" if claimed_gain is not None else ""
    return (
        f"on the seed-paired differences {what}: supported if the {conf} bootstrap CI of the mean lies "
        f"above 0{gain}, and the one-sided exact test (Wilcoxon signed-rank on one task, sign test "
        f"pooled over tasks) gives p < {alpha:g}; refuted if the CI lies below 0 and the opposite "
        f"one-sided test gives p < {alpha:g}; not supported otherwise; inconclusive with fewer than "
        f"{n_min} pairs (no exact test can then reach p < {alpha:g})"
    )


def rule_paired_gain(
    cmp: PairedComparison | None,
    *,
    alpha: float = ALPHA,
    claimed_gain: float | None = None,
    what: str = "X - Y",
) -> Verdict:
    """X beats Y: a significant positive mean paired difference (optionally reaching a claimed size)."""
    n_min = min_pairs_for(alpha, "greater")
    text = paired_gain_rule_text(alpha=alpha, claimed_gain=claimed_gain, what=what, n_min=n_min)
    if cmp is None or cmp.n == 0 or cmp.ci is None:
        return INCONCLUSIVE, text
    if cmp.n < n_min:
        return INCONCLUSIVE, text
    up, down = cmp.decision_test("greater"), cmp.decision_test("less")
    sig_up = up.p_value is not None and up.p_value < alpha
    sig_down = down.p_value is not None and down.p_value < alpha
    if cmp.ci.low > 0 and sig_up and (claimed_gain is None or cmp.ci.high >= claimed_gain):
        return SUPPORTED, text
    if cmp.ci.high < 0 and sig_down:
        return REFUTED, text
    return NOT_SUPPORTED, text


def rule_beats_best_control(
    cmp: PairedComparison | None, *, controls_complete: bool, alpha: float = ALPHA
) -> Verdict:
    """Delta-LoRA beats the best LoRA control (reviewer 2's objection answered)."""
    verdict, text = rule_paired_gain(
        cmp, alpha=alpha, what="Delta-LoRA - best control (best median on dev, compared on validation)"
    )
    text += (
        "; a supported verdict needs all three controls (scale (1+lambda) alpha/r, a learning-rate "
        "sweep of >= 2 values, no dropout) in every task compared, else it is inconclusive (a missing "
        "control could be the best); supported here means the objection is answered, not supported "
        "means the gain is not shown to survive the controls, refuted means the best control is "
        "significantly better"
    )
    if verdict == SUPPORTED and not controls_complete:
        return INCONCLUSIVE, text
    return verdict, text


def rule_part_of_all(
    cmp: PairedComparison | None, *, k: int, alpha: float = ALPHA, what: str = "X - Y"
) -> Verdict:
    """One part's verdict as it enters a claim about all of k parts.

    Supporting "gains on all k parts" needs every part supported at alpha (an intersection-union test:
    no correction needed). Refuting it needs only one part significantly negative, and k chances at
    alpha would refute a true claim too often, so a part counts as refuted only if it is also refuted at
    alpha / k (Bonferroni); a part refuted at alpha but not at alpha / k counts as not supported.
    """
    verdict, text = rule_paired_gain(cmp, alpha=alpha, what=what)
    text += (
        f"; as one of {k} parts of an all-parts claim it counts as refuted only if also refuted at "
        f"alpha/{k} = {alpha / k:.3g} (Bonferroni), else as not supported"
    )
    if verdict == REFUTED and k > 1 and rule_paired_gain(cmp, alpha=alpha / k, what=what)[0] != REFUTED:
        return NOT_SUPPORTED, text
    return verdict, text


def aggregate_all(
    parts: Sequence[tuple[str, str]], *, required: Iterable[str] | None = None, what: str = "every part"
) -> Verdict:
    """A claim about *all* of several parts ((name, verdict) pairs), e.g. "gains on all GLUE tasks".

    refuted if any part is refuted; supported if every required part is present and supported;
    not supported if any part is not supported; inconclusive otherwise (missing or inconclusive parts).
    Parts that are statistical comparisons enter through ``rule_part_of_all`` (Bonferroni for refutation).
    """
    text = (
        f"claim about {what}: refuted if any part is refuted (a comparison at alpha/k, Bonferroni over "
        "the k parts); supported if every part is measured and supported; not supported if any part is "
        "not supported; inconclusive otherwise"
    )
    verdicts = {name: v for name, v in parts}
    missing = [r for r in (required or []) if r not in verdicts]
    if any(v == REFUTED for v in verdicts.values()):
        return REFUTED, text
    if verdicts and not missing and all(v == SUPPORTED for v in verdicts.values()):
        return SUPPORTED, text
    if any(v == NOT_SUPPORTED for v in verdicts.values()):
        return NOT_SUPPORTED, text
    return INCONCLUSIVE, text


# --------------------------------------------------------------------------- claim 1: rank
def rule_high_rank(
    layers: Sequence[tuple[int, int]], *, threshold: float = HEADLINE_RANK_THRESHOLD
) -> Verdict:
    """layers: (numerical rank of W_T - W_0 at the relative threshold, 2r) for every adapted layer and run."""
    text = (
        f"numerical rank at relative threshold {threshold:g} (#sigma_i > {threshold:g} sigma_1) of W_T - "
        "W_0, every adapted layer of every run whose W update started: supported if it exceeds 2r in "
        "every layer (beyond what the rank-2r telescoped form allows); refuted if it is at most 2r in "
        "every layer (a low-rank update, as the telescoping identity predicts); not supported if mixed; "
        "inconclusive without measured layers"
    )
    if not layers:
        return INCONCLUSIVE, text
    above = [rank > two_r for rank, two_r in layers]
    if all(above):
        return SUPPORTED, text
    if not any(above):
        return REFUTED, text
    return NOT_SUPPORTED, text


def telescoping_tolerance(two_r: int, threshold: float = HEADLINE_RANK_THRESHOLD) -> float:
    """Largest relative error ||E||_F / ||W_T - W_0||_F that cannot move the headline rank.

    ||E||_2 <= ||E||_F = e ||D||_F <= e sqrt(rank D) sigma_1(D) <= e sqrt(2r) sigma_1 (D of rank <= 2r).
    With e <= threshold / sqrt(2r), ||E||_2 <= threshold * sigma_1: by Weyl's inequality the error alone
    cannot lift a singular value above the headline threshold.
    """
    return threshold / math.sqrt(max(1, two_r))


def rule_telescoping(
    errors: Sequence[tuple[float, int]], *, threshold: float = HEADLINE_RANK_THRESHOLD
) -> Verdict:
    """errors: (telescoping_rel_err, 2r) per adapted layer of inplace-engine runs."""
    text = (
        "relative error ||(W_T - W_0) - lambda s (B_T A_T - B_(K+1) A_(K+1))||_F / ||W_T - W_0||_F per "
        f"layer (inplace engine): supported if every layer is within {threshold:g}/sqrt(2r) (an error "
        "that cannot change the rank at the headline threshold, by Weyl's inequality); refuted if the "
        "median layer exceeds it; not supported if some layers do; inconclusive without an inplace run"
    )
    if not errors:
        return INCONCLUSIVE, text
    ok = [e <= telescoping_tolerance(tr, threshold) for e, tr in errors]
    if all(ok):
        return SUPPORTED, text
    if sum(ok) < len(ok) / 2:
        return REFUTED, text
    return NOT_SUPPORTED, text


# --------------------------------------------------------------------------- claim 2: cost
def rule_comparable_cost(
    ratios: Sequence[tuple[float, float | None]],
    *,
    comparable: float = COMPARABLE_RATIO,
    disturbed: Sequence[str] = (),
) -> Verdict:
    """ratios: (cost / LoRA's, full fine-tuning's cost / LoRA's or None) per measured quantity and setting
    (peak memory and step time, for each model and dtype). disturbed: the compared measurements whose
    rounds spread too wide to be read (the memory table's `disturbed`)."""
    text = (
        "ratio to LoRA of peak memory and of median step time, for every measured model and dtype: "
        f"supported if every ratio is <= {comparable:g}; refuted if any ratio is at least halfway from "
        "LoRA to full fine-tuning (>= (1 + full-FT ratio) / 2: closer to full FT's cost than to "
        "LoRA's); not supported otherwise; inconclusive without measurements, or when a compared "
        "configuration's slowest round took more than 1.5x its fastest (a disturbed measurement)"
    )
    vals = [(r, f) for r, f in ratios if r is not None and math.isfinite(r)]
    if not vals or disturbed:
        return INCONCLUSIVE, text
    if any(f is not None and math.isfinite(f) and f > 1 and r >= (1 + f) / 2 for r, f in vals):
        return REFUTED, text
    if all(r <= comparable for r, _ in vals):
        return SUPPORTED, text
    return NOT_SUPPORTED, text


# --------------------------------------------------------------------------- claim 3: dropout
def rule_dropout_cosine(
    cos_without: Sequence[float],
    cos_with: Sequence[float],
    *,
    eps: float = COSINE_EQUAL_EPS,
    delta: float = COSINE_BROKEN_DELTA,
) -> Verdict:
    """Cosines between dL/dW and dL/d(BA), measured without dropout and with dropout p > 0."""
    text = (
        "cosine(dL/dW, dL/d(BA)) over steps and layers: supported if without dropout every cosine is >= "
        f"1 - {eps:g} (equal up to float32 rounding) and with dropout the median is <= {1 - delta:g} "
        f"(materially different); refuted if with dropout the median is > {1 - delta:g} (dropout does "
        f"not break the equivalence) or without dropout the median is < {1 - delta:g} (removing it does "
        "not restore it); not supported otherwise; inconclusive unless both are measured"
    )
    a = [float(c) for c in cos_without if c is not None and math.isfinite(c)]
    b = [float(c) for c in cos_with if c is not None and math.isfinite(c)]
    if not a or not b:
        return INCONCLUSIVE, text
    med_a, med_b = _median(a), _median(b)
    if med_b > 1 - delta or med_a < 1 - delta:
        return REFUTED, text
    if min(a) >= 1 - eps and med_b <= 1 - delta:
        return SUPPORTED, text
    return NOT_SUPPORTED, text


def _median(x: Sequence[float]) -> float:
    s = sorted(x)
    n = len(s)
    return s[n // 2] if n % 2 else 0.5 * (s[n // 2 - 1] + s[n // 2])


# --------------------------------------------------------------------------- claim 6: engines
def rule_engine_equivalence(abs_diffs: Sequence[tuple[float, float]]) -> Verdict:
    """abs_diffs: (|metric(folded) - metric(inplace)|, tolerance) per (task, seed) pair of runs."""
    text = (
        "|folded - inplace| of the main metric, per (task, seed) pair of runs with identical settings: "
        "supported if every pair is within the tolerance (one validation example: 100 / n_val points); "
        "refuted if the median pair is outside it; not supported if some pairs are; inconclusive without "
        "pairs"
    )
    if not abs_diffs:
        return INCONCLUSIVE, text
    ok = [d <= tol for d, tol in abs_diffs]
    if all(ok):
        return SUPPORTED, text
    if sum(ok) < len(ok) / 2:
        return REFUTED, text
    return NOT_SUPPORTED, text


def rule_bf16_update_kept(
    lost_fraction: float | None, *, ok: float = BF16_OK, bad: float = BF16_BAD
) -> Verdict:
    """Fraction ||intended - actual||_F / ||intended||_F of Algorithm 1's W update lost when W is bf16."""
    text = (
        "fraction of the intended W update lost to rounding with W stored in bf16 (inplace engine = "
        f"Algorithm 1 as written): supported if <= {ok:g}; refuted if >= {bad:g}; not supported in "
        "between; inconclusive when not measured"
    )
    if lost_fraction is None or not math.isfinite(lost_fraction):
        return INCONCLUSIVE, text
    if lost_fraction <= ok:
        return SUPPORTED, text
    if lost_fraction >= bad:
        return REFUTED, text
    return NOT_SUPPORTED, text


def rule_gain_survives(
    fp32: Verdict | None, quant: Verdict | None, did: PairedComparison | None, *, alpha: float = ALPHA
) -> Verdict:
    """Delta-LoRA's gain over LoRA (or its absence) is the same on a quantized base as on the fp32 base."""
    text = (
        f"each base's outcome is the paired-gain verdict of Delta-LoRA - LoRA (pooled over tasks; "
        f"{paired_gain_rule_text(alpha=alpha, what='Delta-LoRA - LoRA')}); the gap is the seed-paired "
        f"difference of the two gains, (Delta-LoRA - LoRA on the quantized base) - (the same on fp32), "
        f"pooled over tasks. Supported (the outcome survives) if both bases give the same outcome and the "
        f"gap is not significant either way (sign test, p >= {alpha:g} both sides); refuted if the outcomes "
        f"differ and the gap is significant in the direction of the change; not supported otherwise; "
        f"inconclusive when either base's verdict is inconclusive or the gap cannot be tested"
    )
    if fp32 is None or quant is None or did is None or did.n == 0:
        return INCONCLUSIVE, text
    if INCONCLUSIVE in (fp32[0], quant[0]) or did.n < min_pairs_for(alpha, "greater"):
        return INCONCLUSIVE, text
    up = did.decision_test("greater").p_value
    down = did.decision_test("less").p_value
    sig_up, sig_down = up is not None and up < alpha, down is not None and down < alpha
    if fp32[0] == quant[0] and not (sig_up or sig_down):
        return SUPPORTED, text
    if fp32[0] != quant[0]:
        lost = fp32[0] == SUPPORTED or quant[0] == REFUTED
        if (lost and sig_down) or (not lost and sig_up):
            return REFUTED, text
    return NOT_SUPPORTED, text
