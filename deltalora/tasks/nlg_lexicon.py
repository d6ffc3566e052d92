"""Vocabulary shared by the NLG proxies and the embedded pre-training corpus.

Why one module: the proxies (E2E, WebNLG, XSum stand-ins) and the pre-training corpus of the embedded
GPT-2/BART must speak the same domain language (otherwise fine-tuning has nothing to build on), yet no
evaluation sentence may appear in the corpus (otherwise pre-training leaks the test set). Both follow
from one rule implemented here: every name pool (places, people, organisations, restaurants) is split
into a ``proxy`` half and a ``corpus`` half that share no string. The proxies draw names only from the
``proxy`` half and the corpus only from the ``corpus`` half; the corpus builder also drops any sentence
that names no corpus entity, so a corpus sentence can never equal an evaluation sentence.

Nothing here draws random numbers; callers pass a ``random.Random``.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from functools import cache
from typing import Literal

Pool = Literal["proxy", "corpus"]

# ---------------------------------------------------------------------------------------------------
# E2E: the 8 slot types and their value sets as they occur in the E2E NLG Challenge data
# (Novikova et al. 2017; slot order as in the dataset's MR strings).
# ---------------------------------------------------------------------------------------------------
E2E_SLOTS: tuple[str, ...] = (
    "name",
    "eatType",
    "food",
    "priceRange",
    "customer rating",
    "area",
    "familyFriendly",
    "near",
)
E2E_VALUES: dict[str, tuple[str, ...]] = {
    "eatType": ("coffee shop", "pub", "restaurant"),
    "food": ("Chinese", "English", "Fast food", "French", "Indian", "Italian", "Japanese"),
    "priceRange": ("cheap", "less than £20", "£20-25", "moderate", "high", "more than £30"),
    "customer rating": ("1 out of 5", "3 out of 5", "5 out of 5", "low", "average", "high"),
    "area": ("city centre", "riverside"),
    "familyFriendly": ("yes", "no"),
}
# Venue names of the real data set: used by the proxy (pool "proxy") only.
E2E_REAL_NAMES: tuple[str, ...] = (
    "Alimentum",
    "Aromi",
    "Bibimbap House",
    "Blue Spice",
    "Browns Cambridge",
    "Clowns",
    "Cocum",
    "Cotto",
    "Fitzbillies",
    "Giraffe",
    "Green Man",
    "Loch Fyne",
    "Midsummer House",
    "Strada",
    "Taste of Cambridge",
    "The Cambridge Blue",
    "The Cricketers",
    "The Dumpling Tree",
    "The Eagle",
    "The Golden Curry",
    "The Golden Palace",
    "The Mill",
    "The Olive Grove",
    "The Phoenix",
    "The Plough",
    "The Punter",
    "The Twenty Two",
    "The Vaults",
    "The Waterman",
    "The Wrestlers",
    "Travellers Rest Beefeater",
    "Wildwood",
    "Zizzi",
)
E2E_REAL_NEAR: tuple[str, ...] = (
    "All Bar One",
    "Avalon",
    "Burger King",
    "Café Adriatic",
    "Café Brazil",
    "Café Rouge",
    "Café Sicilia",
    "Clare Hall",
    "Crowne Plaza Hotel",
    "Express by Holiday Inn",
    "Rainbow Vegetarian Café",
    "Raja Indian Cuisine",
    "Ranch",
    "The Bakers",
    "The Portland Arms",
    "The Rice Boat",
    "The Six Bells",
    "The Sorrento",
    "Yippee Noodle Bar",
)
# Invented venue names for the pre-training corpus (pool "corpus"); none occurs in the lists above.
_CORPUS_VENUE_HEADS = (
    "Copper Kettle",
    "Silver Spoon",
    "Red Lantern",
    "Old Granary",
    "Blue Heron",
    "Brass Monkey",
    "Lazy Otter",
    "Salt House",
    "Fig Tree",
    "Hidden Door",
    "Crooked Spire",
    "Tin Drum",
    "Wild Thyme",
    "Lemon Grove",
    "Iron Gate",
    "Paper Moon",
    "Black Swan",
    "Saffron Room",
    "Oak Barrel",
    "Green Door",
    "Jade Garden",
    "Rusty Anchor",
    "Painted Fox",
    "Golden Hind",
    "Cork and Fork",
    "Little Pepper",
    "Honey Pot",
    "Stone Oven",
    "Velvet Fig",
    "Willow Tree",
)


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
_ONSETS = (
    "Al",
    "Bren",
    "Cor",
    "Dal",
    "El",
    "Fen",
    "Gar",
    "Hal",
    "Is",
    "Jor",
    "Kel",
    "Lor",
    "Mar",
    "Nor",
    "Or",
    "Pel",
    "Quen",
    "Ros",
    "Sel",
    "Tor",
    "Ul",
    "Val",
    "Wes",
    "Yar",
    "Zan",
    "Ash",
    "Brom",
    "Cal",
    "Dun",
    "Ever",
)
_CODAS = (
    "moor",
    "holt",
    "bury",
    "ford",
    "wick",
    "stead",
    "ton",
    "vale",
    "mere",
    "dale",
    "port",
    "field",
    "gate",
    "haven",
    "bridge",
    "crest",
)
_FIRST_M = (
    "Adam",
    "Bruno",
    "Carl",
    "Daniel",
    "Edgar",
    "Felix",
    "Gregor",
    "Hugo",
    "Ivan",
    "Jonas",
    "Karl",
    "Leon",
    "Marco",
    "Nils",
    "Oscar",
    "Pavel",
    "Rafael",
    "Simon",
    "Tomas",
    "Viktor",
)
_FIRST_F = (
    "Alma",
    "Beatrice",
    "Clara",
    "Dora",
    "Elena",
    "Frida",
    "Greta",
    "Helena",
    "Ines",
    "Julia",
    "Katja",
    "Lena",
    "Maria",
    "Nora",
    "Olga",
    "Paula",
    "Rosa",
    "Sofia",
    "Tilda",
    "Vera",
)
_LAST = (
    "Abernathy",
    "Bellamy",
    "Carrow",
    "Delacroix",
    "Engstrom",
    "Falkner",
    "Gorski",
    "Holloway",
    "Ibarra",
    "Jansen",
    "Kowalczyk",
    "Lindqvist",
    "Marchetti",
    "Novak",
    "Okafor",
    "Petrakis",
    "Quinlan",
    "Rasmussen",
    "Santoro",
    "Thorne",
    "Umbers",
    "Varga",
    "Whitcombe",
    "Yilmaz",
    "Zeller",
    "Albrecht",
    "Brennan",
    "Castell",
    "Drummond",
    "Esposito",
)
_COUNTRIES = (
    "Norland",
    "Estavia",
    "Veldoria",
    "Kastria",
    "Montavia",
    "Sorrenia",
    "Baltara",
    "Ostrevia",
    "Lusania",
    "Caldera",
    "Ruvenia",
    "Tessaly",
    "Varnholm",
    "Ardenia",
    "Belmora",
    "Drovania",
)
_REGIONS = (
    "North Ridge",
    "Lake District",
    "Eastern Plains",
    "Highlands",
    "Western Coast",
    "Southern Hills",
    "Amber Valley",
    "Iron Coast",
    "Green Marches",
    "Salt Flats",
    "Pine Uplands",
    "Red Cliffs",
)


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
LITERALS: dict[str, tuple[str, ...]] = {
    "occupation": ("test pilot", "engineer", "physician", "geologist", "naval officer"),
    "course": ("main course", "dessert", "starter", "side dish"),
    "ingredient": (
        "rice",
        "lentils",
        "smoked fish",
        "goat cheese",
        "chickpeas",
        "sweet peppers",
        "wild mushrooms",
        "pork belly",
    ),
    "league": ("Premier Division", "First League", "Coastal League", "National Conference"),
    "position": ("midfielder", "defender", "goalkeeper", "striker", "winger"),
    "office": (
        "Minister of Finance",
        "Mayor",
        "Governor",
        "Speaker of the Assembly",
        "Minister of Transport",
    ),
    "mission": ("Orion 4", "Vega 2", "Polaris 7", "Helios 3", "Aquila 5", "Lyra 1"),
    "style": ("Gothic Revival", "Art Deco", "Brutalist", "Neoclassical", "Modernist"),
}


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


_P = Prop
_BIRTH_PLACE = _P(
    "birthPlace", "place", ("was born in {o}", "is a native of {o}", "was born in the city of {o}")
)
_BIRTH_DATE = _P(
    "birthDate", "date", ("was born on {o}", "has a birth date of {o}", "was born on the date {o}")
)
_NATIONALITY = _P("nationality", "country", ("is a national of {o}", "is from {o}", "holds {o} citizenship"))
_ALMA = _P("almaMater", "university", ("graduated from {o}", "studied at {o}", "is an alumnus of {o}"))
_COUNTRY = _P("country", "country", ("is in {o}", "is located in {o}", "can be found in {o}"))
_LOCATION = _P("location", "place", ("is located in {o}", "is in {o}", "stands in {o}"))

CATEGORIES: tuple[Category, ...] = (
    Category(
        "Airport",
        "airport",
        "it",
        (
            _P("cityServed", "place", ("serves the city of {o}", "serves {o}", "is the airport of {o}")),
            _LOCATION,
            _P(
                "runwayLength",
                "num:runway",
                ("has a runway length of {o}", "has a runway that is {o} long", "has a runway of length {o}"),
            ),
            _P(
                "elevationAboveTheSeaLevel",
                "num:elev",
                (
                    "is {o} metres above sea level",
                    "has an elevation of {o} metres",
                    "lies at {o} metres above sea level",
                ),
            ),
            _P(
                "operatingOrganisation",
                "org",
                ("is operated by {o}", "is run by {o}", "has {o} as its operator"),
            ),
            _COUNTRY,
        ),
    ),
    Category(
        "Astronaut",
        "person",
        "person",
        (
            _BIRTH_PLACE,
            _BIRTH_DATE,
            _NATIONALITY,
            _ALMA,
            _P(
                "mission",
                "lit:mission",
                ("was a crew member of {o}", "flew on the {o} mission", "took part in the {o} mission"),
            ),
            _P(
                "occupation",
                "lit:occupation",
                ("worked as a {o}", "was a {o} by profession", "served as a {o}"),
            ),
            _P(
                "selectedByNasa",
                "year",
                ("was selected by NASA in {o}", "joined NASA in {o}", "was chosen by NASA in {o}"),
            ),
        ),
    ),
    Category(
        "Building",
        "building",
        "it",
        (
            _P(
                "architect",
                "person",
                ("was designed by {o}", "has {o} as its architect", "was the work of the architect {o}"),
            ),
            _LOCATION,
            _P(
                "floorCount",
                "num:floors",
                ("has {o} floors", "has a floor count of {o}", "is {o} floors high"),
            ),
            _P("completionDate", "year", ("was completed in {o}", "was finished in {o}", "opened in {o}")),
            _P("owner", "org", ("is owned by {o}", "belongs to {o}", "is the property of {o}")),
            _P(
                "architecturalStyle",
                "lit:style",
                ("is built in the {o} style", "is an example of {o} architecture", "has a {o} design"),
            ),
        ),
    ),
    Category(
        "City",
        "place",
        "it",
        (
            _COUNTRY,
            _P("leaderName", "person", ("is led by {o}", "has {o} as its leader", "is governed by {o}")),
            _P(
                "populationTotal",
                "num:pop",
                ("has a population of {o}", "is home to {o} people", "has {o} inhabitants"),
            ),
            _P("isPartOf", "region", ("is part of {o}", "belongs to the region of {o}", "lies within {o}")),
            _P(
                "areaTotal",
                "num:area",
                (
                    "has a total area of {o} square kilometres",
                    "covers an area of {o} square kilometres",
                    "has an area of {o} square kilometres",
                ),
            ),
        ),
    ),
    Category(
        "Food",
        "food",
        "it",
        (
            _P("country", "country", ("comes from {o}", "is a dish from {o}", "originates from {o}")),
            _P(
                "mainIngredient",
                "lit:ingredient",
                ("is made with {o}", "has {o} as its main ingredient", "contains {o}"),
            ),
            _P("course", "lit:course", ("is served as a {o}", "is eaten as a {o}", "is a {o}")),
            _P(
                "region",
                "region",
                ("is popular in {o}", "is found in the region of {o}", "is typical of {o}"),
            ),
        ),
    ),
    Category(
        "SportsTeam",
        "team",
        "it",
        (
            _P(
                "ground",
                "stadium",
                ("plays at {o}", "has its home ground at {o}", "plays its home games at {o}"),
            ),
            _P("league", "lit:league", ("plays in the {o}", "competes in the {o}", "is a member of the {o}")),
            _P("manager", "person", ("is managed by {o}", "has {o} as its manager", "is coached by {o}")),
            _P(
                "numberOfMembers",
                "num:members",
                ("has {o} members", "has a membership of {o}", "counts {o} members"),
            ),
            _LOCATION,
        ),
    ),
    Category(
        "University",
        "university",
        "it",
        (
            _P("city", "place", ("is in the city of {o}", "is located in {o}", "is based in {o}")),
            _COUNTRY,
            _P(
                "numberOfStudents",
                "num:students",
                ("has {o} students", "is attended by {o} students", "has a student body of {o}"),
            ),
            _P("established", "year", ("was established in {o}", "was founded in {o}", "dates back to {o}")),
            _P(
                "academicStaffSize",
                "num:staff",
                ("has {o} academic staff", "employs {o} academic staff", "has an academic staff of {o}"),
            ),
        ),
    ),
    # Categories held out as "unseen" by default: they share some properties with the seen ones
    # (birthPlace, birthDate, nationality, almaMater, location) and add new ones, as in WebNLG 2017.
    Category(
        "Athlete",
        "person",
        "person",
        (
            _BIRTH_PLACE,
            _BIRTH_DATE,
            _NATIONALITY,
            _P("club", "team", ("plays for {o}", "is a player at {o}", "represents {o}")),
            _P(
                "height",
                "num:height",
                ("is {o} metres tall", "has a height of {o} metres", "stands {o} metres tall"),
            ),
            _P("position", "lit:position", ("plays as a {o}", "plays in the {o} position", "is a {o}")),
        ),
    ),
    Category(
        "Politician",
        "person",
        "person",
        (
            _BIRTH_PLACE,
            _BIRTH_DATE,
            _ALMA,
            _P("party", "party", ("is a member of the {o}", "belongs to the {o}", "represents the {o}")),
            _P("office", "lit:office", ("served as {o}", "held the office of {o}", "worked as {o}")),
            _P(
                "successor",
                "person",
                ("was succeeded by {o}", "was followed in office by {o}", "had {o} as a successor"),
            ),
        ),
    ),
    Category(
        "CelestialBody",
        "body",
        "it",
        (
            _P(
                "discoverer",
                "person",
                ("was discovered by {o}", "was found by {o}", "has {o} as its discoverer"),
            ),
            _P(
                "discovered",
                "date",
                ("was discovered on {o}", "was first observed on {o}", "was found on {o}"),
            ),
            _P(
                "orbitalPeriod",
                "num:orbit",
                (
                    "has an orbital period of {o} days",
                    "orbits in {o} days",
                    "completes an orbit every {o} days",
                ),
            ),
            _P(
                "apoapsis",
                "num:apo",
                (
                    "has an apoapsis of {o} kilometres",
                    "has an apoapsis of {o} km",
                    "reaches an apoapsis of {o} kilometres",
                ),
            ),
            _P(
                "averageSpeed",
                "num:speed",
                (
                    "has an average speed of {o} km per second",
                    "travels at an average speed of {o} km per second",
                    "moves at {o} km per second on average",
                ),
            ),
        ),
    ),
)
SEEN_CATEGORIES_DEFAULT: tuple[str, ...] = (
    "Airport",
    "Astronaut",
    "Building",
    "City",
    "Food",
    "SportsTeam",
    "University",
)
UNSEEN_CATEGORIES_DEFAULT: tuple[str, ...] = ("Athlete", "Politician", "CelestialBody")
CATEGORY_BY_NAME: dict[str, Category] = {c.name: c for c in CATEGORIES}

_SUFFIX = {
    "airport": ("International Airport", "Regional Airport", "Airport"),
    "building": ("Tower", "Hall", "House", "Centre", "Library"),
    "food": ("stew", "pie", "dumplings", "flatbread", "soup", "tart"),
    "team": ("Rovers", "United", "Athletic", "City", "Wanderers"),
    "stadium": ("Park", "Stadium", "Arena", "Ground"),
    "org": ("Holdings", "Airways", "Group", "Authority", "Trust"),
    "party": ("Liberal Party", "Progress Party", "Green Union", "Labour Alliance", "Civic Party"),
    "body": ("Minor", "Major", "Prime"),
}


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
        lo, hi, fmt = {
            "runway": (1200, 4200, "{:.1f}"),
            "elev": (5, 900, "{:d}"),
            "floors": (4, 80, "{:d}"),
            "pop": (12000, 900000, "{:d}"),
            "area": (20, 900, "{:.1f}"),
            "members": (800, 60000, "{:d}"),
            "students": (3000, 45000, "{:d}"),
            "staff": (300, 5000, "{:d}"),
            "height": (165, 205, "h"),
            "orbit": (200, 3000, "{:.2f}"),
            "apo": (100000, 900000, "{:d}"),
            "speed": (5, 40, "{:.1f}"),
        }[unit]
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
