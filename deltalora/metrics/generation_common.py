"""Shared building blocks of the NLG metric suite (E2E, WebNLG, XSum).

The Delta-LoRA paper copies the LoRA paper's evaluation: the official E2E script
(``tuetschek/e2e-metrics``, ``measure_scores.py -p``) and the WebNLG ``GenerationEval/eval.py``.
Neither is pip-installable or pinned, so this suite re-creates them from maintained libraries
(sacrebleu, pycocoevalcap, rouge-score, nltk) and documents every remaining difference in
``docs/metrics.md``.

Public entry points (in the sibling modules, which import this one; ``deltalora.metrics`` exposes them):

- :func:`deltalora.metrics.e2e.e2e_metrics`: ``bleu nist meteor rouge_l cider``.
- :func:`deltalora.metrics.webnlg.webnlg_metrics`: ``{bleu,meteor,ter}_{seen,unseen,all}``.
- :func:`deltalora.metrics.rouge.rouge_metrics`: ``rouge1 rouge2 rougeL rougeLsum`` for XSum.

Keys are the metric column names of ``paper_tables/`` so results and paper numbers line up.

Scale convention (one rule for the whole suite): every metric bounded by [0, 1] (BLEU, METEOR,
ROUGE, TER) is returned multiplied by 100; NIST and CIDEr are returned raw. A metric that could
not be computed (METEOR without Java, an empty subset) is ``None``, never a made-up number.
:func:`to_paper_scale` converts to the units printed in the LoRA paper's tables (which the
Delta-LoRA paper follows) and :func:`to_official_scale` to the units the official scripts print.

This module holds what several metrics share: input checks, the Java probe (METEOR and the
Stanford PTB tokenizer need a JVM), the PTB tokenizer runner and the METEOR runner.
"""

from __future__ import annotations

import atexit
import functools
import os
import re
import shutil
import subprocess
import tempfile
import threading
import warnings
from collections.abc import Mapping, Sequence

__all__ = [
    "MetricUnavailableWarning",
    "java_available",
    "meteor_score",
    "ptb_tokenize",
    "simple_ptb_tokenize",
    "to_official_scale",
    "to_paper_scale",
]


class MetricUnavailableWarning(UserWarning):
    """A metric was reported as missing (``None``) or computed with a documented fallback."""


# ---------------------------------------------------------------------------------------------
# Input checks
# ---------------------------------------------------------------------------------------------


def check_corpus(
    hypotheses: Sequence[str], references: Sequence[Sequence[str]], *, allow_empty: bool = False
) -> None:
    """Raise ``ValueError`` naming the problem if the corpus is malformed.

    Metrics silently truncating to the shorter list (``zip``) is how evaluation bugs hide, so
    every public function calls this first.
    """
    if isinstance(hypotheses, str) or not isinstance(hypotheses, Sequence):
        raise ValueError(f"hypotheses must be a list of strings, got {type(hypotheses).__name__}")
    if isinstance(references, str) or not isinstance(references, Sequence):
        raise ValueError(
            f"references must be a list (one entry per hypothesis), got {type(references).__name__}"
        )
    if not allow_empty and len(hypotheses) == 0:
        raise ValueError("hypotheses is empty: need at least one hypothesis to score")
    if len(hypotheses) != len(references):
        raise ValueError(
            f"length mismatch: {len(hypotheses)} hypotheses but {len(references)} reference sets"
        )
    for i, hyp in enumerate(hypotheses):
        if not isinstance(hyp, str):
            raise ValueError(f"hypotheses[{i}] must be a str, got {type(hyp).__name__}")
    for i, refs in enumerate(references):
        if isinstance(refs, str) or not isinstance(refs, Sequence):
            raise ValueError(
                f"references[{i}] must be a list of reference strings, got {type(refs).__name__}"
            )
        if len(refs) == 0:
            raise ValueError(f"references[{i}] is empty: every hypothesis needs at least one reference")
        for j, ref in enumerate(refs):
            if not isinstance(ref, str):
                raise ValueError(f"references[{i}][{j}] must be a str, got {type(ref).__name__}")


def ref_streams(references: Sequence[Sequence[str]]) -> list[list[str | None]]:
    """Transpose per-hypothesis reference lists into sacrebleu's streams, padding with ``None``.

    sacrebleu skips ``None`` (variable number of references) but would count ``''`` as a
    zero-length reference, which changes the closest-length brevity penalty.
    """
    width = max(len(refs) for refs in references)
    return [[refs[k] if k < len(refs) else None for refs in references] for k in range(width)]


# ---------------------------------------------------------------------------------------------
# Java: METEOR and the Stanford PTB tokenizer run on a JVM
# ---------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def _probe_java() -> bool:
    if shutil.which("java") is None:
        return False
    try:
        proc = subprocess.run(["java", "-version"], capture_output=True, timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return proc.returncode == 0


def java_available() -> bool:
    """Whether a working ``java`` is on PATH (cached). Tests monkeypatch this function."""
    return _probe_java()


def resolve_use_java(use_java: bool | None) -> bool:
    """Turn the public ``use_java`` argument into a decision.

    ``None``: use Java if :func:`java_available` says so. ``True``: require it (``RuntimeError``
    if missing; for pipelines that must match the official scripts). ``False``: never start a JVM.
    """
    # A module-level name is looked up when called, so a monkeypatched java_available is seen here.
    if use_java is None:
        return java_available()
    if use_java and not java_available():
        raise RuntimeError(
            "use_java=True but no working `java` was found on PATH; METEOR and the PTB tokenizer "
            "of the official E2E script need Java (OpenJDK 8+)"
        )
    return bool(use_java)


def _pycocoevalcap_dir(sub: str) -> str:
    import pycocoevalcap  # namespace package: __file__ is None, use __path__

    return os.path.join(list(pycocoevalcap.__path__)[0], sub)


# The PTB tokenizer wrapper in pycocoevalcap drops exactly these tokens after tokenizing. We reuse
# its list so the two stay in sync. Note they are upper case ("-LRB-") while the tokenizer runs
# with -lowerCase, so "-lrb-"/"-rrb-" survive: a quirk of the official pipeline that we keep.
def _ptb_punctuations() -> frozenset[str]:
    from pycocoevalcap.tokenizer.ptbtokenizer import PUNCTUATIONS

    return frozenset(PUNCTUATIONS)


def ptb_tokenize(sentences: Sequence[str]) -> list[str]:
    """Tokenize like ``pycocoevalcap``'s ``PTBTokenizer`` (which the E2E script uses).

    Same command (Stanford CoreNLP 3.4.1 ``PTBTokenizer -preserveLines -lowerCase``) and the same
    punctuation removal, but the temporary file goes to the system temp dir instead of the
    installed package folder (pycocoevalcap writes next to its jar, which fails on a read-only
    install). Requires Java.
    """
    sentences = [s.replace("\r", " ").replace("\n", " ") for s in sentences]
    if not sentences:
        return []
    from pycocoevalcap.tokenizer.ptbtokenizer import STANFORD_CORENLP_3_4_1_JAR

    jar = os.path.join(_pycocoevalcap_dir("tokenizer"), STANFORD_CORENLP_3_4_1_JAR)
    with tempfile.TemporaryDirectory(prefix="deltalora-ptb-") as tmp:
        path = os.path.join(tmp, "sentences.txt")
        with open(path, "w", encoding="utf-8") as fh:
            fh.write("\n".join(sentences))
        cmd = [
            "java", "-cp", jar, "edu.stanford.nlp.process.PTBTokenizer",
            "-preserveLines", "-lowerCase", "-encoding", "utf-8", path,
        ]  # fmt: skip
        proc = subprocess.run(cmd, capture_output=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"PTBTokenizer failed ({proc.returncode}): {proc.stderr.decode()[-500:]}")
    lines = proc.stdout.decode("utf-8").split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    # Trailing empty inputs produce no output line; anything else is a real misalignment.
    while len(lines) < len(sentences) and sentences[len(lines)].strip() == "":
        lines.append("")
    if len(lines) != len(sentences):
        raise RuntimeError(f"PTBTokenizer returned {len(lines)} lines for {len(sentences)} inputs")
    punct = _ptb_punctuations()
    return [" ".join(w for w in line.rstrip().split(" ") if w not in punct) for line in lines]


_SENTENCE_PERIOD = re.compile(r"(?<=[^\s.])\.(?=\s|$)")
_SIMPLE_PTB_MAP = {"(": "-lrb-", ")": "-rrb-", "[": "-lsb-", "]": "-rsb-", "{": "-lcb-", "}": "-rcb-"}


def simple_ptb_tokenize(sentences: Sequence[str]) -> list[str]:
    """Pure-Python stand-in for :func:`ptb_tokenize` when no JVM is available.

    nltk's Treebank tokenizer (no model download needed) plus the PTB quirks that matter on E2E
    text: lower case, ``£`` → ``#`` (CoreNLP 3.4.1 normalizes currency), brackets → ``-lrb-`` etc.,
    then the same punctuation removal. Differences from the real tokenizer are measured in
    ``docs/metrics.md``; callers warn when they use it.
    """
    from nltk.tokenize import NLTKWordTokenizer

    tok = NLTKWordTokenizer()
    punct = _ptb_punctuations()
    out = []
    for s in sentences:
        s = s.replace("\n", " ").lower().replace("£", "# ")
        s = _SENTENCE_PERIOD.sub(" .", s)  # nltk only splits a text-final period; PTB splits all
        words = [_SIMPLE_PTB_MAP.get(w, w) for w in tok.tokenize(s)]
        out.append(" ".join(w for w in words if w not in punct))
    return out


class _MeteorRunner:
    """One long-lived METEOR 1.5 process (pycocoevalcap's wrapper; JVM start costs ~10 s).

    Reused across calls so WebNLG's three subsets (and repeated evaluations) pay the start once.
    """

    def __init__(self) -> None:
        from pycocoevalcap.meteor.meteor import Meteor

        self._lock = threading.Lock()
        self._meteor = Meteor()  # java -jar -Xmx2G meteor-1.5.jar - - -stdio -l en -norm

    def score(self, hypotheses: Sequence[str], references: Sequence[Sequence[str]]) -> float:
        res = {i: [_meteor_clean(h)] for i, h in enumerate(hypotheses)}
        gts = {i: [_meteor_clean(r) for r in refs] for i, refs in enumerate(references)}
        with self._lock:
            corpus, _ = self._meteor.compute_score(gts, res)
        return float(corpus)

    def close(self) -> None:
        proc = getattr(self._meteor, "meteor_p", None)
        if proc is None:
            return
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for stream in (proc.stdin, proc.stdout, proc.stderr):
            if stream is not None and not stream.closed:
                stream.close()


def _meteor_clean(text: str) -> str:
    # The stdio protocol is line based and uses ' ||| ' as separator: neither may leak in.
    return " ".join(text.replace("|||", " ").split())


_METEOR: _MeteorRunner | None = None
_METEOR_LOCK = threading.Lock()


def _meteor_runner() -> _MeteorRunner:
    global _METEOR
    with _METEOR_LOCK:
        if _METEOR is None:
            _METEOR = _MeteorRunner()
            atexit.register(_METEOR.close)
        return _METEOR


def _reset_meteor() -> None:
    global _METEOR
    with _METEOR_LOCK:
        if _METEOR is not None:
            _METEOR.close()
        _METEOR = None


def meteor_score(
    hypotheses: Sequence[str], references: Sequence[Sequence[str]], *, use_java: bool | None = None
) -> float | None:
    """Corpus METEOR 1.5 (``-l en -norm``) ×100, or ``None`` with a warning if it cannot run.

    The corpus value is METEOR's own aggregate over all segments' statistics (the final line of
    ``EVAL``), which is what both official scripts report; it is not the mean of segment scores.
    Inputs are scored as given: callers tokenize/lowercase first, as the official scripts do.
    """
    check_corpus(hypotheses, references)
    if not resolve_use_java(use_java):
        warnings.warn(
            "METEOR not computed: no working Java runtime (METEOR 1.5 is a Java program); "
            "reporting METEOR as missing (None)",
            MetricUnavailableWarning,
            stacklevel=2,
        )
        return None
    try:
        value = _meteor_runner().score(hypotheses, references)
    except (OSError, ValueError, AssertionError) as err:  # JVM died / could not start / bad reply
        _reset_meteor()
        warnings.warn(
            f"METEOR not computed: the METEOR process failed ({err!r}); reporting it as missing (None)",
            MetricUnavailableWarning,
            stacklevel=2,
        )
        return None
    return 100.0 * value


# ---------------------------------------------------------------------------------------------
# Scale conversion for tables
# ---------------------------------------------------------------------------------------------

# Keys whose paper-table / official-script units are a fraction (0-1) rather than ×100.
_PAPER_FRACTION: dict[str, tuple[str, ...]] = {"webnlg": ("meteor", "ter")}
_OFFICIAL_FRACTION: dict[str, tuple[str, ...]] = {
    "e2e": ("bleu", "meteor", "rouge_l"),
    "webnlg": ("meteor", "ter"),
}


def _rescale(
    task: str, metrics: Mapping[str, float | None], table: Mapping[str, tuple[str, ...]]
) -> dict[str, float | None]:
    if task not in ("e2e", "webnlg", "xsum"):
        raise ValueError(f"unknown task {task!r}; expected 'e2e', 'webnlg' or 'xsum'")
    prefixes = table.get(task, ())
    out: dict[str, float | None] = {}
    for key, value in metrics.items():
        if value is not None and any(key == p or key.startswith(p + "_") for p in prefixes):
            out[key] = value / 100.0
        else:
            out[key] = value
    return out


def to_paper_scale(task: str, metrics: Mapping[str, float | None]) -> dict[str, float | None]:
    """Convert suite units to the LoRA-paper table units (Delta-LoRA follows them).

    E2E and XSum are unchanged (bleu 70.4, nist 8.85, meteor 46.8, rouge_l 71.8, cider 2.53);
    WebNLG meteor_* and ter_* become fractions (.38, .46) while bleu_* stays ×100 (55.3). Note
    LoRA Table 18 (rank sweep) prints meteor/rouge_l as fractions: use :func:`to_official_scale`.
    """
    return _rescale(task, metrics, _PAPER_FRACTION)


def to_official_scale(task: str, metrics: Mapping[str, float | None]) -> dict[str, float | None]:
    """Convert suite units to what the official scripts print (for cross-checking their output).

    ``measure_scores.py`` prints BLEU, METEOR and ROUGE_L as fractions (0.7038); GenerationEval
    prints BLEU ×100 and METEOR/TER as fractions.
    """
    return _rescale(task, metrics, _OFFICIAL_FRACTION)
