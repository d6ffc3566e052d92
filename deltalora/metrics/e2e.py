"""E2E NLG Challenge metrics, re-created from the official ``measure_scores.py -p``.

The LoRA README (and so the Delta-LoRA paper) scores E2E with
``python eval/e2e/measure_scores.py e2e_ref.txt e2e_pred.txt -p`` from ``tuetschek/e2e-metrics``:

- BLEU and NIST from its Python port of mteval-v13a (``-p``): mteval 13a tokenization,
  case-insensitive, multi-reference. BLEU here is sacrebleu with the same tokenizer and
  lower-casing; NIST is :func:`corpus_nist` below, written from the mteval definition because
  nltk's ``corpus_nist`` treats multiple references differently (see ``docs/metrics.md``).
- METEOR, ROUGE_L and CIDEr from the MS-COCO caption evaluator (pycocoevalcap) on text run
  through the Stanford PTB tokenizer (lower case, punctuation dropped), exactly like the script.

Why not simply call the script: it is not on PyPI, not pinned by LoRA, and needs Perl-era
dependencies; the suite must run from pip packages only.
"""

from __future__ import annotations

import functools
import math
import warnings
from collections import Counter
from collections.abc import Callable, Sequence

from deltalora.metrics import generation_common as _common

__all__ = ["E2E_KEYS", "corpus_bleu_e2e", "corpus_nist", "e2e_metrics", "mteval_tokenize"]

E2E_KEYS = ("bleu", "nist", "meteor", "rouge_l", "cider")  # paper_tables/ column names

# NIST brevity-penalty constant of mteval-v13a: the penalty is 0.5 when the output is 2/3 of
# the average reference length.
_NIST_BETA = -math.log(0.5) / math.log(1.5) ** 2


def mteval_tokenize(text: str) -> list[str]:
    """mteval-v13a tokenization + lower case, as the E2E script's BLEU/NIST use (case-insensitive).

    sacrebleu's ``13a`` tokenizer is a line-for-line port of the same Perl regexes. An empty
    text gives ``['']`` (one empty token), as pymteval's ``sent.split(' ')`` does: an empty
    output counts as one unmatched word there, and we keep that.
    """
    return _tok13a()(text).lower().split(" ")


@functools.lru_cache(maxsize=1)
def _tok13a() -> Callable[[str], str]:
    from sacrebleu.tokenizers.tokenizer_13a import Tokenizer13a

    return Tokenizer13a()


def corpus_bleu_e2e(hypotheses: Sequence[str], references: Sequence[Sequence[str]]) -> float:
    """Corpus BLEU ×100 exactly as the E2E script's ``-p`` (pymteval) computes it.

    sacrebleu does the tokenization (13a + lower case) and the n-gram matching: clipped counts
    use the maximum count over the references; the brevity penalty uses, per segment, the
    reference closest in length (ties: the shorter one). The final combination follows pymteval,
    which differs from sacrebleu only on degenerate outputs (see :func:`_pymteval_bleu`).
    """
    _common.check_corpus(hypotheses, references)
    import sacrebleu

    bleu = sacrebleu.metrics.BLEU(tokenize="13a", lowercase=True, smooth_method="none", force=True)
    stats = bleu.corpus_score(list(hypotheses), _common.ref_streams(references))  # type: ignore[arg-type]
    toks = [mteval_tokenize(h) for h in hypotheses]
    official_lens = [len(t) for t in toks]  # an empty output is [''] there: length 1
    sacre_lens = [sum(1 for w in t if w) for t in toks]
    return 100.0 * _pymteval_bleu(
        stats.counts, stats.totals, stats.sys_len, stats.ref_len, official_lens, sacre_lens
    )


def _pymteval_bleu(
    counts: Sequence[int],
    totals: Sequence[int],
    sys_len: int,
    ref_len: int,
    official_lens: Sequence[int],
    sacre_lens: Sequence[int],
) -> float:
    """BLEU (0-1) from sacrebleu's sufficient statistics with pymteval's arithmetic.

    Three pymteval details differ from sacrebleu and are reproduced on purpose, because the
    paper's numbers come from that script:

    - the n-gram denominator adds ``len(hyp) - n + 1`` per segment even when negative (a
      1-token output subtracts 2 from the 4-gram total); sacrebleu adds ``max(0, .)``;
    - an empty output is one (unmatched) empty token, so it adds 1 to the output length;
    - zero matches are floored at 1e-15 (BLEU ~1e-4 instead of exactly 0).

    All three only matter when some outputs have fewer than three tokens.
    """
    sys_len += sum(o - s for o, s in zip(official_lens, sacre_lens, strict=True))
    prec_log_sum = 0.0
    for n, (hits, total) in enumerate(zip(counts, totals, strict=True)):
        total += sum((o - n) - max(0, s - n) for o, s in zip(official_lens, sacre_lens, strict=True))
        prec_log_sum += math.log(max(hits, 1e-15) / max(total, 1e-9))
    bp = 1.0
    if sys_len <= ref_len:
        bp = math.exp(1.0 - ref_len / (sys_len if sys_len else 1e-5))
    return bp * math.exp(prec_log_sum / len(counts))


def _ngrams(tokens: Sequence[str], n: int) -> Counter[tuple[str, ...]]:
    return Counter(tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1))


def corpus_nist(
    hypotheses: Sequence[Sequence[str]], references: Sequence[Sequence[Sequence[str]]], max_n: int = 5
) -> float:
    """NIST (Doddington 2002) over pre-tokenized text, with mteval-v13a's multi-reference rules.

    - information weight of an n-gram w1..wn: log2(count(w1..wn-1) / count(w1..wn)), counts over
      *all* reference sentences of the corpus (the empty prefix counts every reference word);
    - a hypothesis n-gram matches up to the maximum count it has in any single reference;
    - score = sum over n of (sum of matched information / number of hypothesis n-grams);
    - brevity penalty from the total hypothesis length against the sum, over segments, of the
      *average* reference length: exp(-beta * log(ratio)^2) for ratio < 1, beta = -ln .5 / ln^2 1.5.

    Like pymteval, the per-segment n-gram count is ``len(hyp) - n + 1`` even when negative
    (outputs shorter than five tokens). nltk's ``corpus_nist`` agrees on single-reference data
    with outputs of at least five tokens; with several references it instead keeps the single
    best reference per segment (for matches and for length), 0.2-0.3 NIST lower on E2E-like data.
    """
    ref_counts: list[Counter[tuple[str, ...]]] = [Counter() for _ in range(max_n + 1)]
    for refs in references:
        for ref in refs:
            ref_counts[0][()] += len(ref)
            for n in range(1, max_n + 1):
                ref_counts[n].update(_ngrams(ref, n))

    def info(ngram: tuple[str, ...]) -> float:
        n = len(ngram)
        if ngram not in ref_counts[n]:
            return 0.0
        return math.log2(ref_counts[n - 1][ngram[:-1]] / ref_counts[n][ngram])

    matched_info = [0.0] * (max_n + 1)
    hyp_ngram_total = [0] * (max_n + 1)
    hyp_len = 0
    avg_ref_len = 0.0
    for hyp, refs in zip(hypotheses, references, strict=True):
        hyp_len += len(hyp)
        avg_ref_len += sum(len(r) for r in refs) / len(refs)
        for n in range(1, max_n + 1):
            hyp_ng = _ngrams(hyp, n)
            hyp_ngram_total[n] += len(hyp) - n + 1  # pymteval: may go negative for short outputs
            max_ref: Counter[tuple[str, ...]] = Counter()
            for ref in refs:
                max_ref |= _ngrams(ref, n)  # | keeps the max count per n-gram
            for ngram, count in hyp_ng.items():
                hits = min(count, max_ref[ngram])
                if hits:
                    matched_info[n] += hits * info(ngram)
    # A zero denominator (no output has n tokens) is replaced by 1, as in the maintained fork of
    # the script; the upstream script raises ZeroDivisionError there.
    score = sum(matched_info[n] / (hyp_ngram_total[n] or 1) for n in range(1, max_n + 1))
    return score * _nist_length_penalty(hyp_len, avg_ref_len)


def _nist_length_penalty(hyp_len: float, avg_ref_len: float) -> float:
    if avg_ref_len <= 0:
        return 0.0
    ratio = hyp_len / avg_ref_len
    if ratio >= 1:
        return 1.0
    if ratio <= 0:
        return 0.0
    return math.exp(-_NIST_BETA * math.log(ratio) ** 2)


def e2e_metrics(
    hypotheses: Sequence[str],
    references: Sequence[Sequence[str]],
    *,
    use_java: bool | None = None,
) -> dict[str, float | None]:
    """Score E2E outputs like ``measure_scores.py -p`` (multi-reference).

    Args:
        hypotheses: one system output per input (MR), raw text (the E2E recipe does not
            pre-tokenize; the metrics tokenize internally).
        references: for each hypothesis, all its human references.
        use_java: ``None`` auto-detects Java; ``True`` requires it (raises ``RuntimeError``
            without it: use in pipelines that must equal the official script); ``False`` never
            starts a JVM.

    Returns:
        ``bleu``, ``nist``, ``meteor``, ``rouge_l``, ``cider`` (the script's BLEU, NIST, METEOR,
        ROUGE_L, CIDEr under the ``paper_tables/`` key names). bleu, meteor and rouge_l are ×100
        (the LoRA table's 70.4 / 46.8 / 71.8; the script itself prints 0.704 / 0.468 / 0.718);
        nist (8.85) and cider (2.53) are raw. Without Java, meteor is ``None`` and rouge_l/cider
        use a pure-Python stand-in for the PTB tokenizer; both cases emit
        :class:`~deltalora.metrics.generation_common.MetricUnavailableWarning`.
    """
    _common.check_corpus(hypotheses, references)
    java = _common.resolve_use_java(use_java)

    bleu = corpus_bleu_e2e(hypotheses, references)
    nist = corpus_nist(
        [mteval_tokenize(h) for h in hypotheses],
        [[mteval_tokenize(r) for r in refs] for refs in references],
    )

    # COCO metrics on PTB-tokenized, lower-cased, punctuation-stripped text (the script's path).
    flat_refs = [r for refs in references for r in refs]
    if java:
        tok_all = _common.ptb_tokenize(list(hypotheses) + flat_refs)
    else:
        warnings.warn(
            "No Java: rouge_l and cider use a pure-Python approximation of the Stanford PTB "
            "tokenizer (small differences, see docs/metrics.md) and METEOR is missing (None)",
            _common.MetricUnavailableWarning,
            stacklevel=2,
        )
        tok_all = _common.simple_ptb_tokenize(list(hypotheses) + flat_refs)
    tok_hyps = tok_all[: len(hypotheses)]
    tok_refs: list[list[str]] = []
    pos = len(hypotheses)
    for refs in references:
        tok_refs.append(tok_all[pos : pos + len(refs)])
        pos += len(refs)

    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.rouge.rouge import Rouge

    gts = {i: refs for i, refs in enumerate(tok_refs)}
    res = {i: [hyp] for i, hyp in enumerate(tok_hyps)}
    rouge_l, _ = Rouge().compute_score(gts, res)
    cider, _ = Cider().compute_score(gts, res)

    if java:
        meteor = _common.meteor_score(tok_hyps, tok_refs, use_java=True)
    else:
        meteor = None  # already warned above

    return {
        "bleu": bleu,
        "nist": float(nist),
        "meteor": meteor,
        "rouge_l": 100.0 * float(rouge_l),
        "cider": float(cider),
    }
