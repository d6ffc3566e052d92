"""Vocabulary and small helpers shared by the GLUE proxy generators.

The word pools and the SST-2 templates are data, read from ``deltalora/tasks/data/glue_proxy.json``
(the sentence tables of MRPC, QQP, STS-B, MNLI, QNLI and RTE from ``glue_sentences.json``):
every pool has a ``train`` part and a disjoint ``val`` part (see the package docstring for why). JSON
lists are read back as tuples, the types the generators were written for.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

from ..data_files import load_data

Row = dict[str, Any]
Pool = dict[str, tuple[Any, ...]]  # {"train": (...), "val": (...)}


_DATA = load_data("glue_proxy.json")

#: task -> pool name -> {"train": words, "val": words}; the two parts of a pool are disjoint.
VOCAB: dict[str, dict[str, Pool]] = _DATA["vocab"]
#: Function words inside multi-word pool entries ("find a job", "the bank"); they also occur in
#: templates of both splits and are not part of the held-out vocabulary.
FUNCTION_WORDS: frozenset[str] = frozenset(_DATA["function_words"])
#: SST-2 sentence templates per kind ("simple", "negated", "contrast") and split part.
SST2_TEMPLATES: dict[str, dict[str, tuple[str, ...]]] = _DATA["sst2_templates"]
#: Sentence tables of the pair and inference tasks (``deltalora/tasks/data/glue_sentences.json``): the
#: generators draw words; the tables say which sentences they make.
SENTENCES: dict[str, Any] = load_data("glue_sentences.json")


def premise_and_hypothesis(
    table: dict[str, Any], words: dict[str, Any], key: Any, rng: random.Random
) -> tuple[str, str]:
    """A table's premise, then one of its hypotheses for ``key`` (a label, or a kind of non-entailment)."""
    return table["premise"].format_map(words), rng.choice(table["hypotheses"][str(key)]).format_map(words)


def realise(
    entry: Any, words: dict[str, Any], rng: random.Random, table: dict[str, Any] | None = None
) -> str:
    """One sentence of a table entry: a template; a list of templates (one drawn); or ``{"from": list,
    "with": {field: other}}``: a template drawn from ``table[list]``, each field's word replaced by the
    other field's (a near-miss of a sentence the table already has). A single template draws nothing, so
    the generator's random stream is the one it had when the sentences were code."""
    if isinstance(entry, str):
        return entry.format_map(words)
    if isinstance(entry, Sequence):
        return rng.choice(entry).format_map(words)
    assert table is not None, "a {'from': ...} entry needs the table it draws from"
    swapped = {**words, **{field: words[other] for field, other in entry["with"].items()}}
    return rng.choice(table[entry["from"]]).format_map(swapped)


def sentence(entry: Any, words: dict[str, Any], said: dict[str, str]) -> str:
    """A template, or ``{"replace": [sentence, field, by]}``: a sentence already said (``said``) with one
    field's word replaced by another's."""
    if isinstance(entry, str):
        return entry.format_map(words)
    name, field, by = entry["replace"]
    return said[name].replace(words[field], words[by])


def with_article(word: str) -> str:
    """Indefinite article + word ("an apple", "a car")."""
    return ("an " if word[0] in "aeiou" else "a ") + word


def cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def title_name(text: str) -> str:
    return " ".join(w.capitalize() for w in text.split())


def choose_label(rng: random.Random, weights: Sequence[float]) -> int:
    return rng.choices(range(len(weights)), weights=weights, k=1)[0]


class Words:
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
