"""Validation of the NLG metric suite (E2E, WebNLG, XSum) against hand computations and references.

Expected values are computed by hand in comments, from the metric definitions, or by an
independent tool (the sacrebleu command line, nltk's NIST). The tests that start Java (PTB
tokenizer, METEOR: one JVM start of ~10 s, shared by all METEOR tests through the module's
cached METEOR process) are marked ``slow`` and skipped with a reason when no Java is installed;
the no-Java path is tested everywhere by monkeypatching ``nlg.java_available``.
"""

from __future__ import annotations

import math
import subprocess
import sys
import warnings
from collections import Counter

import pytest

from deltalora.metrics import generation_common as nlg
from deltalora.metrics.e2e import corpus_bleu_e2e, corpus_nist, e2e_metrics, mteval_tokenize
from deltalora.metrics.generation_common import MetricUnavailableWarning, to_official_scale, to_paper_scale
from deltalora.metrics.rouge import rouge_metrics
from deltalora.metrics.webnlg import lora_preprocess, webnlg_bleu, webnlg_metrics, webnlg_ter

needs_java = pytest.mark.skipif(not nlg.java_available(), reason="no working `java` on PATH")

# A small E2E-like corpus: 3 inputs, 2 references each (fixed width so the sacrebleu CLI can read it).
E2E_HYPS = [
    "The Eagle is a cheap coffee shop near Burger King in the city centre.",
    "Zizzi is a family-friendly Italian pub in the riverside area.",
    "Blue Spice serves French food; prices are £20-25 and it is rated 3 out of 5.",
]
E2E_REFS = [
    [
        "The Eagle is a cheap coffee shop in the city centre near Burger King.",
        "Near Burger King in the city centre, there is a cheap coffee shop called The Eagle.",
    ],
    [
        "Zizzi is a pub serving Italian food in the riverside area. It is family-friendly.",
        "In the riverside area there is a family-friendly Italian pub called Zizzi.",
    ],
    [
        "Blue Spice serves French food in the £20-25 price range and has a rating of 3 out of 5.",
        "Blue Spice is a French restaurant with prices of £20-25 and a 3 out of 5 rating.",
    ],
]


def _no_java(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pretend Java is missing, and make sure nothing tries to start a JVM anyway."""

    def boom(*_a: object, **_k: object) -> None:
        raise AssertionError("a JVM was started although Java is unavailable")

    monkeypatch.setattr(nlg, "java_available", lambda: False)
    monkeypatch.setattr(nlg, "_meteor_runner", boom)
    monkeypatch.setattr(nlg, "ptb_tokenize", boom)


# ---------------------------------------------------------------------------------------------
# BLEU
# ---------------------------------------------------------------------------------------------


def _sacrebleu_cli(tmp_path, hyps, refs, *flags: str) -> float:
    ref_files = []
    for k in range(len(refs[0])):
        path = tmp_path / f"ref{k}.txt"
        path.write_text("".join(r[k] + "\n" for r in refs), encoding="utf-8")
        ref_files.append(str(path))
    hyp = tmp_path / "hyp.txt"
    hyp.write_text("".join(h + "\n" for h in hyps), encoding="utf-8")
    out = subprocess.run(
        [sys.executable, "-m", "sacrebleu", *ref_files, "-i", str(hyp), "-tok", "13a", "-s", "none",
         "-b", "-w", "6", *flags],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return float(out.stdout.strip())


def test_e2e_bleu_matches_sacrebleu_cli(tmp_path) -> None:
    # The E2E script's BLEU is case-insensitive: sacrebleu CLI with -lc and 13a tokens.
    cli = _sacrebleu_cli(tmp_path, E2E_HYPS, E2E_REFS, "-lc")
    ours = corpus_bleu_e2e(E2E_HYPS, E2E_REFS)
    assert ours == pytest.approx(cli, abs=1e-5)
    # Upper-casing the outputs must not change the (case-insensitive) E2E score.
    assert corpus_bleu_e2e([h.upper() for h in E2E_HYPS], E2E_REFS) == pytest.approx(ours, abs=1e-9)


def test_webnlg_bleu_matches_sacrebleu_cli_case_sensitive(tmp_path) -> None:
    # multi-bleu-detok.perl (GenerationEval) is case-sensitive: sacrebleu CLI without -lc.
    hyps = [h.replace("Eagle", "EAGLE") for h in E2E_HYPS]
    cli = _sacrebleu_cli(tmp_path, hyps, E2E_REFS)
    assert webnlg_bleu(hyps, E2E_REFS) == pytest.approx(cli, abs=1e-5)
    assert webnlg_bleu(hyps, E2E_REFS) < corpus_bleu_e2e(hyps, E2E_REFS)


def test_bleu_hand_computed_single_sentence() -> None:
    # hyp: the cat sat on the mat / ref: the cat sat on a mat (6 tokens each, BP = 1)
    # 1-grams: the(min(2,1)=1) cat sat on mat -> 5/6;  2-grams: the cat, cat sat, sat on -> 3/5
    # 3-grams: the cat sat, cat sat on -> 2/4;         4-grams: the cat sat on -> 1/3
    expected = 100 * (5 / 6 * 3 / 5 * 2 / 4 * 1 / 3) ** 0.25  # 53.73
    assert corpus_bleu_e2e(["the cat sat on the mat"], [["the cat sat on a mat"]]) == pytest.approx(expected)


def test_bleu_hand_computed_brevity_penalty_closest_reference() -> None:
    # 4 tokens, all n-grams match -> precisions 1. Closest reference length: 6 (|4-6|=2 < |4-7|=3).
    # BP = exp(1 - 6/4). Upper case is ignored by the E2E BLEU.
    score = corpus_bleu_e2e(["The CAT sat on"], [["the cat sat on the mat", "a cat sat on a mat today"]])
    assert score == pytest.approx(100 * math.exp(1 - 6 / 4))


def test_bleu_reproduces_pymteval_short_output_arithmetic() -> None:
    # The official script (pymteval) counts an empty output as one unmatched token and adds
    # len - n + 1 n-grams per segment even when negative. Segment 1 is perfect (6 tokens),
    # segment 2 is empty. pymteval totals: 6+1, 5+0, 4-1, 3-2 -> precisions 6/7, 5/5, 4/3, 3/1;
    # lengths: output 6+1=7, closest refs 6+6=12 -> BP = exp(1 - 12/7).
    hyps = ["the cat sat on the mat", ""]
    refs = [["the cat sat on the mat"], ["a b c d e f"]]
    official = 100 * math.exp(1 - 12 / 7) * (6 / 7 * 1 * 4 / 3 * 3) ** 0.25  # 66.61
    assert corpus_bleu_e2e(hyps, refs) == pytest.approx(official)
    # sacrebleu's own arithmetic (precision 1, BP = exp(1 - 12/6)) would give 36.79.
    assert official - 100 * math.exp(-1) > 29


# ---------------------------------------------------------------------------------------------
# NIST
# ---------------------------------------------------------------------------------------------


def test_nist_hand_computed() -> None:
    # refs: "a b a c" and "a d" -> 6 reference words; counts a:3 b:1 c:1 d:1, (a b):1, (a d):1.
    # info(a) = log2(6/3) = 1, info(b) = info(d) = log2 6, info(a b) = info(a d) = log2(3/1).
    # Seg 1 "a b": unigrams a, b; bigram (a b).  Seg 2 "a d e": unigrams a, d; bigram (a d).
    # Output n-gram counts: 5 unigrams, 3 bigrams, 1 trigram (no match), the rest <= 0.
    hyps = [["a", "b"], ["a", "d", "e"]]
    refs = [[["a", "b", "a", "c"]], [["a", "d"]]]
    info_sum = (2 + 2 * math.log2(6)) / 5 + (2 * math.log2(3)) / 3
    beta = -math.log(0.5) / math.log(1.5) ** 2
    penalty = math.exp(-beta * math.log(5 / 6) ** 2)  # 5 output words vs 4 + 2 average ref words
    assert corpus_nist(hyps, refs) == pytest.approx(info_sum * penalty)


def test_nist_equals_nltk_on_single_reference() -> None:
    from nltk.translate.nist_score import corpus_nist as nltk_nist

    hyps = [mteval_tokenize(h) for h in E2E_HYPS]
    refs = [[mteval_tokenize(r[0])] for r in E2E_REFS]
    assert corpus_nist(hyps, refs) == pytest.approx(nltk_nist(refs, hyps), rel=1e-12)


def test_nist_multi_reference_uses_merged_counts_not_best_reference() -> None:
    # Output "a b c d e" split over two references: mteval clips against the max count over
    # references, so every unigram matches; nltk keeps one best reference (3 of 5 words).
    from nltk.translate.nist_score import corpus_nist as nltk_nist

    hyps = [["a", "b", "c", "d", "e"], ["f", "g", "h", "i", "j"]]
    refs = [[["a", "b", "c", "x", "y"], ["d", "e", "z", "w", "v"]], [["f", "g", "h", "i", "j"]]]
    ours, theirs = corpus_nist(hyps, refs), nltk_nist(refs, hyps)
    assert ours > theirs + 0.5


# ---------------------------------------------------------------------------------------------
# ROUGE
# ---------------------------------------------------------------------------------------------


def test_rouge_hand_computed() -> None:
    # hyp 7 tokens "the cat was found under the bed", ref 6 tokens "the cat was under the bed".
    # ROUGE-1: 6 common (the x2, cat, was, under, bed): P 6/7, R 1 -> F 12/13.
    # ROUGE-2: hyp bigrams 6, ref 5, common 4 (the cat, cat was, under the, the bed) -> F 16/22.
    # ROUGE-L: LCS = the whole reference (6): P 6/7, R 1 -> F 12/13.
    scores = rouge_metrics(["the cat was found under the bed"], ["the cat was under the bed"])
    assert scores["rouge1"] == pytest.approx(100 * 12 / 13)
    assert scores["rouge2"] == pytest.approx(100 * 16 / 22)
    assert scores["rougeL"] == pytest.approx(100 * 12 / 13)
    assert scores["rougeLsum"] == pytest.approx(100 * 12 / 13)


def test_rouge_multi_reference_takes_best_and_corpus_is_mean() -> None:
    hyp, good, bad = "the cat was found under the bed", "the cat was under the bed", "dogs bark loudly"
    single = rouge_metrics([hyp], [good])
    for refs in ([good, bad], [bad, good]):
        assert rouge_metrics([hyp], [refs]) == pytest.approx(single)
    # corpus value = mean of per-example F (second example scores 0)
    two = rouge_metrics([hyp, "zzz"], [good, "the cat"])
    assert two["rouge1"] == pytest.approx(single["rouge1"] / 2)


def test_rouge_stemming_is_on_by_default() -> None:
    # rouge-score stems tokens longer than 3 characters: "cats"/"cat" do not, "running"/"runs" do.
    assert rouge_metrics(["running fast"], ["runs fast"])["rouge1"] == pytest.approx(100.0)
    assert rouge_metrics(["running fast"], ["runs fast"], use_stemmer=False)["rouge1"] == pytest.approx(50.0)


def test_e2e_rouge_l_is_coco_max_precision_max_recall(monkeypatch, recwarn) -> None:
    # The E2E script's ROUGE_L (pycocoevalcap): best precision and best recall are taken over the
    # references independently, then F with beta = 1.2. Here ref 1 gives P = 1 (R = .5) and ref 2
    # gives R = 1 (P = .5), so the score is 1.0 although no reference matches fully.
    _no_java(monkeypatch)
    out = e2e_metrics(["a b c d", "e f g h"], [["a b c d x y z w", "a b"], ["e f g h"]])
    assert out["rouge_l"] == pytest.approx(100.0)
    # One reference, LCS 2 of 4 output / 6 reference words: P .5, R 1/3.
    p, r = 0.5, 1 / 3
    f = (1 + 1.2**2) * p * r / (r + 1.2**2 * p)
    out = e2e_metrics(["a b c d", "e f g h"], [["a b x x x x"], ["e f g h"]])
    assert out["rouge_l"] == pytest.approx(100 * (f + 1) / 2)


# ---------------------------------------------------------------------------------------------
# CIDEr (CIDEr-D as implemented by pycocoevalcap's "Cider")
# ---------------------------------------------------------------------------------------------


def _cider_d_reference(hyps: list[str], refs: list[list[str]], sigma: float = 6.0) -> float:
    """Independent CIDEr-D: tf-idf n-gram cosine (n = 1..4) with clipping and a Gaussian
    length penalty, averaged over references and n, times 10; idf from the reference corpus."""

    def grams(s: str) -> list[Counter]:
        w = s.split()
        return [Counter(tuple(w[i : i + n]) for i in range(len(w) - n + 1)) for n in range(1, 5)]

    n_docs = len(refs)
    df: Counter = Counter()
    for rs in refs:
        df.update({g for r in rs for c in grams(r) for g in c})

    def vec(c: Counter) -> dict:
        return {g: tf * (math.log(n_docs) - math.log(max(1.0, df[g]))) for g, tf in c.items()}

    total = 0.0
    for hyp, rs in zip(hyps, refs, strict=True):
        per_n = [0.0] * 4
        for ref in rs:
            delta = len(hyp.split()) - len(ref.split())
            for n, (ch, cr) in enumerate(zip(grams(hyp), grams(ref), strict=True)):
                vh, vr = vec(ch), vec(cr)
                dot = sum(min(v, vr.get(g, 0.0)) * vr.get(g, 0.0) for g, v in vh.items())
                nh, nr = (
                    math.sqrt(sum(v * v for v in vh.values())),
                    math.sqrt(sum(v * v for v in vr.values())),
                )
                cos = dot / (nh * nr) if nh and nr else 0.0
                per_n[n] += cos * math.exp(-(delta**2) / (2 * sigma**2))
        total += 10 * sum(per_n) / 4 / len(rs)
    return total / len(hyps)


CIDER_HYPS = [
    "the eagle is a cheap coffee shop",
    "zizzi is an italian pub by the river",
    "blue spice is cheap",
]
CIDER_REFS = [
    ["the eagle is a cheap coffee shop near the river", "a cheap coffee shop named the eagle"],
    ["zizzi is an italian pub by the river"],
    ["blue spice serves french food", "blue spice is a cheap french restaurant"],
]


def test_cider_matches_independent_cider_d(monkeypatch, recwarn) -> None:
    _no_java(monkeypatch)  # lower-case, punctuation-free text: both tokenizers leave it unchanged
    out = e2e_metrics(CIDER_HYPS, CIDER_REFS)
    assert out["cider"] == pytest.approx(_cider_d_reference(CIDER_HYPS, CIDER_REFS), rel=1e-9)


def test_cider_perfect_match_is_ten_and_beats_partial(monkeypatch, recwarn) -> None:
    # Disjoint vocabularies -> every idf is log(3) > 0, so a perfect output has cosine 1 for each
    # n = 1..4 and no length penalty: CIDEr-D = 10 exactly.
    _no_java(monkeypatch)
    refs = [["a b c d e"], ["f g h i j"], ["k l m n o"]]
    perfect = e2e_metrics([r[0] for r in refs], refs)["cider"]
    assert perfect == pytest.approx(10.0)
    partial = e2e_metrics(["a b c x y", "f g h i j", "k l m n o"], refs)["cider"]
    assert 0 < partial < perfect


# ---------------------------------------------------------------------------------------------
# TER
# ---------------------------------------------------------------------------------------------


def test_ter_hand_computed() -> None:
    # one substitution over 4 reference words
    assert webnlg_ter(["a b c d"], [["a x c d"]]) == pytest.approx(25.0)
    # one block shift ("c d" moved) over 4 reference words
    assert webnlg_ter(["c d a b"], [["a b c d"]]) == pytest.approx(25.0)
    # GenerationEval: per sentence the lowest TER over references, then the mean over sentences.
    # seg 1: min(1/4, 4 insertions/8) = 25; seg 2: 2 insertions / 4 = 50 -> mean 37.5
    score = webnlg_ter(["a b c d", "x y"], [["a x c d", "a b c d e f g h"], ["x y z w"]])
    assert score == pytest.approx(37.5)
    # an empty reference scores 1.0 (100) there, so it never wins the min
    assert webnlg_ter(["a b"], [["", "a b c d"]]) == pytest.approx(50.0)


@pytest.mark.parametrize(
    "hyps,refs,expected",
    [
        (["a b c d"], [["a x c d"]], 25.0),  # one substitution / 4
        (["c d a b"], [["a b c d"]], 25.0),  # one block shift / 4
        (["a b c d", "x y"], [["a x c d", "a b c d e f g h"], ["x y z w"]], 37.5),
        (["x y"], [["x y z w"]], 50.0),  # two insertions / 4
    ],
)
def test_ter_backends_agree_with_hand_values(hyps, refs, expected) -> None:
    pytest.importorskip("pyter", reason="optional pyter3 package (GenerationEval's TER) not installed")
    assert webnlg_ter(hyps, refs, backend="pyter") == pytest.approx(expected)
    assert webnlg_ter(hyps, refs, backend="sacrebleu") == pytest.approx(expected)


def test_ter_backends_differ_where_their_shift_searches_do() -> None:
    """'in is a was club' -> 'in a club is was' takes two shifts (club after a, is after club): TER 2/5.
    sacrebleu's tercom port finds them; pyter3 (GenerationEval's TER) finds fewer and reports 3/5. Each
    backend is pinned, so neither can silently stand in for the other."""
    pytest.importorskip("pyter", reason="optional pyter3 package (GenerationEval's TER) not installed")
    hyp, ref = ["in is a was club"], [["in a club is was"]]
    assert webnlg_ter(hyp, ref, backend="sacrebleu") == pytest.approx(40.0)
    assert webnlg_ter(hyp, ref, backend="pyter") == pytest.approx(60.0)
    assert webnlg_ter(hyp, ref) == pytest.approx(60.0)  # pyter is the default


def test_ter_unknown_backend() -> None:
    with pytest.raises(ValueError, match="unknown TER backend"):
        webnlg_ter(["a"], [["a"]], backend="tercom")


# ---------------------------------------------------------------------------------------------
# WebNLG wiring
# ---------------------------------------------------------------------------------------------


def test_lora_preprocess_matches_gpt2_decode_and_is_idempotent() -> None:
    text = "Alan Bean's runway (2,776.0 m) is in Tirstrup, Denmark."
    once = lora_preprocess(text)
    assert once == "alan bean ' s runway ( 2 , 776 . 0 m ) is in tirstrup , denmark ."
    assert lora_preprocess(once) == once


def test_webnlg_seen_unseen_are_corpus_scores_on_subsets(monkeypatch) -> None:
    _no_java(monkeypatch)
    cats = ["Airport", "Food", "Airport"]
    with pytest.warns(MetricUnavailableWarning, match="METEOR"):
        out = webnlg_metrics(E2E_HYPS, E2E_REFS, cats, {"Airport"})
    assert list(out) == [f"{m}_{s}" for m in ("bleu", "meteor", "ter") for s in ("seen", "unseen", "all")]
    pre_h = [lora_preprocess(h) for h in E2E_HYPS]
    pre_r = [[lora_preprocess(r) for r in rs] for rs in E2E_REFS]
    assert out["bleu_seen"] == pytest.approx(webnlg_bleu([pre_h[0], pre_h[2]], [pre_r[0], pre_r[2]]))
    assert out["bleu_unseen"] == pytest.approx(webnlg_bleu([pre_h[1]], [pre_r[1]]))
    assert out["bleu_all"] == pytest.approx(webnlg_bleu(pre_h, pre_r))
    assert out["meteor_seen"] is None and out["meteor_all"] is None
    assert 0 < out["ter_all"] < 100


def test_webnlg_empty_subset_is_none_and_extra_references_dropped(monkeypatch, recwarn) -> None:
    _no_java(monkeypatch)
    refs = [[f"ref {k} a b c" for k in range(7)] + ["a b c d"]]  # 8 refs: the last two are dropped
    out = webnlg_metrics(["a b c d"], refs, ["X"], {"X"})
    assert out["bleu_unseen"] is None and out["ter_unseen"] is None
    assert out["bleu_seen"] < 100  # the perfect 8th reference was not used
    assert any("more than 6 references" in str(w.message) for w in recwarn.list)


def test_webnlg_input_checks() -> None:
    with pytest.raises(ValueError, match="categories"):
        webnlg_metrics(["a"], [["a"]], ["X", "Y"], {"X"}, use_java=False)
    with pytest.raises(ValueError, match="seen_categories"):
        webnlg_metrics(["a"], [["a"]], ["X"], "X", use_java=False)


# ---------------------------------------------------------------------------------------------
# METEOR and the Java path
# ---------------------------------------------------------------------------------------------


def test_no_java_reports_meteor_missing_with_warning(monkeypatch) -> None:
    _no_java(monkeypatch)
    with pytest.warns(MetricUnavailableWarning, match="METEOR is missing"):
        out = e2e_metrics(E2E_HYPS, E2E_REFS)
    assert out["meteor"] is None
    assert all(isinstance(out[k], float) for k in ("bleu", "nist", "rouge_l", "cider"))
    with pytest.warns(MetricUnavailableWarning, match="METEOR not computed"):
        assert nlg.meteor_score(["a"], [["a"]]) is None
    with pytest.raises(RuntimeError, match="use_java=True"):
        e2e_metrics(E2E_HYPS, E2E_REFS, use_java=True)


def test_meteor_process_failure_reports_missing(monkeypatch) -> None:
    class Dead:
        def score(self, *_a: object) -> float:
            raise BrokenPipeError("JVM exited")

        def close(self) -> None:
            pass

    monkeypatch.setattr(nlg, "java_available", lambda: True)
    monkeypatch.setattr(nlg, "_meteor_runner", lambda: Dead())
    monkeypatch.setattr(nlg, "_reset_meteor", lambda: None)
    with pytest.warns(MetricUnavailableWarning, match="METEOR process failed"):
        assert nlg.meteor_score(["a b"], [["a b"]]) is None


@pytest.mark.slow
@needs_java
def test_ptb_tokenizer_matches_official_quirks() -> None:
    # CoreNLP 3.4.1 via the same command as pycocoevalcap: lower case, £ -> #, brackets become
    # -lrb-/-rrb- which survive the (upper-case) punctuation filter, "n't" split off.
    toks = nlg.ptb_tokenize(["Prices are £20-25 (moderate) and it isn't cheap.", "", "OK"])
    assert toks == ["prices are # 20-25 -lrb- moderate -rrb- and it is n't cheap", "", "ok"]
    assert nlg.simple_ptb_tokenize(["Prices are £20-25 (moderate) and it isn't cheap."]) == toks[:1]


@pytest.mark.slow
@needs_java
def test_meteor_perfect_match_and_ordering_and_full_e2e() -> None:
    # One JVM start for all METEOR checks (the METEOR process is cached and reused).
    perfect = nlg.meteor_score(["the eagle is a cheap coffee shop"], [["the eagle is a cheap coffee shop"]])
    assert perfect == pytest.approx(100.0, abs=1e-6)
    worse = nlg.meteor_score(["the eagle is an expensive pub"], [["the eagle is a cheap coffee shop"]])
    assert 0 < worse < perfect

    with warnings.catch_warnings():
        warnings.simplefilter("error", MetricUnavailableWarning)  # the Java path must not warn
        out = e2e_metrics(E2E_HYPS, E2E_REFS)
        web = webnlg_metrics(E2E_HYPS, E2E_REFS, ["A", "B", "A"], {"A"})
    assert 0 < out["meteor"] < 100
    # pinned on this fixed corpus (METEOR 1.5, -l en -norm, as the E2E script runs it)
    assert out["meteor"] == pytest.approx(47.01846, abs=1e-4)
    assert all(0 < web[f"meteor_{s}"] <= 100 for s in ("seen", "unseen", "all"))
    assert out["cider"] > 0 and 0 < out["rouge_l"] < 100 and out["nist"] > 0


# ---------------------------------------------------------------------------------------------
# Input validation and scales
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("hyps", "refs", "message"),
    [
        ([], [], "hypotheses is empty"),
        (["a", "b"], [["a"]], "2 hypotheses but 1 reference sets"),
        (["a"], [[]], r"references\[0\] is empty"),
        (["a"], [["a", 3]], r"references\[0\]\[1\] must be a str"),
        ([None], [["a"]], r"hypotheses\[0\] must be a str"),
        ("a", [["a"]], "hypotheses must be a list"),
        (["a"], ["a"], r"references\[0\] must be a list"),
    ],
)
def test_bad_inputs_raise_clear_value_error(monkeypatch, hyps, refs, message) -> None:
    _no_java(monkeypatch)
    for fn in (
        lambda: e2e_metrics(hyps, refs),
        lambda: corpus_bleu_e2e(hyps, refs),
        lambda: webnlg_bleu(hyps, refs),
        lambda: webnlg_ter(hyps, refs),
        lambda: nlg.meteor_score(hyps, refs),
    ):
        with pytest.raises(ValueError, match=message):
            fn()


def test_rouge_bad_inputs() -> None:
    with pytest.raises(ValueError, match="hypotheses is empty"):
        rouge_metrics([], [])
    with pytest.raises(ValueError, match="2 hypotheses but 1 reference sets"):
        rouge_metrics(["a", "b"], ["a"])


def test_scale_helpers() -> None:
    e2e = {"bleu": 70.4, "nist": 8.85, "meteor": 46.8, "rouge_l": 71.8, "cider": 2.53}
    assert to_paper_scale("e2e", e2e) == e2e
    assert to_official_scale("e2e", e2e) == pytest.approx(
        {"bleu": 0.704, "nist": 8.85, "meteor": 0.468, "rouge_l": 0.718, "cider": 2.53}
    )
    web = {"bleu_all": 55.3, "meteor_all": 41.0, "ter_all": 39.0, "meteor_unseen": None}
    assert to_paper_scale("webnlg", web) == pytest.approx(
        {"bleu_all": 55.3, "meteor_all": 0.41, "ter_all": 0.39, "meteor_unseen": None}
    )
    with pytest.raises(ValueError, match="unknown task"):
        to_paper_scale("dart", e2e)


def test_public_names_exported_by_the_metrics_package() -> None:
    import deltalora.metrics as metrics

    assert metrics.e2e_metrics is e2e_metrics
    assert metrics.webnlg_metrics is webnlg_metrics
    assert metrics.rouge_metrics is rouge_metrics
