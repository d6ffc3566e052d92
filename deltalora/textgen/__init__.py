"""Embedded NLG stack: a locally trained BPE tokenizer, tiny GPT-2/BART models pre-trained on a
generated corpus, feature builders for fine-tuning, and beam-search generation.

Why: the paper's NLG results use GPT-2 Medium (E2E, WebNLG) and BART-large (XSum); offline neither
the weights nor the BPE files exist. The embedded profile keeps the architectures (GPT-2's Conv1D
layers, BART's encoder-decoder) and the protocol (source/target formatting, beam search), at a size
that pre-trains in about a minute on one CPU core.

Submodules are imported lazily by callers (torch/transformers are heavy).
"""

from __future__ import annotations

__all__ = ["corpus", "embedded_models", "features", "generation", "pretrain", "tokenizer"]
