"""GLUE proxies of the inference tasks: MNLI (matched and mismatched), QNLI and RTE."""

from __future__ import annotations

import random

from .words import Row, Words, cap, choose_label, title_name

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
    if rng.random() < 0.35:
        # negated premise: "did not" in the hypothesis now goes with entailment, and the
        # positive sentence is the contradiction, so negation words alone do not give the label
        # (no place in a negated premise: "did not buy it at the market" would not entail "did not buy it")
        premise = f"The {person} did not {base} the {obj}."
        hyp = rng.choice(
            {
                0: [
                    f"The {obj} was not {pp} by the {person}.",
                    f"The {person} did not {base} the {obj} {place}.",
                ],
                1: [
                    f"The {other} did not {base} the {obj} either.",
                    f"The {person} wanted to {base} the {obj}.",
                    f"The {other} {past} the {obj}.",
                ],
                2: [
                    f"The {person} {past} the {obj}.",
                    f"The {obj} was {pp} by the {person}.",
                    f"The {person} {past} the {obj} {place}.",
                ],
            }[label]
        )
        return {"premise": premise, "hypothesis": hyp, "label": label}
    premise = f"The {person} {past} the {obj} {place}."
    hyp = rng.choice(
        {
            0: [
                f"The {person} {past} the {obj}.",
                f"The {obj} was {pp} by the {person}.",
                f"Someone {past} the {obj} {place}.",
                f"The {person} {past} a {hyper}.",
                "A person did something.",
            ],
            1: [
                f"The {person} {past} the {obj} {extra}.",
                f"The {person} {past} two {obj}s.",
                f"The {other} {past} the {obj} too.",
                f"The {person} wanted to {base} the {obj}.",
                f"The {person} {past} the {obj} and left.",
            ],
            2: [
                f"The {person} did not {base} the {obj}.",
                f"Nobody {past} the {obj}.",
                f"The {obj} was never {pp}.",
                f"The {person} {past} nothing {place}.",
                f"The {person} refused to {base} the {obj}.",
            ],
        }[label]
    )
    return {"premise": premise, "hypothesis": hyp, "label": label}


def mnli_mismatched(rng: random.Random, part: str) -> Row:
    """A 'report' genre (organisations, quantities, time periods) absent from training."""
    w = Words("mnli", part, rng)
    label = choose_label(rng, (1 / 3, 1 / 3, 1 / 3))
    org = w.pick("org")
    past, base, obj = w.pick("report")
    num = rng.choice(("twelve", "fifteen", "twenty", "thirty"))  # all "more than ten"
    when = rng.choice(("last year", "last month", "in the spring"))
    premise = f"{cap(when)}, {org} {past} {num} new {obj}."
    if label == 0:
        hyp = rng.choice(
            [
                f"{cap(org)} {past} some {obj}.",
                f"{cap(org)} {past} more than ten {obj}.",
                f"New {obj} were {past} {when}.",
            ]
        )
    elif label == 1:
        hyp = rng.choice(
            [
                f"{cap(org)} {past} {num} new {obj} to save money.",
                f"{cap(org)} will {base} more {obj} next year.",
                f"{cap(org)} {past} {num} new {obj} after a long debate.",
            ]
        )
    else:
        hyp = rng.choice(
            [
                f"{cap(org)} did not {base} any {obj} {when}.",
                f"{cap(org)} {past} only two {obj} {when}.",
                f"No {obj} were {past} {when}.",
            ]
        )
    return {"premise": premise, "hypothesis": hyp, "label": label}


# ---------------------------------------------------------------------------------------------------
# QNLI: does the sentence contain the answer to the question?
# ---------------------------------------------------------------------------------------------------


def qnli(rng: random.Random, part: str) -> Row:
    w = Words("qnli", part, rng)
    label = choose_label(rng, (0.5, 0.5))  # entailment, not_entailment
    name, other = w.two("name")
    base, past, obj = w.pick("event")
    city, year, reason = w.pick("city"), w.pick("year"), w.pick("reason")
    N, Oth, C = title_name(name), title_name(other), title_name(city)
    qtype = rng.choice(["where", "when", "who", "why"])
    question = {
        "where": f"Where did {N} {base} the {obj}?",
        "when": f"When did {N} {base} the {obj}?",
        "who": f"Who {past} the {obj} in {C}?",
        "why": f"Why did {N} {base} the {obj}?",
    }[qtype]
    slot = {"where": f"in {C}", "when": f"in {year}", "why": reason, "who": ""}
    others = [k for k in ("where", "when", "why") if k != qtype]
    if label == 0:
        if qtype == "who":
            sentence = rng.choice(
                [f"{N} {past} the {obj} in {C} in {year}.", f"The {obj} in {C} was {past} by {N}."]
            )
        else:
            extra = slot[rng.choice(others)] if rng.random() < 0.4 else ""
            parts = " ".join(x for x in (slot[qtype], extra) if x)
            sentence = rng.choice(
                [f"{N} {past} the {obj} {parts}.", f"In the end, {N} {past} the {obj} {parts}."]
            )
    else:
        distractor = rng.choice(["wrong_slot", "wrong_slot", "other_person"])
        if qtype == "who":
            sentence = rng.choice(
                [f"The {obj} in {C} was {past} in {year}.", f"{N} saw the {obj} in {C} in {year}."]
            )
        elif distractor == "wrong_slot":  # same person and event, but the asked-for detail is missing
            sentence = f"{N} {past} the {obj} {slot[rng.choice(others)]}."
        else:  # the asked-for detail is there, but about someone else
            sentence = (
                f"{Oth} {past} the {obj} {slot[qtype]}, not {N}."
                if rng.random() < 0.3
                else f"{Oth} {past} the {obj} {slot[qtype]}."
            )
    return {"question": question, "sentence": sentence, "label": label}


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
        premise = f"{name}, who was born in {c1}, works as a {job} in {c2}."
        hyp = rng.choice(
            {
                0: [
                    f"{name} was born in {c1}.",
                    f"{name} works in {c2}.",
                    f"{name} is a {job}.",
                    f"A {job} works in {c2}.",
                    f"{name} has a job in {c2}.",
                ],
                "absent": [f"{name} is a {job2}.", f"{name} was born in {c3}.", f"{name} works in {c3}."],
                "swap": [f"{name} was born in {c2}.", f"{name} works in {c1}.", f"A {job} was born in {c2}."],
                "contradiction": [f"{name} is not a {job}.", f"{name} has never been to {c2}."],
            }[0 if label == 0 else wrong]
        )
    elif template == "company":
        a, b = (title_name(x) for x in w.two("company"))
        num, num2 = w.two("number")
        premise = f"{a}, based in {c1}, bought {b} for {num} million dollars."
        hyp = rng.choice(
            {
                0: [
                    f"{a} bought {b}.",
                    f"{a} is based in {c1}.",
                    f"{b} was bought by {a}.",
                    f"{a} paid {num} million dollars for {b}.",
                ],
                "absent": [f"{a} paid {num2} million dollars for {b}.", f"{a} is based in {c2}."],
                "swap": [f"{b} bought {a}.", f"{b} is based in {c1}.", f"{a} was bought by {b}."],
                "contradiction": [f"{a} sold {b}.", f"{a} did not buy {b}."],
            }[0 if label == 0 else wrong]
        )
    else:
        event = w.pick("event")
        premise = f"The {event} in {c1} was cancelled because of the rain."
        hyp = rng.choice(
            {
                0: [
                    f"The {event} in {c1} did not take place.",
                    f"It rained in {c1}.",
                    f"There was rain in {c1}.",
                ],
                "absent": [
                    f"The {event} in {c2} was cancelled.",
                    f"The {event} was cancelled because of a strike.",
                ],
                "swap": [
                    f"The rain in {c1} was cancelled because of the {event}.",
                    f"The {event} caused the rain.",
                ],
                "contradiction": [f"The {event} in {c1} took place as planned.", f"It did not rain in {c1}."],
            }[0 if label == 0 else wrong]
        )
    return {"sentence1": premise, "sentence2": hyp, "label": label}
