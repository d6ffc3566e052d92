# ruff: noqa: E501  (template sentences read better unwrapped)
"""Surface realisers: structured input -> varied English text, for the NLG proxies and the corpus.

Why hand-written grammars rather than a model: the embedded profile has no pretrained generator and no
network, and the proxies must still be real NLG tasks: several correct references per input that differ
in slot order, aggregation, syntax and synonyms, so that multi-reference BLEU is meaningful and cannot
saturate (no single output matches every reference). The same realisers, fed names from the disjoint
``corpus`` pool, write the pre-training corpus, so the embedded models know the domain language but
have never seen an evaluation sentence.

All functions are pure given the ``random.Random`` they receive.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from .nlg_lexicon import (
    CATEGORY_BY_NAME,
    Category,
    Pool,
    article,
    object_value,
    pronoun,
    subject_name,
)


# ---------------------------------------------------------------------------------------------------
# E2E
# ---------------------------------------------------------------------------------------------------
def _e2e_forms(slot: str, value: str) -> dict[str, list[str]]:
    """Realisations of one slot: pre-nominal adjectives, post-nominal phrases, and predicate clauses."""
    v = value
    if slot == "food":
        if v == "Fast food":
            return {
                "adj": ["fast food"],
                "post": ["serving fast food", "that serves fast food", "offering fast food"],
                "clause": ["serves fast food", "offers fast food", "provides fast food", "sells fast food"],
            }
        return {
            "adj": [v],
            "post": [f"serving {v} food", f"that serves {v} food", f"offering {v} food"],
            "clause": [f"serves {v} food", f"offers {v} cuisine", f"provides {v} food", f"sells {v} food"],
        }
    if slot == "priceRange":
        table = {
            "cheap": (
                ["cheap", "low-priced", "inexpensive"],
                ["with cheap prices", "in the cheap price range", "with a cheap price range"],
                ["has a cheap price range", "is cheap", "offers food at cheap prices"],
            ),
            "less than £20": (
                [],
                ["with prices less than £20", "with a price range of less than £20"],
                ["has a price range of less than £20", "costs less than £20", "has meals for less than £20"],
            ),
            "£20-25": (
                [],
                ["with a price range of £20-25", "in the £20-25 price range"],
                ["has a price range of £20-25", "has meals for £20-25", "charges £20-25"],
            ),
            "moderate": (
                ["moderately priced", "mid-priced"],
                ["with moderate prices", "in the moderate price range"],
                ["has a moderate price range", "is moderately priced", "has moderate prices"],
            ),
            "high": (
                ["expensive", "high-priced"],
                ["with high prices", "in the high price range"],
                ["has a high price range", "is expensive", "has high prices"],
            ),
            "more than £30": (
                [],
                ["with prices more than £30", "with a price range of more than £30"],
                ["costs more than £30", "has a price range of more than £30", "charges more than £30"],
            ),
        }
        adj, post, clause = table[v]
        return {"adj": adj, "post": post, "clause": clause}
    if slot == "customer rating":
        if "out of" in v:
            return {
                "adj": [],
                "post": [f"with a customer rating of {v}", f"rated {v} by customers", f"with a {v} rating"],
                "clause": [
                    f"has a customer rating of {v}",
                    f"is rated {v} by customers",
                    f"has received a {v} rating",
                    f"has a rating of {v}",
                ],
            }
        adj = {"low": "low-rated", "average": "average-rated", "high": "highly rated"}[v]
        return {
            "adj": [adj],
            "post": [f"with a {v} customer rating", f"with {v} ratings"],
            "clause": [
                f"has a {v} customer rating",
                f"is rated {v} by customers",
                f"has {v} ratings",
                f"has a {v} rating",
            ],
        }
    if slot == "area":
        if v == "city centre":
            post = ["in the city centre", "located in the city centre", "in the centre of the city"]
            clause = [
                "is located in the city centre",
                "is in the city centre",
                "can be found in the city centre",
            ]
        else:
            post = ["by the riverside", "in the riverside area", "on the riverside"]
            clause = [
                "is located by the riverside",
                "is in the riverside area",
                "can be found by the riverside",
            ]
        return {"adj": [], "post": post, "clause": clause}
    if slot == "familyFriendly":
        if v == "yes":
            return {
                "adj": ["family friendly", "kid friendly", "child friendly"],
                "post": ["that is family friendly", "that welcomes children"],
                "clause": ["is family friendly", "welcomes children", "is kid friendly", "allows children"],
            }
        return {
            "adj": ["adults only"],
            "post": ["that is not family friendly", "that does not allow children"],
            "clause": [
                "is not family friendly",
                "does not welcome children",
                "is not kid friendly",
                "is not child friendly",
            ],
        }
    if slot == "near":
        return {
            "adj": [],
            "post": [f"near {v}", f"close to {v}", f"located near {v}"],
            "clause": [
                f"is near {v}",
                f"is located close to {v}",
                f"can be found near {v}",
                f"is situated near {v}",
            ],
        }
    raise KeyError(slot)


def _join(items: Sequence[str]) -> str:
    items = list(items)
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def e2e_reference(mr: dict[str, str], rng: random.Random) -> str:
    """One reference text for an E2E meaning representation (slot -> value, ``name`` required)."""
    name = mr["name"]
    head = mr["eatType"] if "eatType" in mr else rng.choice(["place", "venue", "spot"])
    others = [s for s in mr if s not in ("name", "eatType")]
    rng.shuffle(others)
    forms = {s: _e2e_forms(s, mr[s]) for s in others}
    # Choose at most two slots to realise as pre-nominal adjectives (food first, as English prefers).
    adj_slots = [s for s in others if forms[s]["adj"] and rng.random() < 0.5][:2]
    adj_slots.sort(key=lambda s: s == "food")
    adjs = [rng.choice(forms[s]["adj"]) for s in adj_slots]
    rest = [s for s in others if s not in adj_slots]
    np_core = " ".join([*adjs, head]).strip()
    np_ = f"{article(np_core)} {np_core}"
    style = rng.randrange(4)
    if not rest:
        style = rng.choice([0, 2])
    if style == 0:  # one sentence, post-modifiers ("that ..." relatives last, where they read best)
        posts = sorted((rng.choice(forms[s]["post"]) for s in rest), key=lambda p: p.startswith("that"))
        text = f"{name} is {np_}" + (f" {_join(posts)}" if posts else "") + "."
    elif style == 1:  # a sentence, then "It ..." clauses
        k = rng.randint(0, min(1, len(rest) - 1))
        posts = [rng.choice(forms[s]["post"]) for s in rest[:k]]
        clauses = [rng.choice(forms[s]["clause"]) for s in rest[k:]]
        first = f"{name} is {np_}" + (f" {_join(posts)}" if posts else "") + "."
        subj = rng.choice(["It", "It", f"{name}", "This " + (head or "place")])
        text = f"{first} {subj} {_join(clauses)}."
    elif style == 2:  # "There is a ... called X ..."
        posts = [rng.choice(forms[s]["post"]) for s in rest]
        lead = rng.choice(["There is", "There is", "Here is"])
        called = rng.choice(["called", "named"])
        text = f"{lead} {np_} {called} {name}" + (f" {_join(posts)}" if posts else "") + "."
    else:  # fronted location or clause-only
        loc = [s for s in rest if s in ("area", "near")]
        if loc:
            s0 = loc[0]
            rest2 = [s for s in rest if s != s0]
            front = rng.choice(forms[s0]["post"])
            front = front[0].upper() + front[1:]
            clauses = [rng.choice(forms[s]["clause"]) for s in rest2]
            text = f"{front}, {name} is {np_}" + (f" that {_join(clauses)}" if clauses else "") + "."
        else:
            clauses = [rng.choice(forms[s]["clause"]) for s in rest]
            text = f"{name} is {np_} that {_join(clauses)}."
    return text


def e2e_mr_string(mr: dict[str, str]) -> str:
    """The E2E data set's MR notation: ``name[The Vaults], eatType[pub], ...`` in canonical slot order."""
    from .nlg_lexicon import E2E_SLOTS

    return ", ".join(f"{s}[{mr[s]}]" for s in E2E_SLOTS if s in mr)


# ---------------------------------------------------------------------------------------------------
# WebNLG
# ---------------------------------------------------------------------------------------------------
Triple = tuple[str, str, str]  # (subject, property, object), surface forms with spaces


def webnlg_sample(cat: Category, n_triples: int, rng: random.Random, pool: Pool) -> tuple[list[Triple], str]:
    """A star-shaped triple set about one new subject of `cat` (1-4 distinct properties).

    Returns the triples and the subject's gender ("" for things). With 3+ triples, one object that is a
    city may get a chained triple (``city | country | X``), as WebNLG inputs are small graphs, not
    only stars.
    """
    subj, gender = subject_name(cat.subject, rng, pool)
    n_props = min(n_triples, len(cat.props))
    props = rng.sample(list(cat.props), n_props)
    triples: list[Triple] = []
    for p in props:
        o = object_value(p.kind, rng, pool)
        triples.append((subj, p.name, o))
    if n_triples > n_props or (n_triples >= 3 and rng.random() < 0.3):
        for _i, (_s, p, o) in enumerate(triples):
            prop = next(x for x in cat.props if x.name == p)
            if prop.kind == "place" and len(triples) < max(n_triples, 2):
                triples.append((o, "country", object_value("country", rng, pool)))
                break
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
    subj = triples[0][0]
    main = [(p, o) for s, p, o in triples if s == subj]
    chained = [(s, p, o) for s, p, o in triples if s != subj]
    main = list(main)
    rng.shuffle(main)
    vps = [_vp(cat, p, o, rng) for p, o in main]
    pron = pronoun(cat, gender)
    style = rng.randrange(3) if len(vps) > 1 else 0
    if style == 0:
        sents = [f"{subj} {_join(vps)}."]
    elif style == 1:
        k = rng.randint(1, len(vps) - 1)
        second = rng.choice([pron, pron, subj])
        sents = [f"{subj} {_join(vps[:k])}.", f"{second} {_join(vps[k:])}."]
    else:
        sents = [
            f"{subj}, which {vps[0]}, {_join(vps[1:])}."
            if cat.pronoun != "person"
            else f"{subj}, who {vps[0]}, {_join(vps[1:])}."
        ]
    city_cat = CATEGORY_BY_NAME["City"]
    for s, p, o in chained:
        if rng.random() < 0.5:
            sents.append(f"{s} {_vp(city_cat, p, o, rng)}.")
        else:
            # attach as a relative clause to the first mention of the chained subject
            text = " ".join(sents)
            vp = _vp(city_cat, p, o, rng)
            for nxt in (".", ",", " and"):
                if f"{s}{nxt}" in text:
                    tail = {".": ".", ",": ",", " and": ", and"}[nxt]
                    text = text.replace(f"{s}{nxt}", f"{s}, which {vp}{tail}", 1)
                    break
            else:
                text += f" {s} {vp}."
            sents = [text]
    return " ".join(sents)


# ---------------------------------------------------------------------------------------------------
# XSum-like news stories
# ---------------------------------------------------------------------------------------------------
_DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_MONTHS = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)


class _Story:
    """Sentences of one story by role; the summary paraphrases the key event (never copies it)."""

    def __init__(self, key: str, summary: str, background: list[str], details: list[str]):
        self.key, self.summary, self.background, self.details = key, summary, background, details


def _company(rng: random.Random, pool: Pool) -> str:
    from .nlg_lexicon import places

    return f"{rng.choice(places(pool))} {rng.choice(['Foods', 'Engineering', 'Textiles', 'Logistics', 'Motors', 'Paper'])}"


def _story_closure(rng: random.Random, pool: Pool) -> _Story:
    from .nlg_lexicon import countries, people, places

    co, (town, town2, town3) = _company(rng, pool), rng.sample(places(pool), 3)
    fac = rng.choice(["factory", "warehouse", "call centre", "plant", "depot"])
    n, day, year = rng.randint(40, 900), rng.choice(_DAYS), rng.randint(1950, 2012)
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
    from .nlg_lexicon import people, places

    t1, t2 = rng.sample(places(pool), 2)
    team1 = f"{t1} {rng.choice(['Rovers', 'United', 'Athletic', 'City', 'Wanderers'])}"
    team2 = f"{t2} {rng.choice(['Rovers', 'United', 'Athletic', 'City', 'Wanderers'])}"
    (player, _), (player2, _), (manager, g) = rng.sample(people(pool), 3)
    a = rng.randint(2, 5)
    b = rng.randint(0, a - 1)
    comp = rng.choice(["Regional Cup", "League Trophy", "County Shield"])
    stage = rng.choice(["semi-final", "quarter-final", "final"])
    day = rng.choice(_DAYS)
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
    from .nlg_lexicon import people, places

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


_FINDINGS = (
    ("regular walking", "lowers the risk of heart disease", "can lower the risk of heart disease"),
    ("sleeping less than six hours a night", "harms memory", "may damage memory"),
    ("eating more fibre", "improves mood", "may lift mood"),
    ("learning a second language", "slows mental decline", "may slow mental decline in old age"),
    ("spending time in parks", "reduces stress", "can cut stress levels"),
    ("drinking sugary drinks", "raises the risk of diabetes", "may increase the risk of diabetes"),
)


def _story_research(rng: random.Random, pool: Pool) -> _Story:
    from .nlg_lexicon import people, places

    uni = f"University of {rng.choice(places(pool))}"
    subj, effect, hedged = rng.choice(_FINDINGS)
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
    from .nlg_lexicon import people, places, regions

    town, region = rng.choice(places(pool)), rng.choice(regions(pool))
    n, k, day = rng.randint(20, 600), rng.randint(3, 40), rng.choice(_DAYS)
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
    from .nlg_lexicon import people

    org, org2 = _company(rng, pool), _company(rng, pool)
    (person, _), (prev, _) = rng.sample(people(pool), 2)
    day, m1, m2 = rng.choice(_DAYS), rng.choice(_MONTHS), rng.choice(_MONTHS)
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
    from .nlg_lexicon import countries, people

    (person, _), (prev, _), (rival, _) = rng.sample(people(pool), 3)
    party = f"{rng.choice(countries(pool))} {rng.choice(['Liberal Party', 'Progress Party', 'Green Union', 'Civic Party'])}"
    pct = rng.randint(51, 80)
    month = rng.choice(_MONTHS)
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
