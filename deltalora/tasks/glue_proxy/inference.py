"""GLUE proxies of the inference tasks: MNLI (matched and mismatched), QNLI and RTE."""

from __future__ import annotations

import random

from .words import SENTENCES, Row, Words, cap, choose_label, premise_and_hypothesis, realise, title_name

# ---------------------------------------------------------------------------------------------------
# MNLI: 3-way entailment; every class shares most words with the premise
# ---------------------------------------------------------------------------------------------------


def mnli_matched(rng: random.Random, part: str) -> Row:
    w = Words("mnli", part, rng)
    label = choose_label(rng, (1 / 3, 1 / 3, 1 / 3))  # entailment, neutral, contradiction
    person = w.pick("person")
    other = rng.choice([x for x in w.all("person") if x != person])
    past, base, pp, obj, hyper = w.pick("verb")
    place, extra = w.pick("place"), w.pick("extra")
    # A negated premise at 35%: "did not" in the hypothesis then goes with entailment, and the positive
    # sentence is the contradiction, so negation words alone do not give the label (no place in a negated
    # premise: "did not buy it at the market" would not entail "did not buy it").
    kind = "negated" if rng.random() < 0.35 else "positive"
    premise, hyp = premise_and_hypothesis(SENTENCES["mnli"][kind], locals(), label, rng)
    return {"premise": premise, "hypothesis": hyp, "label": label}


def mnli_mismatched(rng: random.Random, part: str) -> Row:
    """A 'report' genre (organisations, quantities, time periods) absent from training."""
    w = Words("mnli", part, rng)
    label = choose_label(rng, (1 / 3, 1 / 3, 1 / 3))
    org = w.pick("org")
    past, base, obj = w.pick("report")
    num = rng.choice(("twelve", "fifteen", "twenty", "thirty"))  # all "more than ten"
    when = rng.choice(("last year", "last month", "in the spring"))
    Org, When = cap(org), cap(when)  # noqa: N806 - the table's fields at the start of a sentence
    premise, hyp = premise_and_hypothesis(SENTENCES["mnli"]["report"], locals(), label, rng)
    return {"premise": premise, "hypothesis": hyp, "label": label}


# ---------------------------------------------------------------------------------------------------
# QNLI: does the sentence contain the answer to the question?
# ---------------------------------------------------------------------------------------------------


def qnli(rng: random.Random, part: str) -> Row:
    w = Words("qnli", part, rng)
    table = SENTENCES["qnli"]
    label = choose_label(rng, (0.5, 0.5))  # entailment, not_entailment
    name, other = w.two("name")
    base, past, obj = w.pick("event")
    city, year, reason = w.pick("city"), w.pick("year"), w.pick("reason")
    N, Oth, C = title_name(name), title_name(other), title_name(city)  # noqa: N806 - the table's fields
    qtype = rng.choice(table["question_types"])
    words = locals()
    detail = {kind: way.format_map(words) for kind, way in table["details"].items()}
    others = [k for k in ("where", "when", "why") if k != qtype]
    if label == 0:  # the sentence holds the asked-for detail (sometimes with another one)
        extra = detail[rng.choice(others)] if qtype != "who" and rng.random() < 0.4 else ""
        parts = " ".join(x for x in (detail[qtype], extra) if x)
        kind = "who" if qtype == "who" else "detail"
        sentence = realise(table["answers"][kind], {**words, "detail": parts}, rng)
    else:
        distractor = rng.choice(table["distractors"])
        if qtype == "who":
            sentence = realise(table["non_answers"]["who"], words, rng)
        elif distractor == "wrong_slot":  # same person and event, but the asked-for detail is missing
            sentence = realise(
                table["non_answers"]["wrong_slot"], {**words, "detail": detail[rng.choice(others)]}, rng
            )
        else:  # the asked-for detail is there, but about someone else
            kind = "other_person_denied" if rng.random() < 0.3 else "other_person"
            sentence = realise(table["non_answers"][kind], {**words, "detail": detail[qtype]}, rng)
    return {"question": table["questions"][qtype].format_map(words), "sentence": sentence, "label": label}


# ---------------------------------------------------------------------------------------------------
# RTE: 2-way entailment that needs binding facts to the right entity
# ---------------------------------------------------------------------------------------------------


def rte(rng: random.Random, part: str) -> Row:
    w = Words("rte", part, rng)
    label = choose_label(rng, (0.5, 0.5))  # entailment, not_entailment
    # kinds of non-entailment: a word absent from the premise (an overlap heuristic catches it), a fact
    # bound to the wrong entity (it does not), or an explicit contradiction
    wrong = rng.choice(["absent", "absent", "swap", "swap", "contradiction"])
    c1, c2 = (title_name(x) for x in w.two("city"))
    c3 = title_name(rng.choice([x for x in w.all("city") if title_name(x) not in (c1, c2)]))
    template = rng.choice(["person", "company", "event"])
    if template == "person":
        name = title_name(w.pick("name"))
        job, job2 = w.two("job")
    elif template == "company":
        a, b = (title_name(x) for x in w.two("company"))
        num, num2 = w.two("number")
    else:
        event = w.pick("event")
    key = 0 if label == 0 else wrong
    premise, hyp = premise_and_hypothesis(SENTENCES["rte"][template], locals(), key, rng)
    return {"sentence1": premise, "sentence2": hyp, "label": label}
