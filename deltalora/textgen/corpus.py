"""The pre-training corpus of the embedded GPT-2/BART: domain prose with names disjoint from the proxies.

Why generated: no pretrained checkpoint exists offline, and fine-tuning a randomly initialised model
would make every PEFT method look equally bad. A short pre-training on text in the proxies' domains
(restaurant descriptions, encyclopedic facts about the WebNLG categories, short news stories) gives the
tiny models the fluency that GPT-2/BART bring to the real tasks, so fine-tuning learns the *task*
(data-to-text mapping, picking the salient fact) on top of it.

Why it cannot leak evaluation data: every name comes from the lexicon's ``corpus`` pool, which shares
no string with the ``proxy`` pool, and `build_corpus` keeps only sentences that mention at least one
corpus-pool name. Proxy texts never contain a corpus-pool name, so no proxy sentence (source,
reference or summary) can equal a corpus sentence; tests check this on generated data.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Any

from ..tasks.textgen_lexicon import CATEGORIES, all_names
from ..tasks.textgen_proxy import sample_e2e_mr
from ..tasks.textgen_realize import e2e_reference, webnlg_sample, webnlg_text, xsum_story

CORPUS_VERSION = 1
_SENT_SPLIT = re.compile(r"(?<=[.!?\"])\s+(?=[A-Z0-9\"])")
_WORD = re.compile(r"[\w£'-]+", re.UNICODE)


@dataclass(frozen=True)
class CorpusConfig:
    """Numbers of documents per domain; the defaults give ~0.48M GPT-2 tokens, built in a few seconds."""

    seed: int = 1234
    n_restaurant: int = 3000
    n_facts: int = 3000
    n_news: int = 2000
    record_frac: float = 0.5  # share of restaurant/fact documents that open with a record line


def split_sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENT_SPLIT.split(text.replace("\n", " ")) if s.strip()]


@cache
def _corpus_name_ngrams() -> frozenset[tuple[str, ...]]:
    return frozenset(tuple(_WORD.findall(n)) for n in all_names("corpus"))


def names_corpus_entity(sentence: str) -> bool:
    """True when the sentence contains a corpus-pool name (as a whole-word n-gram, n <= 4)."""
    words = _WORD.findall(sentence)
    grams = _corpus_name_ngrams()
    return any(tuple(words[i : i + n]) in grams for n in (1, 2, 3, 4) for i in range(len(words) - n + 1))


_E2E_LABELS = {
    "eatType": "type",
    "food": "cuisine",
    "priceRange": "price",
    "customer rating": "rating",
    "area": "area",
    "familyFriendly": "family friendly",
    "near": "near",
}


def _label(prop: str) -> str:
    """``runwayLength`` -> ``runway length``: records use readable labels, not the task's property ids."""
    return re.sub(r"(?<=[a-z])(?=[A-Z])", " ", prop).lower()


@dataclass(frozen=True)
class _RecordDocs:
    """A kind of document made of 1..max_items descriptions of things, each opened, at ``record_frac``,
    by a guide-book record (``X - type: pub; price: cheap.``): the semi-structured text next to prose
    that gives a pretrained LM its copying ability."""

    max_items: int
    sample: Callable[[random.Random], Any]  # one thing, drawn from the corpus pool
    record: Callable[[Any], str]  # its record line
    text: Callable[[Any, random.Random], str]  # one description of it

    def __call__(self, rng: random.Random, record_frac: float) -> str:
        parts = []
        for _ in range(rng.randint(1, self.max_items)):
            item = self.sample(rng)
            if rng.random() < record_frac:
                parts.append(self.record(item))
            parts.append(self.text(item, rng))
        return " ".join(parts)


def _venue_record(mr: dict[str, str]) -> str:
    return (
        f"{mr['name']} - " + "; ".join(f"{_E2E_LABELS[k]}: {v}" for k, v in mr.items() if k != "name") + "."
    )


def _facts_sample(rng: random.Random) -> tuple[Any, list, str]:
    cat = rng.choice(CATEGORIES)
    return (cat, *webnlg_sample(cat, rng.randint(1, 4), rng, "corpus"))


def _facts_record(item: tuple[Any, list, str]) -> str:
    subj = item[1][0][0]
    return f"{subj} - " + "; ".join(f"{_label(p)}: {o}" for s, p, o in item[1] if s == subj) + "."


# venue descriptions (E2E's domain) and encyclopedic facts (WebNLG's categories)
_restaurant_doc = _RecordDocs(
    3, lambda rng: sample_e2e_mr(rng, "corpus"), _venue_record, lambda mr, rng: e2e_reference(mr, rng)
)
_facts_doc = _RecordDocs(2, _facts_sample, _facts_record, lambda item, rng: webnlg_text(*item, rng))


def _news_doc(rng: random.Random, record_frac: float) -> str:
    sents, summary = xsum_story(rng, "corpus")
    if rng.random() < 0.5:  # news often opens with a lede that states the main point
        sents = [summary, *sents]
    return " ".join(sents)


def build_corpus(cfg: CorpusConfig = CorpusConfig()) -> list[str]:
    """Documents (one string each), shuffled; sentences without a corpus-pool name are removed."""
    rng = random.Random(f"corpus-{cfg.seed}")
    docs: list[str] = []
    for make, n in ((_restaurant_doc, cfg.n_restaurant), (_facts_doc, cfg.n_facts), (_news_doc, cfg.n_news)):
        for _ in range(n):
            kept = [s for s in split_sentences(make(rng, cfg.record_frac)) if names_corpus_entity(s)]
            if kept:
                docs.append(" ".join(kept))
    rng.shuffle(docs)
    return docs
