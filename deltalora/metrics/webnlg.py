"""WebNLG (2017) metrics, re-created from the LoRA recipe around ``GenerationEval/eval.py``.

The LoRA README (which the Delta-LoRA paper follows) runs, for WebNLG and DART:

1. ``gpt2_decode.py ... --ref_num 6 --tokenize --lower``: lower-case outputs and references and
   split off every non-word character (``' '.join(re.split('(\\W)', s))``); at most 6
   references per input (missing ones are filled with copies of the first, which changes no
   metric below);
2. ``eval.py -R ... -H ... -nr 6 -m bleu,meteor,ter`` from ``WebNLG/GenerationEval``:

   - BLEU: Moses ``multi-bleu-detok.perl`` (mteval-13a tokenization, case-sensitive, no
     smoothing, closest reference length) on the files of step 1 -> sacrebleu with the same
     settings here;
   - METEOR: ``meteor-1.5.jar -l en -norm -r 6`` on ``nltk.word_tokenize``-d text, corpus
     score -> the same jar via pycocoevalcap's wrapper, nltk's Treebank word tokenizer without
     the punkt sentence splitter (punkt is a data download);
   - TER: ``pyter`` per sentence, best (lowest) over the references, mean over sentences ->
     sacrebleu's tercom port per sentence, same min/mean.

Seen/unseen (LoRA Table 14 "S"/"U"/"A") are separate runs on the subsets
(``gpt2_decode.py --filter seen|unseen``): corpus metrics on each subset, not averages.
"""

from __future__ import annotations

import functools
import re
import warnings
from collections.abc import Callable, Collection, Sequence

from deltalora.metrics import generation_common as _common

__all__ = ["lora_preprocess", "webnlg_metrics", "webnlg_bleu", "webnlg_ter", "word_tokenize"]

MAX_REFERENCES = 6
_NON_WORD = re.compile(r"(\W)")


def lora_preprocess(text: str) -> str:
    """``gpt2_decode.py --tokenize --lower``: lower case, then every non-word char is a token.

    Idempotent, so already-processed text can go through it again unchanged.
    """
    return " ".join(" ".join(_NON_WORD.split(text.lower())).split())


@functools.lru_cache(maxsize=1)
def _treebank():  # noqa: ANN202 - nltk has no type hints
    from nltk.tokenize import NLTKWordTokenizer

    return NLTKWordTokenizer()


def word_tokenize(text: str) -> str:
    """GenerationEval's ``' '.join(nltk.word_tokenize(text))`` without the punkt download.

    ``nltk.word_tokenize`` = punkt sentence split + this tokenizer per sentence. On text already
    split by :func:`lora_preprocess` the split should change nothing: the only Treebank rules
    that see sentence boundaries are anchored at the start/end of the string and act the same on
    pre-split text. Not verified against punkt itself (a data download we avoid).
    """
    return " ".join(_treebank().tokenize(text))


def webnlg_bleu(hypotheses: Sequence[str], references: Sequence[Sequence[str]]) -> float:
    """Corpus BLEU ×100 like ``multi-bleu-detok.perl`` (13a tokens, case-sensitive, no smoothing)."""
    _common.check_corpus(hypotheses, references)
    import sacrebleu

    bleu = sacrebleu.metrics.BLEU(tokenize="13a", lowercase=False, smooth_method="none", force=True)
    streams = _common.ref_streams(references)
    return float(bleu.corpus_score(list(hypotheses), streams).score)  # type: ignore[arg-type]


def webnlg_ter(
    hypotheses: Sequence[str], references: Sequence[Sequence[str]], *, backend: str = "pyter"
) -> float:
    """Mean over sentences of the lowest sentence TER over the references, ×100.

    GenerationEval's definition (not corpus TER, which divides total edits by total reference
    length). An empty reference scores 100 (the script assigns 1.0). Inputs are whitespace
    tokens, compared case-sensitively like ``pyter.ter(hyp.split(), ref.split())``.

    ``backend="pyter"`` (default) uses the ``pyter3`` package, the implementation GenerationEval
    calls; ``backend="sacrebleu"`` uses sacrebleu's port of tercom;
    its greedy shift search finds fewer shifts than tercom, so its TER is higher by about 0.7
    points (×100) on our WebNLG-like test data (``docs/metrics.md``).
    """
    _common.check_corpus(hypotheses, references)
    sentence_ter = _ter_backend(backend)
    per_sentence = []
    for hyp, refs in zip(hypotheses, references, strict=True):
        scores = [100.0 if not ref.strip() else sentence_ter(hyp, ref) for ref in refs]
        per_sentence.append(min(scores))
    return sum(per_sentence) / len(per_sentence)


def _ter_backend(backend: str) -> Callable[[str, str], float]:
    if backend == "sacrebleu":
        from sacrebleu.metrics import TER

        ter = TER(case_sensitive=True)
        return lambda hyp, ref: float(ter.sentence_score(hyp, [ref]).score)
    if backend == "pyter":
        try:
            import pyter  # type: ignore[import-not-found]  # provided by the pyter3 package
        except ImportError as err:
            raise ImportError(
                "ter_backend='pyter' needs the optional package pyter3 (pip install pyter3==0.3), "
                "the TER implementation WebNLG GenerationEval uses"
            ) from err
        return lambda hyp, ref: 100.0 * float(pyter.ter(hyp.split(), ref.split()))
    raise ValueError(f"unknown TER backend {backend!r}; expected 'sacrebleu' or 'pyter'")


def webnlg_metrics(
    hypotheses: Sequence[str],
    references: Sequence[Sequence[str]],
    categories: Sequence[str],
    seen_categories: Collection[str],
    *,
    preprocess: bool = True,
    use_java: bool | None = None,
    ter_backend: str = "pyter",
) -> dict[str, float | None]:
    """BLEU, METEOR and TER on the seen, unseen and all subsets of WebNLG.

    Args:
        hypotheses: one output per input (raw model text).
        references: for each input its references (up to 6; extra ones are dropped with a
            warning, as ``gpt2_decode.py --ref_num 6`` drops them).
        categories: DBpedia category of each input.
        seen_categories: the categories present in training; an input is "seen" if its category
            is in it.
        preprocess: apply :func:`lora_preprocess` (the recipe's ``--tokenize --lower``) to
            outputs and references first. It is idempotent, so leave it on for text that was
            already processed.
        use_java: as in :func:`deltalora.metrics.e2e.e2e_metrics`; only METEOR needs Java.
        ter_backend: ``"pyter"`` (default; the ``pyter3`` package GenerationEval runs, so TER equals
            the official script's) or ``"sacrebleu"`` (tercom port; its shift search finds more shifts
            and gives 0.6-1.1 points lower TER). See :func:`webnlg_ter`.

    Returns:
        ``bleu_{seen,unseen,all}``, ``meteor_{...}``, ``ter_{...}`` (``paper_tables/`` names),
        all ×100 (LoRA Table 14 prints BLEU ×100 but METEOR/TER as fractions: use
        :func:`deltalora.metrics.generation_common.to_paper_scale`). A subset with no inputs gives ``None``
        for its three metrics; METEOR is ``None`` (with a warning) when Java is unavailable.
    """
    _common.check_corpus(hypotheses, references)
    _ter_backend(ter_backend)  # fail fast on a bad backend, before the slow parts
    if isinstance(categories, str) or len(categories) != len(hypotheses):
        raise ValueError(
            f"length mismatch: {len(hypotheses)} hypotheses but "
            f"{len(categories) if not isinstance(categories, str) else 'a str of'} categories"
        )
    if isinstance(seen_categories, str):
        raise ValueError("seen_categories must be a collection of category names, not one str")
    seen_set = frozenset(seen_categories)

    refs = [list(r) for r in references]
    if any(len(r) > MAX_REFERENCES for r in refs):
        warnings.warn(
            f"some inputs have more than {MAX_REFERENCES} references; keeping the first "
            f"{MAX_REFERENCES} as the LoRA recipe (--ref_num 6) does",
            _common.MetricUnavailableWarning,
            stacklevel=2,
        )
        refs = [r[:MAX_REFERENCES] for r in refs]

    hyps = list(hypotheses)
    if preprocess:
        hyps = [lora_preprocess(h) for h in hyps]
        refs = [[lora_preprocess(r) for r in rs] for rs in refs]
    tok_hyps = [word_tokenize(h) for h in hyps]
    tok_refs = [[word_tokenize(r) for r in rs] for rs in refs]

    java = _common.resolve_use_java(use_java)
    if not java:
        warnings.warn(
            "METEOR not computed: no working Java runtime (METEOR 1.5 is a Java program); "
            "reporting meteor_seen/unseen/all as missing (None)",
            _common.MetricUnavailableWarning,
            stacklevel=2,
        )

    subsets = {
        "seen": [i for i, c in enumerate(categories) if c in seen_set],
        "unseen": [i for i, c in enumerate(categories) if c not in seen_set],
        "all": list(range(len(hyps))),
    }
    out: dict[str, float | None] = {}
    for name, idx in subsets.items():
        if not idx:
            out[f"bleu_{name}"] = out[f"meteor_{name}"] = out[f"ter_{name}"] = None
            continue
        out[f"bleu_{name}"] = webnlg_bleu([hyps[i] for i in idx], [refs[i] for i in idx])
        out[f"meteor_{name}"] = (
            _common.meteor_score([tok_hyps[i] for i in idx], [tok_refs[i] for i in idx], use_java=True)
            if java
            else None
        )
        out[f"ter_{name}"] = webnlg_ter(
            [tok_hyps[i] for i in idx], [tok_refs[i] for i in idx], backend=ter_backend
        )
    return {f"{m}_{s}": out[f"{m}_{s}"] for m in ("bleu", "meteor", "ter") for s in subsets}
