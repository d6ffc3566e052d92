"""A byte-level BPE tokenizer trained locally, wrapped as a transformers fast tokenizer.

Why byte-level BPE: it is GPT-2's and BART's tokenizer family (no unknown tokens, spaces kept as a
prefix marker), so detokenisation and the "source + separator + target" layout behave as with the
real models. Training on the embedded corpus takes well under a second at a vocabulary of ~3k.

One vocabulary serves both models; the wrappers differ only in special tokens:
GPT-2: ``<|endoftext|>`` is bos = eos (as in GPT-2), plus a distinct ``<pad>`` so padding can never
be confused with an end of text. BART: ``<s>``, ``</s>``, ``<pad>``, ``<unk>``, ``<mask>`` with ids
0, 1, 2, 3 for <s>, <pad>, </s>, <unk> as in BART, and the ``<s> ... </s>`` template.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

Kind = Literal["gpt2", "bart"]
SPECIAL_TOKENS = ("<s>", "<pad>", "</s>", "<unk>", "<mask>", "<|endoftext|>")
DEFAULT_VOCAB_SIZE = 3000


def train_bpe(
    texts: Iterable[str], vocab_size: int = DEFAULT_VOCAB_SIZE, min_frequency: int = 2
) -> Tokenizer:
    """Train a GPT-2-style byte-level BPE on `texts` (deterministic for a given input order)."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    return tok


def wrap(tok: Tokenizer, kind: Kind, model_max_length: int = 512):
    """A `PreTrainedTokenizerFast` for `kind` around a copy of the trained tokenizer."""
    from transformers import PreTrainedTokenizerFast

    t = Tokenizer.from_str(tok.to_str())
    if kind == "bart":
        bos, eos = t.token_to_id("<s>"), t.token_to_id("</s>")
        t.post_processor = processors.TemplateProcessing(
            single="<s> $A </s>",
            pair="<s> $A </s> </s> $B </s>",
            special_tokens=[("<s>", bos), ("</s>", eos)],
        )
        return PreTrainedTokenizerFast(
            tokenizer_object=t,
            bos_token="<s>",
            eos_token="</s>",
            pad_token="<pad>",
            unk_token="<unk>",
            mask_token="<mask>",
            model_max_length=model_max_length,
        )
    if kind == "gpt2":
        t.post_processor = processors.ByteLevel(trim_offsets=False)
        return PreTrainedTokenizerFast(
            tokenizer_object=t,
            bos_token="<|endoftext|>",
            eos_token="<|endoftext|>",
            unk_token="<|endoftext|>",
            pad_token="<pad>",
            model_max_length=model_max_length,
        )
    raise ValueError(f"unknown kind {kind!r}")


def build_tokenizer(
    kind: Kind, texts: Iterable[str], vocab_size: int = DEFAULT_VOCAB_SIZE, model_max_length: int = 512
):
    """Train and wrap in one call."""
    return wrap(train_bpe(texts, vocab_size), kind, model_max_length)
