"""Embedded GLUE proxies: small, deterministic, template-generated stand-ins for the 8 GLUE tasks.

Why proxies: the ``default`` profile must run with no network and no GPU, yet exercise exactly the
code path of the real benchmark (same columns, label ids, metrics, ``datasets`` loading). Each proxy
poses the *kind* of decision its task poses (sentiment, acceptability, paraphrase, duplicate questions,
graded similarity, 3-way and 2-way entailment, answer containment) in short, ordinary English that a
pretrained BERT already knows.

Design rules (details and rationale per task in ``docs/glue_proxies.md``):

* **Determinism.** Every generator draws from its own ``random.Random`` seeded with a string built from
  (task, split, seed); no global RNG is touched, and Python's string seeding does not depend on
  ``PYTHONHASHSEED``. Same arguments, byte-identical rows.
* **Held-out vocabulary.** Every content-word pool (adjectives, nouns, names, verbs, synonym pairs...)
  is split into a ``train`` part and a disjoint ``val`` part (see :data:`VOCAB`). Validation examples
  only use ``val`` words, so a model must transfer through pretrained word knowledge rather than
  memorise training words. MNLI's ``validation_mismatched`` additionally uses sentence templates
  (a different "genre") that never occur in training.
* **Difficulty.** Negation, contrast clauses ("but", "although"), agreement attractors, hard negatives
  with high lexical overlap, role swaps and distractor sentences keep scores off the ceiling; a small
  documented fraction of *training* labels is flipped (:data:`TRAIN_LABEL_NOISE`), validation labels
  are clean.
* **Length.** Sentences are short: a single sentence stays well under 32 MiniLM tokens and a pair under
  64, so nothing is truncated at the embedded profile's max lengths.

Bump :data:`GENERATOR_VERSION` whenever the output for some arguments changes.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from typing import Any

GENERATOR_VERSION = "1"

#: Fraction of training labels replaced by a different label (uniformly); validation stays clean.
TRAIN_LABEL_NOISE: dict[str, float] = {
    "cola": 0.03,
    "sst2": 0.03,
    "mrpc": 0.03,
    "qqp": 0.03,
    "mnli": 0.03,
    "qnli": 0.03,
    "rte": 0.03,
}
#: Standard deviation of the Gaussian "annotator" noise added to STS-B scores (both splits).
STSB_SCORE_NOISE = 0.35

Row = dict[str, Any]
Pool = dict[str, tuple[Any, ...]]  # {"train": (...), "val": (...)}

# ---------------------------------------------------------------------------------------------------
# Vocabulary. Each pool: train part / val part, disjoint. Words are common English, mostly single
# WordPiece tokens in the BERT uncased vocabulary, so pretrained embeddings carry their meaning.
# ---------------------------------------------------------------------------------------------------

VOCAB: dict[str, dict[str, Pool]] = {
    "sst2": {
        "pos_adj": {
            "train": (
                "good",
                "great",
                "wonderful",
                "excellent",
                "enjoyable",
                "charming",
                "brilliant",
                "beautiful",
                "funny",
                "moving",
                "clever",
                "fresh",
                "lovely",
                "impressive",
            ),
            "val": (
                "superb",
                "delightful",
                "terrific",
                "fantastic",
                "marvelous",
                "engaging",
                "touching",
                "witty",
                "gorgeous",
                "splendid",
                "stunning",
                "pleasant",
            ),
        },
        "neg_adj": {
            "train": (
                "bad",
                "boring",
                "awful",
                "terrible",
                "dull",
                "weak",
                "stupid",
                "ugly",
                "annoying",
                "messy",
                "poor",
                "painful",
                "lazy",
                "bland",
            ),
            "val": (
                "dreadful",
                "horrible",
                "pointless",
                "shallow",
                "sloppy",
                "lifeless",
                "clumsy",
                "silly",
                "ridiculous",
                "disappointing",
                "predictable",
                "awkward",
            ),
        },
        "noun": {
            "train": (
                "movie",
                "film",
                "plot",
                "script",
                "acting",
                "cast",
                "ending",
                "story",
                "music",
                "dialogue",
                "director",
            ),
            "val": (
                "picture",
                "screenplay",
                "performance",
                "finale",
                "premise",
                "soundtrack",
                "sequel",
                "camera",
                "lead",
                "humor",
            ),
        },
    },
    "cola": {
        # (singular, plural)
        "subject": {
            "train": (
                ("boy", "boys"),
                ("girl", "girls"),
                ("teacher", "teachers"),
                ("child", "children"),
                ("man", "men"),
                ("student", "students"),
                ("farmer", "farmers"),
                ("dog", "dogs"),
                ("king", "kings"),
            ),
            "val": (
                ("woman", "women"),
                ("doctor", "doctors"),
                ("soldier", "soldiers"),
                ("singer", "singers"),
                ("baby", "babies"),
                ("nurse", "nurses"),
                ("cat", "cats"),
                ("queen", "queens"),
            ),
        },
        # (base, 3sg, past, participle, objects); objects are count nouns, so a missing article is an error
        "verb": {
            "train": (
                ("eat", "eats", "ate", "eaten", ("apple", "sandwich", "egg")),
                ("write", "writes", "wrote", "written", ("letter", "poem", "song")),
                ("see", "sees", "saw", "seen", ("bird", "car", "star")),
                ("take", "takes", "took", "taken", ("bag", "pen", "book")),
                ("drive", "drives", "drove", "driven", ("truck", "bus", "car")),
                ("break", "breaks", "broke", "broken", ("cup", "glass", "plate")),
                ("steal", "steals", "stole", "stolen", ("ring", "watch", "coin")),
                ("throw", "throws", "threw", "thrown", ("ball", "stone", "stick")),
            ),
            "val": (
                ("bite", "bites", "bit", "bitten", ("finger", "hand", "pear")),
                ("ride", "rides", "rode", "ridden", ("horse", "bike", "train")),
                ("hide", "hides", "hid", "hidden", ("key", "box", "gift")),
                ("choose", "chooses", "chose", "chosen", ("dress", "hat", "card")),
                ("draw", "draws", "drew", "drawn", ("map", "picture", "line")),
                ("wear", "wears", "wore", "worn", ("coat", "shirt", "jacket")),
                ("forget", "forgets", "forgot", "forgotten", ("name", "number", "story")),
            ),
        },
        "attractor": {
            "train": (("table", "tables"), ("house", "houses"), ("tree", "trees"), ("door", "doors")),
            "val": (("window", "windows"), ("garden", "gardens"), ("river", "rivers"), ("wall", "walls")),
        },
    },
    "mrpc": {
        "entity": {
            "train": (
                "the company",
                "the bank",
                "the city",
                "the hospital",
                "the school",
                "the airline",
                "the museum",
            ),
            "val": ("the firm", "the university", "the club", "the council", "the factory", "the agency"),
        },
        # (verb past, train-side synonym pairs are disjoint from val ones), object nouns
        "event": {
            "train": (
                ("bought", "purchased", "sold", "buildings"),
                ("hired", "employed", "fired", "workers"),
                ("opened", "launched", "closed", "stores"),
                ("built", "constructed", "destroyed", "houses"),
            ),
            "val": (
                ("acquired", "obtained", "lost", "offices"),
                ("recruited", "enlisted", "dismissed", "staff"),
                ("started", "began", "ended", "programs"),
                ("repaired", "fixed", "damaged", "bridges"),
            ),
        },
        "day": {
            "train": ("monday", "tuesday", "wednesday"),
            "val": ("thursday", "friday", "saturday", "sunday"),
        },
        "number": {
            "train": ("two", "three", "five", "ten", "twenty"),
            "val": ("four", "six", "eight", "twelve", "fifty"),
        },
    },
    "qqp": {
        "skill": {
            "train": (
                "python",
                "java",
                "guitar",
                "piano",
                "spanish",
                "french",
                "chess",
                "cooking",
                "swimming",
                "drawing",
            ),
            "val": (
                "german",
                "violin",
                "drums",
                "photography",
                "math",
                "tennis",
                "painting",
                "coding",
                "italian",
            ),
        },
        "country": {
            "train": ("france", "spain", "japan", "brazil", "egypt", "canada"),
            "val": ("italy", "germany", "china", "mexico", "india", "kenya"),
        },
        "thing": {
            "train": (("iphone", "android"), ("coffee", "tea"), ("cats", "dogs"), ("linux", "windows")),
            "val": (("netflix", "youtube"), ("beer", "wine"), ("trains", "planes"), ("summer", "winter")),
        },
        "goal": {
            "train": ("lose weight", "sleep well", "make money", "find a job"),
            "val": ("save money", "stop smoking", "build muscle", "study faster"),
        },
    },
    "stsb": {
        # (word, synonym)
        "person": {
            "train": (("man", "guy"), ("woman", "lady"), ("boy", "kid"), ("girl", "young girl")),
            "val": (("student", "pupil"), ("child", "little kid"), ("dog", "puppy"), ("cat", "kitten")),
        },
        "action": {
            "train": (
                ("playing", "strumming", "guitar"),
                ("cutting", "slicing", "onion"),
                ("riding", "driving", "bike"),
                ("eating", "having", "meal"),
            ),
            "val": (
                ("reading", "studying", "book"),
                ("cooking", "preparing", "dinner"),
                ("painting", "coloring", "wall"),
                ("washing", "cleaning", "car"),
            ),
        },
        "place": {
            "train": ("park", "kitchen", "street", "beach"),
            "val": ("garden", "room", "road", "field"),
        },
    },
    "mnli": {
        "person": {
            "train": ("doctor", "teacher", "farmer", "pilot", "lawyer", "singer", "student"),
            "val": ("nurse", "soldier", "chef", "driver", "writer", "actor", "banker"),
        },
        # (past, base, participle, object, hypernym-object)
        "verb": {
            "train": (
                ("bought", "buy", "bought", "car", "vehicle"),
                ("painted", "paint", "painted", "fence", "structure"),
                ("ate", "eat", "eaten", "apple", "fruit"),
                ("read", "read", "read", "novel", "book"),
            ),
            "val": (
                ("sold", "sell", "sold", "truck", "vehicle"),
                ("fixed", "fix", "fixed", "roof", "structure"),
                ("cooked", "cook", "cooked", "salmon", "fish"),
                ("wrote", "write", "written", "poem", "text"),
            ),
        },
        "place": {
            "train": ("in the city", "at the market", "near the river", "at school"),
            "val": ("in the village", "at the station", "near the lake", "at home"),
        },
        "extra": {
            "train": ("for his mother", "because it was cheap", "in the morning", "with a friend"),
            "val": ("for her brother", "because it was old", "at night", "with a neighbor"),
        },
        # mismatched genre: organisation reports
        "org": {
            "train": ("the agency",),
            "val": ("the ministry", "the committee", "the department", "the council"),
        },
        "report": {
            "train": (("hired", "hire", "workers"),),
            "val": (
                ("approved", "approve", "plans"),
                ("funded", "fund", "projects"),
                ("closed", "close", "offices"),
                ("reviewed", "review", "contracts"),
            ),
        },
    },
    "qnli": {
        "name": {
            "train": ("anna", "tom", "maria", "david", "sarah", "peter", "laura"),
            "val": ("john", "emma", "james", "lucy", "paul", "julia", "mark"),
        },
        # (base, past, object)
        "event": {
            "train": (
                ("paint", "painted", "house"),
                ("sell", "sold", "farm"),
                ("open", "opened", "shop"),
                ("build", "built", "bridge"),
                ("write", "wrote", "book"),
            ),
            "val": (
                ("buy", "bought", "boat"),
                ("design", "designed", "church"),
                ("found", "founded", "school"),
                ("record", "recorded", "album"),
                ("visit", "visited", "museum"),
            ),
        },
        "city": {
            "train": ("paris", "london", "berlin", "rome", "boston"),
            "val": ("madrid", "vienna", "dublin", "chicago", "tokyo"),
        },
        "year": {
            "train": ("1990", "1995", "2001", "2008", "2012"),
            "val": ("1985", "1998", "2004", "2010", "2015"),
        },
        "reason": {
            "train": ("to earn money", "to help his family"),
            "val": ("to pay a debt", "to please her parents"),
        },
    },
    "rte": {
        "name": {
            "train": ("smith", "garcia", "miller", "brown", "wilson", "taylor"),
            "val": ("johnson", "lopez", "clark", "lewis", "walker", "young"),
        },
        "city": {
            "train": ("paris", "london", "berlin", "rome", "boston", "sydney"),
            "val": ("madrid", "vienna", "dublin", "chicago", "tokyo", "toronto"),
        },
        "job": {
            "train": ("doctor", "lawyer", "teacher", "pilot"),
            "val": ("nurse", "banker", "chef", "judge"),
        },
        "company": {
            "train": ("apple", "google", "nokia", "ford"),
            "val": ("sony", "intel", "boeing", "honda"),
        },
        "number": {"train": ("two", "five", "ten"), "val": ("three", "seven", "nine")},
        "event": {
            "train": ("concert", "match", "parade", "festival"),
            "val": ("show", "race", "fair", "game"),
        },
    },
}


#: Function words inside multi-word pool entries ("find a job", "the bank"); they also occur in
#: templates of both splits and are not part of the held-out vocabulary.
FUNCTION_WORDS = frozenset(
    {
        "a",
        "an",
        "the",
        "to",
        "for",
        "his",
        "her",
        "in",
        "at",
        "near",
        "with",
        "it",
        "was",
        "because",
        "of",
        "and",
    }
)


def held_out_words(task: str) -> dict[str, tuple[frozenset[str], frozenset[str]]]:
    """Per pool, the (train-only, val-only) sets of content words; disjoint by construction.

    Tuples in a pool (word forms, synonym pairs, verb paradigms) are flattened to their string members,
    multi-word strings are split into words, :data:`FUNCTION_WORDS` are dropped, and a word listed on
    both sides of a pool (a shared hypernym such as "vehicle") belongs to neither set. Used by the tests
    and the docs to verify that no validation-only word appears in training text and vice versa.
    """

    def words(items: Sequence[Any]) -> set[str]:
        out: set[str] = set()
        for item in items:
            if isinstance(item, str):
                out.update(w for w in item.split() if w not in FUNCTION_WORDS)
            else:
                out |= words(item)
        return out

    result: dict[str, tuple[frozenset[str], frozenset[str]]] = {}
    for pool_name, pool in VOCAB[task].items():
        tr, va = words(pool["train"]), words(pool["val"])
        result[pool_name] = (frozenset(tr - va), frozenset(va - tr))
    return result


# ---------------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------------


def _a(word: str) -> str:
    """Indefinite article + word ("an apple", "a car")."""
    return ("an " if word[0] in "aeiou" else "a ") + word


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def _name(text: str) -> str:
    return " ".join(w.capitalize() for w in text.split())


def _choose_label(rng: random.Random, weights: Sequence[float]) -> int:
    return rng.choices(range(len(weights)), weights=weights, k=1)[0]


class _Words:
    """The words one split may use: ``w.pick("noun")`` draws from this split's part of a pool."""

    def __init__(self, task: str, part: str, rng: random.Random) -> None:
        self.pools = VOCAB[task]
        self.part = part
        self.rng = rng

    def all(self, pool: str) -> tuple[Any, ...]:
        return self.pools[pool][self.part]

    def pick(self, pool: str) -> Any:
        return self.rng.choice(self.all(pool))

    def two(self, pool: str) -> tuple[Any, Any]:
        a, b = self.rng.sample(list(self.all(pool)), 2)
        return a, b


# ---------------------------------------------------------------------------------------------------
# SST-2: sentiment with negation and contrast
# ---------------------------------------------------------------------------------------------------

_SST2_SIMPLE = {
    "train": (
        "the {n} was {adj} .",
        "what {a_adj} {n} !",
        "i thought the {n} was {adj} .",
        "{a_adj} {n} , from start to finish .",
    ),
    "val": ("the {n} is {adj} .", "such {a_adj} {n} .", "i found the {n} {adj} .", "overall , {a_adj} {n} ."),
}
_SST2_NEG = {
    "train": ("the {n} was not {adj} .", "i would not call the {n} {adj} .", "the {n} was never {adj} ."),
    "val": ("the {n} is not {adj} .", "nobody would find the {n} {adj} .", "the {n} was hardly {adj} ."),
}
_SST2_CONTRAST = {
    "train": (
        "the {n1} was {adj1} , but the {n2} was {adj2} .",
        "although the {n1} was {adj1} , the {n2} was {adj2} .",
    ),
    "val": (
        "the {n1} is {adj1} , but the {n2} is {adj2} .",
        "even though the {n1} is {adj1} , the {n2} is {adj2} .",
    ),
}


def _sst2(rng: random.Random, part: str) -> Row:
    w = _Words("sst2", part, rng)
    label = _choose_label(rng, (0.45, 0.55))  # real SST-2 validation is about 51% positive

    def adj(polarity: int) -> str:
        return w.pick("pos_adj" if polarity == 1 else "neg_adj")

    kind = rng.random()
    if kind < 0.55:  # plain statement
        a = adj(label)
        text = rng.choice(_SST2_SIMPLE[part]).format(n=w.pick("noun"), adj=a, a_adj=_a(a))
    elif kind < 0.75:  # negated adjective of the opposite polarity
        text = rng.choice(_SST2_NEG[part]).format(n=w.pick("noun"), adj=adj(1 - label))
    else:  # contrast: the clause after "but"/the main clause decides
        n1, n2 = w.two("noun")
        first = adj(1 - label)
        if kind < 0.95:
            second_tpl = "{adj2}"
            second = adj(label)
        else:  # the deciding clause is itself negated
            second_tpl = "not {adj2}"
            second = adj(1 - label)
        tpl = rng.choice(_SST2_CONTRAST[part]).replace("{adj2}", second_tpl)
        text = tpl.format(n1=n1, n2=n2, adj1=first, adj2=second)
    return {"sentence": text, "label": label}


# ---------------------------------------------------------------------------------------------------
# CoLA: acceptability; errors are agreement (with attractors), verb form, word order, determiner
# ---------------------------------------------------------------------------------------------------


def _cola(rng: random.Random, part: str) -> Row:
    w = _Words("cola", part, rng)
    label = _choose_label(rng, (0.4, 0.6))  # real CoLA is about 70% acceptable
    (sg, pl) = w.pick("subject")
    base, s3, past, pp, objs = w.pick("verb")
    obj = rng.choice(objs)
    plural = rng.random() < 0.5
    subj = pl if plural else sg
    att_sg, att_pl = w.pick("attractor")
    # an attractor noun of the opposite number between subject and verb: "the key to the cabinets"
    use_attractor = rng.random() < 0.35
    attractor = f" near the {att_sg if plural else att_pl}" if use_attractor else ""
    np_subj = f"the {subj}{attractor}"

    frames = ["present", "past", "perfect", "future", "negated"]
    frame = rng.choice(frames)
    if label == 1:
        if frame == "present":
            verb = base if plural else s3
        elif frame == "past":
            verb = past
        elif frame == "perfect":
            verb = ("have " if plural else "has ") + pp
        elif frame == "future":
            verb = "will " + base
        else:
            verb = "did not " + base
        return {"sentence": _cap(f"{np_subj} {verb} the {obj}."), "label": 1}

    error = rng.choice(["agreement", "form", "order", "order", "scramble", "determiner", "missing"])
    if error == "agreement":  # number mismatch, often across an attractor
        if frame == "perfect":
            verb = ("has " if plural else "have ") + pp
        else:
            verb = s3 if plural else base
        text = f"{np_subj} {verb} the {obj}."
    elif error == "form":  # wrong verb form after an auxiliary, or a bare participle
        aux = rng.choice(["perfect", "did", "will", "bare"])
        if aux == "perfect":
            verb = ("have " if plural else "has ") + past
        elif aux == "did":
            verb = "did not " + past
        elif aux == "will":
            verb = "will " + (past if rng.random() < 0.5 else s3)
        else:
            verb = pp
        text = f"{np_subj} {verb} the {obj}."
    elif error in ("order", "scramble"):  # adjacent words swapped, or the words shuffled
        verb = past if frame != "present" else (base if plural else s3)
        tokens = f"{np_subj} {verb} the {obj}".split()
        original = list(tokens)
        # a shuffle must not start with "the"/"near": "the cup broke the boy" would be grammatical
        while tokens == original or (error == "scramble" and tokens[0] in ("the", "near")):
            if error == "order":
                i = rng.randrange(len(tokens) - 1)
                tokens[i], tokens[i + 1] = tokens[i + 1], tokens[i]
            else:
                rng.shuffle(tokens)
        text = " ".join(tokens) + "."
    elif error == "missing":  # the verb or the subject is left out
        verb = past
        text = f"{np_subj} the {obj}." if rng.random() < 0.5 else f"{verb} the {obj}."
    else:  # determiner: missing article on a singular count noun, or "a" with a plural
        verb = past
        if rng.random() < 0.5:
            text = f"{np_subj} {verb} {obj}."
        else:
            text = f"a {pl}{attractor} {verb} the {obj}."
    return {"sentence": _cap(text), "label": 0}


# ---------------------------------------------------------------------------------------------------
# MRPC: news-style paraphrase vs. near-miss rewrites with high lexical overlap
# ---------------------------------------------------------------------------------------------------


def _mrpc(rng: random.Random, part: str) -> Row:
    w = _Words("mrpc", part, rng)
    label = _choose_label(rng, (0.35, 0.65))  # real MRPC is about 68% equivalent
    ent, other = w.two("entity")
    verb, syn, anto, obj = w.pick("event")
    num, num2 = w.two("number")
    day, day2 = w.two("day")
    s1 = f"{_cap(ent)} {verb} {num} {obj} on {day}."
    paraphrases = [
        f"On {day}, {ent} {syn} {num} {obj}.",
        f"{_cap(ent)} {syn} {num} {obj} on {day}.",
        f"{_cap(num)} {obj} were {syn} by {ent} on {day}.",
        f"On {day}, {num} {obj} were {verb} by {ent}.",
    ]
    if label == 1:
        s2 = rng.choice(paraphrases)
    else:
        change = rng.choice(["number", "day", "antonym", "agent", "more"])
        if change == "number":
            s2 = rng.choice(paraphrases).replace(f" {num} ", f" {num2} ").replace(_cap(num), _cap(num2))
        elif change == "day":
            s2 = rng.choice(paraphrases).replace(day, day2)
        elif change == "antonym":
            s2 = rng.choice(
                [f"On {day}, {ent} {anto} {num} {obj}.", f"{_cap(ent)} {anto} {num} {obj} on {day}."]
            )
        elif change == "agent":
            s2 = rng.choice(
                [f"On {day}, {other} {syn} {num} {obj}.", f"{_cap(other)} {verb} {num} {obj} on {day}."]
            )
        else:  # the second sentence reports only part of the event and adds a different claim
            s2 = f"{_cap(ent)} said on {day} that it {anto} {num2} {obj}."
    return {"sentence1": s1, "sentence2": s2, "label": label}


# ---------------------------------------------------------------------------------------------------
# QQP: duplicate questions; negatives change the topic, the intent, or the comparison
# ---------------------------------------------------------------------------------------------------


def _qqp(rng: random.Random, part: str) -> Row:
    w = _Words("qqp", part, rng)
    label = _choose_label(rng, (0.58, 0.42))  # real QQP is about 37% duplicate
    frame = rng.choice(["skill", "skill", "order", "country", "compare", "goal"])
    if frame == "skill":
        s, s2 = w.two("skill")
        ways = [
            f"How do I learn {s}?",
            f"What is the best way to learn {s}?",
            f"How can I get good at {s}?",
            f"What should I do to learn {s} quickly?",
            f"Where should a beginner start with {s}?",
            f"Any tips for someone new to {s}?",
            f"How can I teach myself {s}?",
        ]
        q1, q2 = rng.sample(ways, 2)
        if label == 0:  # mostly the same wording about another skill; sometimes another intent
            q2 = rng.choice(
                [
                    q2.replace(s, s2),
                    q1.replace(s, s2),
                    f"Why should I learn {s}?",
                    f"How long does it take to learn {s}?",
                    f"How do I teach {s} to children?",
                ]
            )
    elif frame == "order":  # the order of the two skills matters here
        s, s2 = w.two("skill")
        ways = [
            f"Should I learn {s} before {s2}?",
            f"Is it better to learn {s} first and then {s2}?",
            f"Should I start with {s} and then learn {s2}?",
        ]
        q1, q2 = rng.sample(ways, 2)
        if label == 0:
            q2 = rng.choice(
                [f"Should I learn {s2} before {s}?", f"Should I start with {s2} and then learn {s}?"]
            )
    elif frame == "country":
        c, c2 = (_name(x) for x in w.two("country"))
        ways = [
            f"What is the capital of {c}?",
            f"Which city is the capital of {c}?",
            f"What is the capital city of {c}?",
            f"Which city is {c}'s capital?",
        ]
        q1, q2 = rng.sample(ways, 2)
        if label == 0:
            q2 = rng.choice([q2.replace(c, c2), q2.replace(c, c2), f"What is the largest city in {c}?"])
    elif frame == "compare":  # here the order does not matter: "x or y" asks the same as "y or x"
        (x, y), (u, v) = w.two("thing")
        ways = [
            f"Which is better, {x} or {y}?",
            f"Is {x} better than {y}?",
            f"Should I choose {y} or {x}?",
            f"Which do you prefer, {y} or {x}?",
        ]
        q1, q2 = rng.sample(ways, 2)
        if label == 0:
            q2 = rng.choice(
                [
                    f"Which is better, {x} or {v}?",
                    f"Is {u} better than {y}?",
                    f"What is the difference between {x} and {y}?",
                    f"Why do people like {x}?",
                ]
            )
    else:
        g = w.pick("goal")
        g2 = rng.choice([x for x in w.all("goal") if x != g])
        ways = [
            f"How can I {g}?",
            f"What are some good ways to {g}?",
            f"What is the easiest way to {g}?",
            f"Any advice on how to {g}?",
        ]
        q1, q2 = rng.sample(ways, 2)
        if label == 0:
            q2 = rng.choice([q2.replace(g, g2), q2.replace(g, g2), f"Why is it so hard to {g}?"])
    return {"question1": q1, "question2": q2, "label": label}


# ---------------------------------------------------------------------------------------------------
# STS-B: graded similarity from how many of (person, action, object, place) the pair shares
# ---------------------------------------------------------------------------------------------------


def _stsb(rng: random.Random, part: str) -> Row:
    w = _Words("stsb", part, rng)
    (p, p_syn) = w.pick("person")
    (act, act_syn, obj) = w.pick("action")
    place = w.pick("place")
    s1 = f"{_cap(_a(p))} is {act} {_a(obj)} in the {place}."
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
        s2 = f"{_cap(_a(p2))} is {a2} {_a(o2)} in the {pl2}."
    else:
        s2 = f"In the {pl2}, {_a(p2)} is {a2} {_a(o2)}."
    score = min(5.0, max(0.0, score + rng.gauss(0.0, STSB_SCORE_NOISE)))
    return {"sentence1": s1, "sentence2": s2, "label": round(score, 2)}


# ---------------------------------------------------------------------------------------------------
# MNLI: 3-way entailment; every class shares most words with the premise
# ---------------------------------------------------------------------------------------------------


def _mnli_matched(rng: random.Random, part: str) -> Row:
    w = _Words("mnli", part, rng)
    label = _choose_label(rng, (1 / 3, 1 / 3, 1 / 3))  # entailment, neutral, contradiction
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


def _mnli_mismatched(rng: random.Random, part: str) -> Row:
    """A 'report' genre (organisations, quantities, time periods) absent from training."""
    w = _Words("mnli", part, rng)
    label = _choose_label(rng, (1 / 3, 1 / 3, 1 / 3))
    org = w.pick("org")
    past, base, obj = w.pick("report")
    num = rng.choice(("twelve", "fifteen", "twenty", "thirty"))  # all "more than ten"
    when = rng.choice(("last year", "last month", "in the spring"))
    premise = f"{_cap(when)}, {org} {past} {num} new {obj}."
    if label == 0:
        hyp = rng.choice(
            [
                f"{_cap(org)} {past} some {obj}.",
                f"{_cap(org)} {past} more than ten {obj}.",
                f"New {obj} were {past} {when}.",
            ]
        )
    elif label == 1:
        hyp = rng.choice(
            [
                f"{_cap(org)} {past} {num} new {obj} to save money.",
                f"{_cap(org)} will {base} more {obj} next year.",
                f"{_cap(org)} {past} {num} new {obj} after a long debate.",
            ]
        )
    else:
        hyp = rng.choice(
            [
                f"{_cap(org)} did not {base} any {obj} {when}.",
                f"{_cap(org)} {past} only two {obj} {when}.",
                f"No {obj} were {past} {when}.",
            ]
        )
    return {"premise": premise, "hypothesis": hyp, "label": label}


# ---------------------------------------------------------------------------------------------------
# QNLI: does the sentence contain the answer to the question?
# ---------------------------------------------------------------------------------------------------


def _qnli(rng: random.Random, part: str) -> Row:
    w = _Words("qnli", part, rng)
    label = _choose_label(rng, (0.5, 0.5))  # entailment, not_entailment
    name, other = w.two("name")
    base, past, obj = w.pick("event")
    city, year, reason = w.pick("city"), w.pick("year"), w.pick("reason")
    N, Oth, C = _name(name), _name(other), _name(city)
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


def _rte(rng: random.Random, part: str) -> Row:
    w = _Words("rte", part, rng)
    label = _choose_label(rng, (0.5, 0.5))  # entailment, not_entailment
    # kinds of non-entailment: a word absent from the premise (an overlap heuristic catches it), a fact
    # bound to the wrong entity (it does not), or an explicit contradiction
    wrong = rng.choice(["absent", "absent", "swap", "swap", "contradiction"])
    c1, c2 = (_name(x) for x in w.two("city"))
    c3 = _name(rng.choice([x for x in w.all("city") if _name(x) not in (c1, c2)]))
    template = rng.choice(["person", "company", "event"])
    if template == "person":
        name = _name(w.pick("name"))
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
        a, b = (_name(x) for x in w.two("company"))
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


# ---------------------------------------------------------------------------------------------------
# Public API
# ---------------------------------------------------------------------------------------------------

# task -> split name -> (generator, vocabulary part)
_GENERATORS: dict[str, dict[str, tuple[Callable[[random.Random, str], Row], str]]] = {
    "cola": {"train": (_cola, "train"), "validation": (_cola, "val")},
    "sst2": {"train": (_sst2, "train"), "validation": (_sst2, "val")},
    "mrpc": {"train": (_mrpc, "train"), "validation": (_mrpc, "val")},
    "qqp": {"train": (_qqp, "train"), "validation": (_qqp, "val")},
    "stsb": {"train": (_stsb, "train"), "validation": (_stsb, "val")},
    "mnli": {
        "train": (_mnli_matched, "train"),
        "validation_matched": (_mnli_matched, "val"),
        "validation_mismatched": (_mnli_mismatched, "val"),
    },
    "qnli": {"train": (_qnli, "train"), "validation": (_qnli, "val")},
    "rte": {"train": (_rte, "train"), "validation": (_rte, "val")},
}

NUM_CLASSES: dict[str, int] = {"cola": 2, "sst2": 2, "mrpc": 2, "qqp": 2, "mnli": 3, "qnli": 2, "rte": 2}


def proxy_splits(task: str) -> tuple[str, ...]:
    """Split names a proxy produces, the same as the real GLUE config's train/validation splits."""
    return tuple(_GENERATORS[task])


def generate_split(task: str, split: str, n: int, seed: int = 0) -> list[Row]:
    """`n` rows of one split, in GLUE column order plus ``idx`` (0..n-1).

    Distinct texts are not enforced: templates are small, and repeats occur in real GLUE as well.
    Label noise (:data:`TRAIN_LABEL_NOISE`) is applied to the train split only.
    """
    if task not in _GENERATORS:
        raise ValueError(f"no GLUE proxy for task {task!r}; known: {', '.join(sorted(_GENERATORS))}")
    if split not in _GENERATORS[task]:
        raise ValueError(f"GLUE proxy {task!r} has no split {split!r}; it has {', '.join(_GENERATORS[task])}")
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    gen, part = _GENERATORS[task][split]
    rng = random.Random(f"deltalora-glue-proxy:{GENERATOR_VERSION}:{task}:{split}:{seed}")
    noise = TRAIN_LABEL_NOISE.get(task, 0.0) if split == "train" else 0.0
    rows: list[Row] = []
    for i in range(n):
        row = gen(rng, part)
        if noise and rng.random() < noise:
            k = NUM_CLASSES[task]
            row["label"] = rng.choice([c for c in range(k) if c != row["label"]])
        row["idx"] = i
        rows.append(row)
    return rows


def generate_task(task: str, n_train: int, n_val: int, seed: int = 0) -> dict[str, list[Row]]:
    """All splits of a proxy: ``n_train`` training rows and ``n_val`` rows for each validation split."""
    return {
        split: generate_split(task, split, n_train if split == "train" else n_val, seed)
        for split in proxy_splits(task)
    }
