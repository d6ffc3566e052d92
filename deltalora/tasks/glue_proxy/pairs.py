"""GLUE proxies of the similarity and paraphrase tasks: MRPC, QQP and STS-B."""

from __future__ import annotations

import random

from .words import SENTENCES, Row, Words, cap, choose_label, sentence, title_name, with_article

#: Standard deviation of the Gaussian "annotator" noise added to STS-B scores (both splits).
STSB_SCORE_NOISE = 0.35


# ---------------------------------------------------------------------------------------------------
# MRPC: news-style paraphrase vs. near-miss rewrites with high lexical overlap
# ---------------------------------------------------------------------------------------------------


def mrpc(rng: random.Random, part: str) -> Row:
    w = Words("mrpc", part, rng)
    label = choose_label(rng, (0.35, 0.65))  # real MRPC is about 68% equivalent
    ent, other = w.two("entity")
    verb, syn, anto, obj = w.pick("event")
    num, num2 = w.two("number")
    day, day2 = w.two("day")
    s1 = f"{cap(ent)} {verb} {num} {obj} on {day}."
    paraphrases = [
        f"On {day}, {ent} {syn} {num} {obj}.",
        f"{cap(ent)} {syn} {num} {obj} on {day}.",
        f"{cap(num)} {obj} were {syn} by {ent} on {day}.",
        f"On {day}, {num} {obj} were {verb} by {ent}.",
    ]
    if label == 1:
        s2 = rng.choice(paraphrases)
    else:
        change = rng.choice(["number", "day", "antonym", "agent", "more"])
        if change == "number":
            s2 = rng.choice(paraphrases).replace(f" {num} ", f" {num2} ").replace(cap(num), cap(num2))
        elif change == "day":
            s2 = rng.choice(paraphrases).replace(day, day2)
        elif change == "antonym":
            s2 = rng.choice(
                [f"On {day}, {ent} {anto} {num} {obj}.", f"{cap(ent)} {anto} {num} {obj} on {day}."]
            )
        elif change == "agent":
            s2 = rng.choice(
                [f"On {day}, {other} {syn} {num} {obj}.", f"{cap(other)} {verb} {num} {obj} on {day}."]
            )
        else:  # the second sentence reports only part of the event and adds a different claim
            s2 = f"{cap(ent)} said on {day} that it {anto} {num2} {obj}."
    return {"sentence1": s1, "sentence2": s2, "label": label}


# ---------------------------------------------------------------------------------------------------
# QQP: duplicate questions; negatives change the topic, the intent, or the comparison
# ---------------------------------------------------------------------------------------------------


def qqp(rng: random.Random, part: str) -> Row:
    w = Words("qqp", part, rng)
    label = choose_label(rng, (0.58, 0.42))  # real QQP is about 37% duplicate
    frame = rng.choice(SENTENCES["qqp"]["frames"])
    if frame in ("skill", "order"):  # in "order" the order of the two skills matters
        s, s2 = w.two("skill")
    elif frame == "country":
        c, c2 = (title_name(x) for x in w.two("country"))
    elif frame == "compare":  # here the order does not matter: "x or y" asks the same as "y or x"
        (x, y), (u, v) = w.two("thing")
    else:
        g = w.pick("goal")
        g2 = rng.choice([x for x in w.all("goal") if x != g])
    table, words = SENTENCES["qqp"][frame], locals()
    q1, q2 = (way.format_map(words) for way in rng.sample(table["ways"], 2))
    if label == 0:  # mostly the same wording about something else; sometimes another intent
        said = {"q1": q1, "q2": q2}
        q2 = rng.choice([sentence(e, words, said) for e in table["non_duplicates"]])
    return {"question1": q1, "question2": q2, "label": label}


# ---------------------------------------------------------------------------------------------------
# STS-B: graded similarity from how many of (person, action, object, place) the pair shares
# ---------------------------------------------------------------------------------------------------


def stsb(rng: random.Random, part: str) -> Row:
    w = Words("stsb", part, rng)
    (p, p_syn) = w.pick("person")
    (act, act_syn, obj) = w.pick("action")
    place = w.pick("place")
    s1 = f"{cap(with_article(p))} is {act} {with_article(obj)} in the {place}."
    # which slots survive in sentence 2; each lost slot costs similarity, the action most
    mode = rng.choice(["same", "same", "place", "person", "object", "action", "two", "unrelated"])
    p2, a2, o2, pl2 = p_syn, act_syn, obj, place
    score = 5.0
    if mode in ("place", "two"):
        pl2 = rng.choice([x for x in w.all("place") if x != place])
        score -= 1.0
    if mode == "person":
        p2 = rng.choice([x for x in w.all("person") if x[0] != p])[0]
        score -= 1.6
    if mode in ("object", "two"):
        other = rng.choice([x for x in w.all("action") if x[2] != obj])
        o2 = other[2]
        score -= 2.0
    if mode == "action":
        other = rng.choice([x for x in w.all("action") if x[0] != act])
        a2, o2 = other[0], other[2]
        score -= 3.2
    if mode == "unrelated":
        pp = rng.choice([x for x in w.all("person") if x[0] != p])[0]
        aa = rng.choice([x for x in w.all("action") if x[0] != act])
        pl2 = rng.choice([x for x in w.all("place") if x != place])
        p2, a2, o2 = pp, aa[0], aa[2]
        score = 0.4
    if rng.random() < 0.5:  # surface variation that keeps the meaning
        s2 = f"{cap(with_article(p2))} is {a2} {with_article(o2)} in the {pl2}."
    else:
        s2 = f"In the {pl2}, {with_article(p2)} is {a2} {with_article(o2)}."
    score = min(5.0, max(0.0, score + rng.gauss(0.0, STSB_SCORE_NOISE)))
    return {"sentence1": s1, "sentence2": s2, "label": round(score, 2)}
