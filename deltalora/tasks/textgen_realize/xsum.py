"""XSum-like news stories: a document of several sentences and its one-sentence summary."""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from typing import Any

from ..data_files import load_data
from ..textgen_lexicon import Pool

# "days", "months", "findings" (subject, effect, hedged effect) and the kinds of company, team and party
_WORDS: dict = load_data("xsum_words.json")


class _Story:
    """Sentences of one story by role; the summary paraphrases the key event (never copies it)."""

    def __init__(self, key: str, summary: str, background: list[str], details: list[str]):
        self.key, self.summary, self.background, self.details = key, summary, background, details


# frame -> its sentences: key, summary, background, details (data/xsum_stories.json says how to read it)
_TABLES: dict = load_data("xsum_stories.json")


class _Values(dict):
    """A frame's values; a callable value is derived from the others when a sentence asks for it."""

    def __getitem__(self, name: str) -> Any:
        value = super().__getitem__(name)
        return value(self) if callable(value) else value


def _draw(spec: Sequence[Any], rng: random.Random, pool: Pool) -> Any:
    """One value a sentence draws as it is written: ``[name, "randint", lo, hi]`` or ``[name, "choice",
    list]`` (``"@countries"``: the lexicon's countries of the pool)."""
    from ..textgen_lexicon import countries

    _, how, *args = spec
    if how == "randint":
        return rng.randint(*args)
    return rng.choice(countries(pool) if args[0] == "@countries" else args[0])


def _sentence(part: Any, v: _Values, rng: random.Random, pool: Pool) -> str:
    """A fixed sentence, one of several, or {draw, text|one_of}: the draws come first, as written."""
    if isinstance(part, Mapping):
        for spec in part.get("draw", ()):
            v[spec[0]] = _draw(spec, rng, pool)
        part = part["text"] if "text" in part else part["one_of"]
    return (part if isinstance(part, str) else rng.choice(part)).format_map(v)


def _story(frame: str, values: dict[str, Any], rng: random.Random, pool: Pool) -> _Story:
    """The frame's story from its drawn values: key, summary, then background and details, in that order."""
    t, v = _TABLES[frame], _Values(values)
    key = _sentence(t["key"], v, rng, pool)
    summary = t["summary"] if isinstance(t["summary"], Sequence) else t["summary"][v["summary_kind"]]
    summary = _sentence(summary, v, rng, pool)
    background = [_sentence(p, v, rng, pool) for p in t["background"]]
    details = [_sentence(p, v, rng, pool) for p in t["details"]]
    return _Story(key, summary, background, details)


# Each frame draws its values (the order of the draws is the proxy: keep it), then _story writes the
# sentences from the frame's table; its local names (``locals()``) are the fields the table's sentences use.
def _company(rng: random.Random, pool: Pool) -> str:
    from ..textgen_lexicon import places

    return f"{rng.choice(places(pool))} {rng.choice(_WORDS['company_kinds'])}"


def _story_closure(rng: random.Random, pool: Pool) -> _Story:
    from ..textgen_lexicon import people, places

    co, (town, town2, town3) = _company(rng, pool), rng.sample(places(pool), 3)
    fac = rng.choice(["factory", "warehouse", "call centre", "plant", "depot"])
    n, day, year = rng.randint(40, 900), rng.choice(_WORDS["days"]), rng.randint(1950, 2012)
    when = rng.choice(["next year", "in the spring", "by the end of the year", "in the summer"])
    pol = rng.choice(people(pool))[0]
    staff = lambda v: v["n"] * v["staff_per_job"]  # noqa: E731 - derived once the background draws
    return _story("closure", locals() | {"staff": staff}, rng, pool)


def _story_match(rng: random.Random, pool: Pool) -> _Story:
    from ..textgen_lexicon import people, places

    t1, t2 = rng.sample(places(pool), 2)
    team1 = f"{t1} {rng.choice(_WORDS['team_kinds'])}"
    team2 = f"{t2} {rng.choice(_WORDS['team_kinds'])}"
    (player, _), (player2, _), (manager, g) = rng.sample(people(pool), 3)
    a = rng.randint(2, 5)
    b = rng.randint(0, a - 1)
    comp = rng.choice(["Regional Cup", "League Trophy", "County Shield"])
    stage = rng.choice(["semi-final", "quarter-final", "final"])
    day = rng.choice(_WORDS["days"])
    summary_kind = "final" if stage == "final" else "earlier round"
    his = "her" if g == "f" else "his"
    return _story("match", locals(), rng, pool)


def _story_council(rng: random.Random, pool: Pool) -> _Story:
    from ..textgen_lexicon import people, places

    town = rng.choice(places(pool))
    facility = rng.choice(["swimming pool", "library", "sports centre", "bus station", "health centre"])
    old = rng.choice(["cinema", "market hall", "gasworks", "bus depot", "police station"])
    yes, no = rng.randint(12, 30), rng.randint(2, 11)
    cost, year = rng.randint(3, 60), rng.randint(1975, 2015)
    person = rng.choice(people(pool))[0]
    opening = year % 10 + 2020
    return _story("council", locals(), rng, pool)


def _story_research(rng: random.Random, pool: Pool) -> _Story:
    from ..textgen_lexicon import people, places

    uni = f"University of {rng.choice(places(pool))}"
    subj, effect, hedged = rng.choice(_WORDS["findings"])
    n, k = rng.randint(300, 9000), rng.randint(2, 12)
    person = rng.choice(people(pool))[0]
    Subj, k5 = subj[0].upper() + subj[1:], k * 5  # noqa: N806 - the table's field for a capitalised subject
    return _story("research", locals(), rng, pool)


def _story_flood(rng: random.Random, pool: Pool) -> _Story:
    from ..textgen_lexicon import people, places, regions

    town, region = rng.choice(places(pool)), rng.choice(regions(pool))
    n, k, day = rng.randint(20, 600), rng.randint(3, 40), rng.choice(_WORDS["days"])
    person = rng.choice(people(pool))[0]
    return _story("flood", locals(), rng, pool)


def _story_appointment(rng: random.Random, pool: Pool) -> _Story:
    from ..textgen_lexicon import people

    org, org2 = _company(rng, pool), _company(rng, pool)
    (person, _), (prev, _) = rng.sample(people(pool), 2)
    day, m1, m2 = rng.choice(_WORDS["days"]), rng.choice(_WORDS["months"]), rng.choice(_WORDS["months"])
    k = rng.randint(3, 15)
    return _story("appointment", locals(), rng, pool)


def _story_election(rng: random.Random, pool: Pool) -> _Story:
    from ..textgen_lexicon import countries, people

    (person, _), (prev, _), (rival, _) = rng.sample(people(pool), 3)
    party = f"{rng.choice(countries(pool))} {rng.choice(_WORDS['party_kinds'])}"
    pct = rng.randint(51, 80)
    month = rng.choice(_WORDS["months"])
    rest = 100 - pct
    return _story("election", locals(), rng, pool)


STORY_FRAMES = (
    _story_closure,
    _story_match,
    _story_council,
    _story_research,
    _story_flood,
    _story_appointment,
    _story_election,
)


def xsum_story(rng: random.Random, pool: Pool) -> tuple[list[str], str]:
    """A 3-6 sentence news document and its one-sentence summary.

    The key sentence is never first (so "copy the first sentence" is a weak baseline, as in XSum), the
    summary is a paraphrase of the key event, and the other sentences are background or distractors
    that mention other names and numbers.
    """
    story = rng.choice(STORY_FRAMES)(rng, pool)
    n_total = rng.randint(3, min(6, 1 + len(story.background) + len(story.details)))
    others = list(story.background) + rng.sample(story.details, len(story.details))
    others = others[: n_total - 1]
    pos = rng.randint(1, len(others))
    sents = others[:pos] + [story.key] + others[pos:]
    return sents, story.summary
