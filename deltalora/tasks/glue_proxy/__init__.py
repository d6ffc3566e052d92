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

Layout: the word pools and templates are data (``deltalora/tasks/data/glue_proxy.json``; the sentence
tables of MRPC, QQP, STS-B, MNLI, QNLI and RTE in ``glue_sentences.json``, both read by :mod:`.words`);
one module per task family holds the generators (:mod:`.single`: SST-2, CoLA; :mod:`.pairs`: MRPC, QQP, STS-B;
:mod:`.inference`: MNLI, QNLI, RTE); this module registers them and draws the rows.

Bump :data:`GENERATOR_VERSION` whenever the output for some arguments changes.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from typing import Any

from .inference import mnli_matched, mnli_mismatched, qnli, rte
from .pairs import STSB_SCORE_NOISE, mrpc, qqp, stsb
from .single import cola, sst2
from .words import FUNCTION_WORDS, VOCAB, Pool, Row

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
# Public API
# ---------------------------------------------------------------------------------------------------

# task -> split name -> (generator, vocabulary part)
_GENERATORS: dict[str, dict[str, tuple[Callable[[random.Random, str], Row], str]]] = {
    "cola": {"train": (cola, "train"), "validation": (cola, "val")},
    "sst2": {"train": (sst2, "train"), "validation": (sst2, "val")},
    "mrpc": {"train": (mrpc, "train"), "validation": (mrpc, "val")},
    "qqp": {"train": (qqp, "train"), "validation": (qqp, "val")},
    "stsb": {"train": (stsb, "train"), "validation": (stsb, "val")},
    "mnli": {
        "train": (mnli_matched, "train"),
        "validation_matched": (mnli_matched, "val"),
        "validation_mismatched": (mnli_mismatched, "val"),
    },
    "qnli": {"train": (qnli, "train"), "validation": (qnli, "val")},
    "rte": {"train": (rte, "train"), "validation": (rte, "val")},
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


__all__ = [
    "FUNCTION_WORDS",
    "GENERATOR_VERSION",
    "NUM_CLASSES",
    "STSB_SCORE_NOISE",
    "TRAIN_LABEL_NOISE",
    "VOCAB",
    "Pool",
    "Row",
    "generate_split",
    "generate_task",
    "held_out_words",
    "proxy_splits",
]
