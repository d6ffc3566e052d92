"""WebNLG texts: a triple set about one subject -> one of many lexicalisations."""

from __future__ import annotations

import random
from collections.abc import Sequence

from ..data_files import load_data
from ..textgen_lexicon import CATEGORY_BY_NAME, Category, Pool, join_and, object_value, pronoun, subject_name

Triple = tuple[str, str, str]  # (subject, property, object), surface forms with spaces

# the sentence shapes the verb phrases go into
_SENTENCES: dict = load_data("textgen_sentences.json")["webnlg"]


def webnlg_sample(
    cat: Category, n_triples: int, rng: random.Random, pool: Pool, *, chain_p: float = 0.0
) -> tuple[list[Triple], str]:
    """A triple set about one new subject of `cat`, and the subject's gender ("" for things).

    Mostly a star: `n_triples` distinct properties of the subject. With probability `chain_p`, a set of
    3 or more whose properties include a place becomes a path, as many of the real WebNLG's are: one of
    the subject's other triples gives way to ``place | country | X`` (same size). A set asked for more
    triples than the category has properties gets that chained triple on top.

    `chain_p` = 0 (the pretraining corpus) draws exactly what version 1 of the proxy drew, so the
    corpus is unchanged; the WebNLG proxy (version 2) passes `WEBNLG_CHAIN_P`.
    """
    subj, gender = subject_name(cat.subject, rng, pool)
    n_props = min(n_triples, len(cat.props))
    props = rng.sample(list(cat.props), n_props)
    triples: list[Triple] = []
    for p in props:
        o = object_value(p.kind, rng, pool)
        triples.append((subj, p.name, o))
    fill = n_triples > n_props
    # the draw happens for every set of 3 or more, chain_p or not: version 1's random stream
    if fill or (n_triples >= 3 and rng.random() < chain_p):
        place = next((t for t, p in zip(triples, props, strict=True) if p.kind == "place"), None)
        if place is not None:
            if not fill:  # a path in place of one of the star's other edges
                triples.remove(next(t for t in reversed(triples) if t is not place))
            triples.append((place[2], "country", object_value("country", rng, pool)))
    return triples[: max(n_triples, 1)], gender


def _vp(cat: Category, prop: str, obj: str, rng: random.Random) -> str:
    if prop == "country" and cat.name not in ("Food",):
        # country is shared by several categories; for chained city triples use City's phrasing
        p = next((x for x in cat.props if x.name == "country"), None) or CATEGORY_BY_NAME["City"].props[0]
    else:
        p = next((x for x in cat.props if x.name == prop), None)
        if p is None:
            p = CATEGORY_BY_NAME["City"].props[0]
    return rng.choice(p.vps).format(o=obj)


def webnlg_text(cat: Category, triples: Sequence[Triple], gender: str, rng: random.Random) -> str:
    """One lexicalisation of a triple set: aggregation, pronouns and verb phrases vary by reference."""
    t = _SENTENCES
    subj = triples[0][0]
    main = [(p, o) for s, p, o in triples if s == subj]
    chained = [(s, p, o) for s, p, o in triples if s != subj]
    main = list(main)
    rng.shuffle(main)
    vps = [_vp(cat, p, o, rng) for p, o in main]
    pron = pronoun(cat, gender)
    style = rng.randrange(3) if len(vps) > 1 else 0
    if style == 0:
        sents = [t["one_sentence"].format(subj=subj, vps=join_and(vps))]
    elif style == 1:
        k = rng.randint(1, len(vps) - 1)
        second = rng.choice(t["second_subjects"]).format(pronoun=pron, subj=subj)
        sents = [
            t["one_sentence"].format(subj=subj, vps=join_and(vps[:k])),
            t["one_sentence"].format(subj=second, vps=join_and(vps[k:])),
        ]
    else:
        relative = t["relative"]["person" if cat.pronoun == "person" else "it"]
        sents = [relative.format(subj=subj, vp=vps[0], vps=join_and(vps[1:]))]
    city_cat = CATEGORY_BY_NAME["City"]
    for s, p, o in chained:
        if rng.random() < 0.5:
            sents.append(t["chained"].format(s=s, vp=_vp(city_cat, p, o, rng)))
        else:
            # attach as a relative clause to the first mention of the chained subject
            text = " ".join(sents)
            vp = _vp(city_cat, p, o, rng)
            for nxt in (".", ",", " and"):
                if f"{s}{nxt}" in text:
                    tail = {".": ".", ",": ",", " and": ", and"}[nxt]
                    text = text.replace(f"{s}{nxt}", t["chained_relative"].format(s=s, vp=vp) + tail, 1)
                    break
            else:
                text += " " + t["chained"].format(s=s, vp=vp)
            sents = [text]
    return " ".join(sents)
