"""Deterministic generators of the embedded NLG proxies, row for row in the real datasets' schemas.

Why proxies: offline, with no hub, the NLG tables still have to be built end to end through the same
code path (``datasets`` -> features -> training -> beam search -> multi-reference scoring). Each proxy
copies its dataset's columns, types, split names and reference structure:

- E2E (``e2e_nlg``): one row per (MR, reference) pair; several rows share an MR.
- WebNLG 2017 (``web_nlg``/``webnlg_challenge_2017``): one row per triple set with all references in
  ``lex``; categories held out as "unseen" appear only in the test split.
- XSum (``EdinburghNLP/xsum``): document, one-sentence summary, id.

Every split is drawn from `random.Random` seeded with a string (stable across Python runs and hash
seeds). Inputs never repeat across splits. Sizes are parameters; the defaults fit the embedded CPU
budget (a few hundred training inputs, 60 evaluation inputs).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any, TypeVar

from .textgen_lexicon import (
    CATEGORY_BY_NAME,
    E2E_SLOTS,
    E2E_VALUES,
    SEEN_CATEGORIES_DEFAULT,
    UNSEEN_CATEGORIES_DEFAULT,
    Pool,
    e2e_names,
    e2e_near,
    to_dbpedia,
)
from .textgen_realize import e2e_mr_string, e2e_reference, webnlg_sample, webnlg_text, xsum_story

# Bump when a generator's output changes for the same parameters: invalidates cached proxy files.
E2E_PROXY_VERSION = 1
WEBNLG_PROXY_VERSION = 2  # 2: path-shaped triple sets (WEBNLG_CHAIN_P); 1 had stars only
XSUM_PROXY_VERSION = 1
# Of the triple sets of 3 or more with a place among them, the share made a path (place | country | X).
WEBNLG_CHAIN_P = 0.3

Rows = dict[str, list[dict[str, Any]]]
T = TypeVar("T")


def _draw_distinct(draw: Callable[[], T], key: Callable[[T], Hashable], n: int, seen: set) -> list[T]:
    """``n`` new inputs from ``draw``, none whose key is in ``seen`` (shared across splits, so that inputs
    never repeat across them); drawing the evaluation splits first keeps them independent of n_train."""
    got: list[T] = []
    while len(got) < n:
        item = draw()
        k = key(item)
        if k not in seen:
            seen.add(k)
            got.append(item)
    return got


def _distinct_refs(make, n: int, rng: random.Random, tries: int = 30) -> list[str]:
    """Up to `n` distinct references (duplicates would inflate multi-reference scores)."""
    out: list[str] = []
    for _ in range(tries):
        if len(out) == n:
            break
        r = make(rng)
        if r not in out:
            out.append(r)
    return out


# ---------------------------------------------------------------------------------------------------
# E2E
# ---------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class E2EProxyConfig:
    """Sizes count inputs (MRs); each contributes one row per reference, as in the real data."""

    seed: int = 0
    n_train: int = 400
    n_validation: int = 30
    n_test: int = 60
    refs_train: tuple[int, int] = (1, 3)
    refs_eval: tuple[int, int] = (3, 5)


def sample_e2e_mr(rng: random.Random, pool: Pool = "proxy") -> dict[str, str]:
    """An MR with a name and 2-7 further slots (the real data has 3-8 attributes per MR)."""
    mr = {"name": rng.choice(e2e_names(pool))}
    optional = [s for s in E2E_SLOTS if s != "name"]
    k = rng.randint(2, 7)
    chosen = set(rng.sample(optional, k))
    if "eatType" not in chosen and rng.random() < 0.6:  # eatType is the most frequent slot in E2E
        chosen.add("eatType")
    for s in E2E_SLOTS[1:]:
        if s in chosen:
            mr[s] = rng.choice(e2e_near(pool)) if s == "near" else rng.choice(E2E_VALUES[s])
    if mr.get("near") == mr["name"]:
        del mr["near"]
    return mr


def e2e_proxy_rows(cfg: E2EProxyConfig) -> Rows:
    """Rows ``{"meaning_representation", "human_reference"}`` for train/validation/test."""
    rng = random.Random(f"e2e-proxy-mrs-{cfg.seed}")
    sizes = {"test": cfg.n_test, "validation": cfg.n_validation, "train": cfg.n_train}
    seen: set[str] = set()
    mrs = {
        split: _draw_distinct(lambda: sample_e2e_mr(rng), e2e_mr_string, n, seen)
        for split, n in sizes.items()
    }
    out: Rows = {}
    for split in ("train", "validation", "test"):
        lo, hi = cfg.refs_train if split == "train" else cfg.refs_eval
        r = random.Random(f"e2e-proxy-refs-{cfg.seed}-{split}")
        rows = []
        for mr in mrs[split]:
            for ref in _distinct_refs(lambda g, mr=mr: e2e_reference(mr, g), r.randint(lo, hi), r):
                rows.append({"meaning_representation": e2e_mr_string(mr), "human_reference": ref})
        out[split] = rows
    return out


# ---------------------------------------------------------------------------------------------------
# WebNLG 2017
# ---------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class WebNLGProxyConfig:
    """Sizes count triple sets. Unseen categories get test inputs only (as in WebNLG 2017)."""

    seed: int = 0
    n_train: int = 400
    n_dev: int = 30
    n_test_seen: int = 30
    n_test_unseen: int = 30
    max_triples: int = 4
    refs_train: tuple[int, int] = (1, 3)
    refs_eval: tuple[int, int] = (3, 4)
    seen_categories: tuple[str, ...] = SEEN_CATEGORIES_DEFAULT
    unseen_categories: tuple[str, ...] = UNSEEN_CATEGORIES_DEFAULT


# test_category values of the real 2017 test split (file stems of the challenge's test files).
TEST_WITH_LEX = "testdata_with_lex"
TEST_UNSEEN_WITH_LEX = "testdata_unseen_with_lex"


def _webnlg_entry(cat_name: str, rng: random.Random, max_triples: int, pool: Pool = "proxy"):
    cat = CATEGORY_BY_NAME[cat_name]
    n = rng.randint(1, max_triples)
    triples, gender = webnlg_sample(cat, n, rng, pool, chain_p=WEBNLG_CHAIN_P)
    return cat, triples, gender


def webnlg_proxy_rows(cfg: WebNLGProxyConfig) -> Rows:
    """Rows in the ``webnlg_challenge_2017`` layout (`parse_entry` of the hub loading script).

    The test split mirrors the real one: every test entry appears with test_category
    "testdata_with_lex", and the unseen-category entries appear a second time with
    "testdata_unseen_with_lex" (the challenge shipped both files; the real split also holds a
    "testdata_no_lex" copy without references, which we omit since it carries no references).
    """
    overlap = set(cfg.seen_categories) & set(cfg.unseen_categories)
    if overlap:
        raise ValueError(f"categories both seen and unseen: {sorted(overlap)}")
    rng = random.Random(f"webnlg-proxy-{cfg.seed}")
    seen_keys: set[tuple] = set()

    def draw(cats: tuple[str, ...], n: int):
        entry = lambda: _webnlg_entry(rng.choice(cats), rng, cfg.max_triples)  # noqa: E731
        return _draw_distinct(entry, lambda e: tuple(sorted(e[1])), n, seen_keys)

    test_seen = draw(cfg.seen_categories, cfg.n_test_seen)
    test_unseen = draw(cfg.unseen_categories, cfg.n_test_unseen)
    dev = draw(cfg.seen_categories, cfg.n_dev)
    train = draw(cfg.seen_categories, cfg.n_train)

    def row(i: int, cat, triples, gender, r: random.Random, refs: tuple[int, int], test_cat: str):
        texts = _distinct_refs(lambda g: webnlg_text(cat, triples, gender, g), r.randint(*refs), r)
        mtriples = [f"{to_dbpedia(s)} | {p} | {to_dbpedia(o)}" for s, p, o in triples]
        return {
            "category": cat.name,
            "size": len(triples),
            "eid": f"Id{i + 1}",
            "original_triple_sets": [{"otriple_set": list(mtriples)}],
            "modified_triple_sets": [{"mtriple_set": list(mtriples)}],
            "shape": "",
            "shape_type": "",
            "lex": {
                "comment": ["good"] * len(texts),
                "lid": [f"Id{j + 1}" for j in range(len(texts))],
                "text": texts,
                "lang": [""] * len(texts),
            },
            "test_category": test_cat,
            "dbpedia_links": [],
            "links": [],
        }

    out: Rows = {}
    for split, entries, refs in (("train", train, cfg.refs_train), ("dev", dev, cfg.refs_eval)):
        r = random.Random(f"webnlg-proxy-refs-{cfg.seed}-{split}")
        out[split] = [row(i, *e, r, refs, "") for i, e in enumerate(entries)]
    r = random.Random(f"webnlg-proxy-refs-{cfg.seed}-test")
    order = test_seen + test_unseen
    random.Random(f"webnlg-proxy-order-{cfg.seed}").shuffle(order)
    full = [row(i, *e, r, cfg.refs_eval, TEST_WITH_LEX) for i, e in enumerate(order)]
    unseen = set(cfg.unseen_categories)
    dup = []
    for j, x in enumerate(e for e in full if e["category"] in unseen):
        y = dict(x, eid=f"Id{j + 1}", test_category=TEST_UNSEEN_WITH_LEX)
        dup.append(y)
    out["test"] = full + dup
    return out


# ---------------------------------------------------------------------------------------------------
# XSum
# ---------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class XSumProxyConfig:
    seed: int = 0
    n_train: int = 600
    n_validation: int = 30
    n_test: int = 60


def xsum_proxy_rows(cfg: XSumProxyConfig) -> Rows:
    """Rows ``{"document", "summary", "id"}``; ids are unique numeric strings, like BBC article ids."""
    rng = random.Random(f"xsum-proxy-{cfg.seed}")
    seen: set[str] = set()
    out: Rows = {}
    next_id = 30_000_000 + 1_000 * (cfg.seed % 1000)
    for split, n in (("test", cfg.n_test), ("validation", cfg.n_validation), ("train", cfg.n_train)):
        # XSum documents keep one sentence/paragraph per line
        stories = _draw_distinct(lambda: xsum_story(rng, "proxy"), lambda st: "\n".join(st[0]), n, seen)
        out[split] = []
        for sents, summary in stories:
            next_id += 1
            out[split].append({"document": "\n".join(sents), "summary": summary, "id": str(next_id)})
    return {s: out[s] for s in ("train", "validation", "test")}
