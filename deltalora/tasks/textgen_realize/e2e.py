"""E2E references: a meaning representation (slot -> value) -> one of many English descriptions."""

from __future__ import annotations

import random

from ..data_files import load_data
from ..textgen_lexicon import E2E_SLOTS, article, join_and

# slot -> value (or "*", a template with {v}) -> {"adj", "post", "clause"} phrase lists
_FORMS: dict = load_data("e2e_forms.json")
# the sentence shapes the slots' phrases go into
_SENTENCES: dict = load_data("textgen_sentences.json")["e2e"]


def _posts(phrases: list[str]) -> str:
    """Post-modifiers after the noun phrase, with their leading space (nothing when there are none)."""
    return f" {join_and(phrases)}" if phrases else ""


def _e2e_forms(slot: str, value: str) -> dict[str, list[str]]:
    """Realisations of one slot: pre-nominal adjectives, post-nominal phrases, and predicate clauses."""
    table = _FORMS[slot]
    if value in table:
        return {k: list(v) for k, v in table[value].items()}
    return {k: [t.replace("{v}", value) for t in v] for k, v in table["*"].items()}


def e2e_reference(mr: dict[str, str], rng: random.Random) -> str:
    """One reference text for an E2E meaning representation (slot -> value, ``name`` required)."""
    t = _SENTENCES
    name = mr["name"]
    head = mr["eatType"] if "eatType" in mr else rng.choice(t["heads"])
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
        text = t["one_sentence"].format(name=name, np=np_, posts=_posts(posts))
    elif style == 1:  # a sentence, then "It ..." clauses
        k = rng.randint(0, min(1, len(rest) - 1))
        posts = [rng.choice(forms[s]["post"]) for s in rest[:k]]
        clauses = [rng.choice(forms[s]["clause"]) for s in rest[k:]]
        first = t["one_sentence"].format(name=name, np=np_, posts=_posts(posts))
        subj = rng.choice(t["then_subjects"]).format(name=name, head=head or "place")
        text = t["then"].format(first=first, subj=subj, clauses=join_and(clauses))
    elif style == 2:  # "There is a ... called X ..."
        posts = [rng.choice(forms[s]["post"]) for s in rest]
        lead, called = rng.choice(t["there_is_leads"]), rng.choice(t["there_is_called"])
        text = t["there_is"].format(lead=lead, np=np_, called=called, name=name, posts=_posts(posts))
    else:  # fronted location or clause-only
        loc = [s for s in rest if s in ("area", "near")]
        if loc:
            s0 = loc[0]
            rest2 = [s for s in rest if s != s0]
            front = rng.choice(forms[s0]["post"])
            front = front[0].upper() + front[1:]
            clauses = [rng.choice(forms[s]["clause"]) for s in rest2]
            shape = t["fronted"]["with_clauses" if clauses else "alone"]
            text = shape.format(front=front, name=name, np=np_, clauses=join_and(clauses))
        else:
            clauses = [rng.choice(forms[s]["clause"]) for s in rest]
            text = t["that_clauses"].format(name=name, np=np_, clauses=join_and(clauses))
    return text


def e2e_mr_string(mr: dict[str, str]) -> str:
    """The E2E data set's MR notation: ``name[The Vaults], eatType[pub], ...`` in canonical slot order."""
    return ", ".join(f"{s}[{mr[s]}]" for s in E2E_SLOTS if s in mr)
