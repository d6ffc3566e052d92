# ruff: noqa: E501  (template sentences read better unwrapped)
"""XSum-like news stories: a document of several sentences and its one-sentence summary."""

from __future__ import annotations

import random

from ..data_files import load_data
from ..textgen_lexicon import Pool

# "days", "months" and "findings" (subject, effect, hedged effect) of the story frames
_WORDS: dict = load_data("xsum_words.json")


class _Story:
    """Sentences of one story by role; the summary paraphrases the key event (never copies it)."""

    def __init__(self, key: str, summary: str, background: list[str], details: list[str]):
        self.key, self.summary, self.background, self.details = key, summary, background, details


def _company(rng: random.Random, pool: Pool) -> str:
    from ..textgen_lexicon import places

    return f"{rng.choice(places(pool))} {rng.choice(['Foods', 'Engineering', 'Textiles', 'Logistics', 'Motors', 'Paper'])}"


def _story_closure(rng: random.Random, pool: Pool) -> _Story:
    from ..textgen_lexicon import countries, people, places

    co, (town, town2, town3) = _company(rng, pool), rng.sample(places(pool), 3)
    fac = rng.choice(["factory", "warehouse", "call centre", "plant", "depot"])
    n, day, year = rng.randint(40, 900), rng.choice(_WORDS["days"]), rng.randint(1950, 2012)
    when = rng.choice(["next year", "in the spring", "by the end of the year", "in the summer"])
    pol = rng.choice(people(pool))[0]
    key = rng.choice(
        [
            f"{co} has confirmed that its {fac} in {town} will close {when}, with the loss of {n} jobs.",
            f"Bosses at {co} told staff on {day} that the {town} {fac} would shut {when}, putting {n} jobs at risk.",
            f"The {fac} run by {co} in {town} is to close {when}, the firm said on {day}, and {n} staff will lose their jobs.",
        ]
    )
    summary = rng.choice(
        [
            f"{co} is to close its {fac} in {town}, with the loss of {n} jobs.",
            f"{n} jobs are set to go after {co} announced the closure of its {town} {fac}.",
            f"The {town} {fac} of {co} will shut, putting {n} people out of work.",
        ]
    )
    background = [
        rng.choice(
            [
                f"{co} has operated in {town} since {year}.",
                f"{co}, which employs about {n * rng.randint(3, 9)} people across {rng.choice(countries(pool))}, opened the site in {year}.",
            ]
        ),
    ]
    details = [
        f"It also runs sites in {town2} and {town3}, which are not affected.",
        rng.choice(
            [
                f'A spokesperson for {co} said the decision had been "very difficult".',
                "The firm blamed rising energy costs and falling demand.",
            ]
        ),
        f'{pol}, who represents {town} on the regional council, called the news "a heavy blow".',
    ]
    return _Story(key, summary, background, details)


def _story_match(rng: random.Random, pool: Pool) -> _Story:
    from ..textgen_lexicon import people, places

    t1, t2 = rng.sample(places(pool), 2)
    team1 = f"{t1} {rng.choice(['Rovers', 'United', 'Athletic', 'City', 'Wanderers'])}"
    team2 = f"{t2} {rng.choice(['Rovers', 'United', 'Athletic', 'City', 'Wanderers'])}"
    (player, _), (player2, _), (manager, g) = rng.sample(people(pool), 3)
    a = rng.randint(2, 5)
    b = rng.randint(0, a - 1)
    comp = rng.choice(["Regional Cup", "League Trophy", "County Shield"])
    stage = rng.choice(["semi-final", "quarter-final", "final"])
    day = rng.choice(_WORDS["days"])
    key = rng.choice(
        [
            f"{player} scored twice as {team1} beat {team2} {a}-{b} in the {comp} {stage} on {day}.",
            f"{team1} won {a}-{b} against {team2} in the {stage} of the {comp}, with {player} scoring twice.",
        ]
    )
    if stage == "final":
        summary = rng.choice(
            [
                f"{team1} have won the {comp} after beating {team2} {a}-{b} in the final.",
                f"{team1} lifted the {comp} with a {a}-{b} win over {team2}.",
            ]
        )
    else:
        summary = rng.choice(
            [
                f"{team1} are through to the next round of the {comp} after a {a}-{b} win over {team2}.",
                f"A {a}-{b} victory over {team2} took {team1} into the next round of the {comp}.",
            ]
        )
    background = [
        rng.choice(
            [
                f"{team1} had lost their previous three matches in all competitions.",
                f"{team1} last reached this stage of the {comp} in {rng.randint(1970, 2015)}.",
            ]
        )
    ]
    his = "her" if g == "f" else "his"
    details = [
        f"{team2} finished the game with ten men after {player2} was sent off.",
        f'{manager}, the {team1} manager, said {his} side had "earned the win".',
        f"A crowd of {rng.randint(2000, 30000)} watched the game.",
    ]
    return _Story(key, summary, background, details)


def _story_council(rng: random.Random, pool: Pool) -> _Story:
    from ..textgen_lexicon import people, places

    town = rng.choice(places(pool))
    facility = rng.choice(["swimming pool", "library", "sports centre", "bus station", "health centre"])
    old = rng.choice(["cinema", "market hall", "gasworks", "bus depot", "police station"])
    yes, no = rng.randint(12, 30), rng.randint(2, 11)
    cost, year = rng.randint(3, 60), rng.randint(1975, 2015)
    person = rng.choice(people(pool))[0]
    key = rng.choice(
        [
            f"Councillors in {town} voted {yes} to {no} to approve plans for a new {facility} on the site of the old {old}.",
            f"Plans for a {facility} on the former {old} site were backed by {town} councillors by {yes} votes to {no}.",
        ]
    )
    summary = rng.choice(
        [
            f"Plans for a new {facility} in {town} have been approved by councillors.",
            f"{town} is to get a new {facility} after councillors backed the plans.",
            f"A new {facility} will be built in {town} after the council approved the scheme.",
        ]
    )
    background = [f"The old {old} in {town} closed in {year} and the site has been empty since."]
    details = [
        f"The project is expected to cost £{cost}m and could open in {year % 10 + 2020}.",
        "Some residents had objected, saying the scheme would increase traffic.",
        f'Council leader {person} said the {facility} would "bring new life" to the area.',
    ]
    return _Story(key, summary, background, details)


def _story_research(rng: random.Random, pool: Pool) -> _Story:
    from ..textgen_lexicon import people, places

    uni = f"University of {rng.choice(places(pool))}"
    subj, effect, hedged = rng.choice(_WORDS["findings"])
    n, k = rng.randint(300, 9000), rng.randint(2, 12)
    person = rng.choice(people(pool))[0]
    key = rng.choice(
        [
            f"A team at the {uni} found that {subj} {effect}, after studying {n} adults over {k} years.",
            f"Researchers from the {uni} followed {n} adults for {k} years and found that {subj} {effect}.",
        ]
    )
    summary = rng.choice(
        [
            f"{subj[0].upper() + subj[1:]} {hedged}, according to a study by the {uni}.",
            f"Scientists at the {uni} say {subj} {hedged}.",
        ]
    )
    background = [
        rng.choice(
            [
                "Previous studies had produced mixed results.",
                f"The {uni} has studied public health for more than {k * 5} years.",
            ]
        )
    ]
    details = [
        f"The findings are published in the journal {rng.choice(['Health Reports', 'Medical Review', 'Public Health Letters'])}.",
        f'Lead author {person} said the results were "striking".',
        "The researchers say more work is needed to explain the link.",
    ]
    return _Story(key, summary, background, details)


def _story_flood(rng: random.Random, pool: Pool) -> _Story:
    from ..textgen_lexicon import people, places, regions

    town, region = rng.choice(places(pool)), rng.choice(regions(pool))
    n, k, day = rng.randint(20, 600), rng.randint(3, 40), rng.choice(_WORDS["days"])
    person = rng.choice(people(pool))[0]
    key = rng.choice(
        [
            f"About {n} homes in {town} were flooded after the river burst its banks on {day}.",
            f"The river burst its banks in {town} on {day}, flooding about {n} homes.",
        ]
    )
    summary = rng.choice(
        [
            f"Around {n} properties in {town} have been flooded after heavy rain.",
            f"Heavy rain has left about {n} homes in {town} under water.",
        ]
    )
    background = [f"The {region} has had twice its usual rainfall this month."]
    details = [
        f"Emergency crews rescued {k} people from cars trapped in the water.",
        f"{person} from the county fire service said crews had worked through the night.",
        "Forecasters expect drier weather later in the week.",
    ]
    return _Story(key, summary, background, details)


def _story_appointment(rng: random.Random, pool: Pool) -> _Story:
    from ..textgen_lexicon import people

    org, org2 = _company(rng, pool), _company(rng, pool)
    (person, _), (prev, _) = rng.sample(people(pool), 2)
    day, m1, m2 = rng.choice(_WORDS["days"]), rng.choice(_WORDS["months"]), rng.choice(_WORDS["months"])
    k = rng.randint(3, 15)
    key = rng.choice(
        [
            f"{org} said on {day} that {person} would take over as chief executive in {m1}.",
            f"{person} will become chief executive of {org} in {m1}, the company said on {day}.",
        ]
    )
    summary = rng.choice(
        [
            f"{person} has been named as the new chief executive of {org}.",
            f"{org} has appointed {person} as its new boss.",
        ]
    )
    background = [f"{org} has been without a permanent leader since {prev} stepped down in {m2}."]
    details = [
        f"{person} previously ran {org2} for {k} years.",
        f"Shares in {org} rose by {rng.randint(2, 9)}% after the announcement.",
        "The company has faced calls to cut costs.",
    ]
    return _Story(key, summary, background, details)


def _story_election(rng: random.Random, pool: Pool) -> _Story:
    from ..textgen_lexicon import countries, people

    (person, _), (prev, _), (rival, _) = rng.sample(people(pool), 3)
    party = f"{rng.choice(countries(pool))} {rng.choice(['Liberal Party', 'Progress Party', 'Green Union', 'Civic Party'])}"
    pct = rng.randint(51, 80)
    month = rng.choice(_WORDS["months"])
    key = rng.choice(
        [
            f"{person} won {pct}% of the vote to become the new leader of the {party}.",
            f"Members of the {party} chose {person} as their new leader, with {pct}% of the vote.",
        ]
    )
    summary = rng.choice(
        [
            f"{person} has been elected leader of the {party}.",
            f"The {party} has a new leader after members voted for {person}.",
        ]
    )
    background = [f"The contest was triggered when {prev} resigned in {month}."]
    details = [
        f"{rival} came second with {100 - pct}% of the vote.",
        f'{person} promised to "unite the party" in a speech after the result.',
        "Turnout among members was lower than at the last contest.",
    ]
    return _Story(key, summary, background, details)


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
