"""Vocabulary shared by the NLG proxies and the embedded pre-training corpus.

Why one module: the proxies (E2E, WebNLG, XSum stand-ins) and the pre-training corpus of the embedded
GPT-2/BART must speak the same domain language (otherwise fine-tuning has nothing to build on), yet no
evaluation sentence may appear in the corpus (otherwise pre-training leaks the test set). Both follow
from one rule implemented here: every name pool (places, people, organisations, restaurants) is split
into a ``proxy`` half and a ``corpus`` half that share no string. The proxies draw names only from the
``proxy`` half and the corpus only from the ``corpus`` half; the corpus builder also drops any sentence
that names no corpus entity, so a corpus sentence can never equal an evaluation sentence.

The word lists, categories and name parts are data, read from ``data/textgen_lexicon.json`` beside this
module (JSON lists come back as tuples); this module holds the rules that combine them.

Nothing here draws random numbers; callers pass a ``random.Random``.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from typing import Literal

from .data_files import load_data

Pool = Literal["proxy", "corpus"]


_DATA = load_data("textgen_lexicon.json")

# ---------------------------------------------------------------------------------------------------
# E2E: the 8 slot types and their value sets as they occur in the E2E NLG Challenge data
# (Novikova et al. 2017; slot order as in the dataset's MR strings).
# ---------------------------------------------------------------------------------------------------
E2E_SLOTS: tuple[str, ...] = _DATA["e2e_slots"]
E2E_VALUES: dict[str, tuple[str, ...]] = _DATA["e2e_values"]
# Venue names of the real data set: used by the proxy (pool "proxy") only.
E2E_REAL_NAMES: tuple[str, ...] = _DATA["e2e_real_names"]
E2E_REAL_NEAR: tuple[str, ...] = _DATA["e2e_real_near"]
# Invented venue names for the pre-training corpus (pool "corpus"); none occurs in the lists above.
_CORPUS_VENUE_HEADS = _DATA["corpus_venue_heads"]


def e2e_corpus_venues() -> tuple[str, ...]:
    """Restaurant names of the pre-training corpus: invented, disjoint from the real E2E names."""
    out = []
    for i, head in enumerate(_CORPUS_VENUE_HEADS):
        out.append(f"The {head}" if i % 3 else head)
    return tuple(out)


def e2e_names(pool: Pool) -> tuple[str, ...]:
    return E2E_REAL_NAMES if pool == "proxy" else e2e_corpus_venues()[:20]


def e2e_near(pool: Pool) -> tuple[str, ...]:
    return E2E_REAL_NEAR if pool == "proxy" else e2e_corpus_venues()[20:]


# ---------------------------------------------------------------------------------------------------
# Invented place, person and organisation names, split into two disjoint pools.
# ---------------------------------------------------------------------------------------------------
_ONSETS = _DATA["place_onsets"]
_CODAS = _DATA["place_codas"]
_FIRST_M = _DATA["first_names_m"]
_FIRST_F = _DATA["first_names_f"]
_LAST = _DATA["last_names"]
_COUNTRIES = _DATA["countries"]
_REGIONS = _DATA["regions"]


@cache
def _places() -> tuple[tuple[str, ...], tuple[str, ...]]:
    """All onset+coda place names, split by a fixed parity rule into (proxy, corpus)."""
    proxy, corpus = [], []
    for i, onset in enumerate(_ONSETS):
        for j, coda in enumerate(_CODAS):
            (proxy if (i + j) % 2 == 0 else corpus).append(onset + coda)
    return tuple(proxy), tuple(corpus)


@cache
def _people() -> tuple[tuple[tuple[str, str], ...], tuple[tuple[str, str], ...]]:
    """(full name, gender) pairs split into (proxy, corpus); first names of both genders in both."""
    proxy, corpus = [], []
    for g, firsts in (("m", _FIRST_M), ("f", _FIRST_F)):
        for i, first in enumerate(firsts):
            for j, last in enumerate(_LAST):
                (proxy if (i + j) % 2 == 0 else corpus).append((f"{first} {last}", g))
    return tuple(proxy), tuple(corpus)


def places(pool: Pool) -> tuple[str, ...]:
    return _places()[0 if pool == "proxy" else 1]


def people(pool: Pool) -> tuple[tuple[str, str], ...]:
    return _people()[0 if pool == "proxy" else 1]


def countries(pool: Pool) -> tuple[str, ...]:
    return _COUNTRIES[0::2] if pool == "proxy" else _COUNTRIES[1::2]


def regions(pool: Pool) -> tuple[str, ...]:
    return _REGIONS[0::2] if pool == "proxy" else _REGIONS[1::2]


def all_names(pool: Pool) -> tuple[str, ...]:
    """Every proper name of a pool: used to check (and enforce) that the pools never meet."""
    base = [*places(pool), *(n for n, _ in people(pool)), *countries(pool), *regions(pool)]
    base += [*e2e_names(pool), *e2e_near(pool)]
    return tuple(sorted(set(base)))


# ---------------------------------------------------------------------------------------------------
# WebNLG-like categories: properties, object kinds and verb-phrase realisations.
# ---------------------------------------------------------------------------------------------------
# Object kinds: "place", "country", "region", "person", "org", "year", "date", "num:<unit>", or
# "lit:<list name>" (a closed list below).
LITERALS: dict[str, tuple[str, ...]] = _DATA["literals"]


@dataclass(frozen=True)
class Prop:
    """One property: its DBpedia-like name, object kind, and verb phrases with ``{o}`` for the object."""

    name: str
    kind: str
    vps: tuple[str, ...]


@dataclass(frozen=True)
class Category:
    """A WebNLG-like category: how subjects are named, their pronoun, and their properties."""

    name: str
    subject: str  # naming scheme, see `subject_name`
    pronoun: str  # "it" or "person" (he/she from the entity's gender)
    props: tuple[Prop, ...]


def _categories() -> tuple[Category, ...]:
    """The categories of the data file; a property given by name is one of its ``shared_props``."""
    shared = {k: Prop(**v) for k, v in _DATA["shared_props"].items()}
    return tuple(
        Category(
            c["name"],
            c["subject"],
            c["pronoun"],
            tuple(shared[p] if isinstance(p, str) else Prop(**p) for p in c["props"]),
        )
        for c in _DATA["categories"]
    )


CATEGORIES: tuple[Category, ...] = _categories()
SEEN_CATEGORIES_DEFAULT: tuple[str, ...] = _DATA["seen_categories_default"]
UNSEEN_CATEGORIES_DEFAULT: tuple[str, ...] = _DATA["unseen_categories_default"]
CATEGORY_BY_NAME: dict[str, Category] = {c.name: c for c in CATEGORIES}

_SUFFIX: dict[str, tuple[str, ...]] = _DATA["name_suffixes"]
# unit -> (low, high, format) of numeric objects ("num:<unit>"); format "h" is a height in metres.
_NUMBER_RANGES: dict[str, tuple[int, int, str]] = _DATA["number_ranges"]


def subject_name(kind: str, rng: random.Random, pool: Pool) -> tuple[str, str]:
    """(name, gender) of a new subject of the given naming scheme; gender is "" for things."""
    pl = places(pool)
    if kind == "person":
        return rng.choice(people(pool))
    if kind == "place":
        return rng.choice(pl), ""
    if kind == "university":
        return f"University of {rng.choice(pl)}", ""
    if kind == "body":
        return f"{rng.randint(100, 9999)} {rng.choice(pl)}", ""
    if kind == "food":
        return f"{rng.choice(pl)} {rng.choice(_SUFFIX['food'])}", ""
    return f"{rng.choice(pl)} {rng.choice(_SUFFIX[kind])}", ""


def object_value(kind: str, rng: random.Random, pool: Pool) -> str:
    """A surface value for an object of the given kind (as written in texts, with spaces)."""
    if kind.startswith("lit:"):
        return rng.choice(LITERALS[kind[4:]])
    if kind.startswith("num:"):
        unit = kind[4:]
        lo, hi, fmt = _NUMBER_RANGES[unit]
        if fmt == "h":
            return f"{rng.randint(lo, hi) / 100:.2f}"
        if fmt == "{:d}":
            return fmt.format(rng.randint(lo, hi))
        return fmt.format(rng.uniform(lo, hi))
    if kind == "year":
        return str(rng.randint(1890, 2015))
    if kind == "date":
        return f"{rng.randint(1900, 2010)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
    if kind == "country":
        return rng.choice(countries(pool))
    if kind == "region":
        return rng.choice(regions(pool))
    if kind == "party":
        return f"{rng.choice(countries(pool))} {rng.choice(_SUFFIX['party'])}"
    return subject_name(kind, rng, pool)[0]


def pronoun(cat: Category, gender: str) -> str:
    if cat.pronoun != "person":
        return "It"
    return "She" if gender == "f" else "He"


def to_dbpedia(text: str) -> str:
    """WebNLG writes entities in triples with underscores for spaces (``John_E_Blaha``)."""
    return text.replace(" ", "_")


def article(word: str) -> str:
    return "an" if word[:1].lower() in "aeiou" else "a"


def join_and(items: Sequence[str]) -> str:
    """ "a", "a and b", "a, b and c": how the realisers list phrases."""
    items = list(items)
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]
