"""Surface realisers: structured input -> varied English text, for the NLG proxies and the corpus.

Why hand-written grammars rather than a model: the embedded profile has no pretrained generator and no
network, and the proxies must still be real NLG tasks: several correct references per input that differ
in slot order, aggregation, syntax and synonyms, so that multi-reference BLEU is meaningful and cannot
saturate (no single output matches every reference). The same realisers, fed names from the disjoint
``corpus`` pool, write the pre-training corpus, so the embedded models know the domain language but
have never seen an evaluation sentence.

All functions are pure given the ``random.Random`` they receive. One module per task family
(:mod:`.e2e`, :mod:`.webnlg`, :mod:`.xsum`); their word lists and phrase tables are data in
``deltalora/tasks/data/`` (``e2e_forms.json``, ``textgen_lexicon.json``, ``xsum_words.json``); the XSum
stories' sentences are a table per story frame (``xsum_stories.json``), and the E2E and WebNLG sentence
shapes are ``textgen_sentences.json``: the code decides which phrase goes where, the tables how it reads.
"""

from __future__ import annotations

from .e2e import e2e_mr_string, e2e_reference
from .webnlg import Triple, webnlg_sample, webnlg_text
from .xsum import STORY_FRAMES, xsum_story

__all__ = [
    "STORY_FRAMES",
    "Triple",
    "e2e_mr_string",
    "e2e_reference",
    "webnlg_sample",
    "webnlg_text",
    "xsum_story",
]
