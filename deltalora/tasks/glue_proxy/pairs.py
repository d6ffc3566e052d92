"""GLUE proxies of the similarity and paraphrase tasks: MRPC, QQP and STS-B."""

from __future__ import annotations

import random

from .words import SENTENCES, Row, Words, cap, choose_label, realise, sentence, title_name, with_article

#: Standard deviation of the Gaussian "annotator" noise added to STS-B scores (both splits).
STSB_SCORE_NOISE = 0.35


# ---------------------------------------------------------------------------------------------------
# MRPC: news-style paraphrase vs. near-miss rewrites with high lexical overlap
# ---------------------------------------------------------------------------------------------------


def mrpc(rng: random.Random, part: str) -> Row:
    w = Words("mrpc", part, rng)
    table = SENTENCES["mrpc"]
    label = choose_label(rng, (0.35, 0.65))  # real MRPC is about 68% equivalent
    ent, other = w.two("entity")
    verb, syn, anto, obj = w.pick("event")
    num, num2 = w.two("number")
    day, day2 = w.two("day")
    Ent, Other, Num, Num2 = cap(ent), cap(other), cap(num), cap(num2)  # noqa: N806 - sentence-initial
    words = locals()
    if label == 1:
        s2 = realise(table["paraphrases"], words, rng)
    else:  # a near-miss: another number, day, verb or agent, or only part of the event and another claim
        s2 = realise(table["near_misses"][rng.choice(table["changes"])], words, rng, table)
    return {"sentence1": table["first"].format_map(words), "sentence2": s2, "label": label}


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
    table = SENTENCES["stsb"]
    words = {
        "A_person": cap(with_article(p)),
        "act": act,
        "an_obj": with_article(obj),
        "place": place,
        "A_person2": cap(with_article(p2)),
        "a_person2": with_article(p2),
        "act2": a2,
        "an_obj2": with_article(o2),
        "place2": pl2,
    }
    order = "same_order" if rng.random() < 0.5 else "place_first"  # surface variation, same meaning
    score = min(5.0, max(0.0, score + rng.gauss(0.0, STSB_SCORE_NOISE)))
    return {
        "sentence1": table["first"].format_map(words),
        "sentence2": table["second"][order].format_map(words),
        "label": round(score, 2),
    }
