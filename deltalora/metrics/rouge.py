"""ROUGE for XSum (BART-large), as the AdaLoRA/Hugging Face summarization scripts report it.

Those scripts score with Google's ``rouge-score`` (through ``datasets``/``evaluate``) with
``use_stemmer=True``. We call rouge-score directly with the same tokenizer and stemmer. The one
deliberate difference is aggregation: the Hugging Face metric reports the *mid* value of a
1000-sample bootstrap of the mean (``BootstrapAggregator``), which is random (unseeded) around
the mean; we report the plain mean of per-example F1, which is what that bootstrap estimates,
and is reproducible. ``docs/metrics.md`` gives the measured size of the gap.
"""

from __future__ import annotations

from collections.abc import Sequence

from deltalora.metrics import generation_common as _common

__all__ = ["ROUGE_KEYS", "rouge_metrics"]

ROUGE_KEYS = ("rouge1", "rouge2", "rougeL", "rougeLsum")  # rouge-score's names = paper_tables/


def rouge_metrics(
    hypotheses: Sequence[str],
    references: Sequence[str] | Sequence[Sequence[str]],
    *,
    use_stemmer: bool = True,
) -> dict[str, float]:
    """Mean per-example ROUGE F1 ×100: ``rouge1``, ``rouge2``, ``rougeL``, ``rougeLsum``.

    Args:
        hypotheses: one generated summary per document.
        references: one reference summary per document (XSum), or a list of references per
            document; with several, each ROUGE type takes the reference with the highest F1
            (rouge-score's ``score_multi``).
        use_stemmer: Porter stemming (rouge-score's tokenizer lower-cases and keeps only
            ``[a-z0-9]`` tokens). True in the XSum scripts.

    ``rougeL`` is sentence-level LCS over the whole text; ``rougeLsum`` is summary-level LCS
    over sentences separated by newlines. The Hugging Face script inserts those newlines with
    nltk's punkt splitter, which needs a data download; we do not, so pass newline-separated
    text if you need its ``rougeLsum``. XSum summaries are single sentences, where the two agree.
    """
    refs: list[list[str]] = [[r] if isinstance(r, str) else list(r) for r in references]
    _common.check_corpus(hypotheses, refs)
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(list(ROUGE_KEYS), use_stemmer=use_stemmer)
    totals = dict.fromkeys(ROUGE_KEYS, 0.0)
    for hyp, rs in zip(hypotheses, refs, strict=True):
        scores = scorer.score(rs[0], hyp) if len(rs) == 1 else scorer.score_multi(rs, hyp)
        for key in ROUGE_KEYS:
            totals[key] += scores[key].fmeasure
    return {key: 100.0 * total / len(refs) for key, total in totals.items()}
