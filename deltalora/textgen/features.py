"""Turn (source, target) pairs into training features for GPT-2 (causal LM) and BART (seq2seq).

GPT-2, as in the LoRA protocol: one sequence ``source <sep> target <eos>``; the target starts with a
space (GPT-2's word-boundary convention) and the loss covers only target + eos: every source and
separator position is labelled -100. The separator is the text `DEFAULT_SEP` (" ||", the separator of
the E2E files that the LoRA/prefix-tuning scripts read), NOT ``<|endoftext|>``: in pre-training that
token separates unrelated documents, so a small model learns to ignore whatever precedes it, which is
exactly the source here. `prompt_ids` builds the ``source <sep>`` prefix that generation feeds the
model, so training and decoding can never disagree.

BART: the encoder reads ``<s> source </s>``; labels are ``<s> target </s>``; the model shifts labels
right behind ``decoder_start_token_id`` (``</s>``) itself, as with facebook/bart-*.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

IGNORE_INDEX = -100
# Text between source and target. Not the end-of-text token: in pre-training <|endoftext|> separates
# unrelated documents, so a model learns to ignore everything before it, i.e. the source.
DEFAULT_SEP = " ||"


def prompt_ids(
    tokenizer: Any, source: str, max_source_length: int | None = None, sep: str = DEFAULT_SEP
) -> list[int]:
    """``source <sep>`` token ids (source truncated from the right to `max_source_length` tokens)."""
    src = tokenizer(source, add_special_tokens=False)["input_ids"]
    if max_source_length is not None:
        src = src[:max_source_length]
    return [*src, *tokenizer(sep, add_special_tokens=False)["input_ids"]]


def causal_lm_features(
    tokenizer: Any,
    source: str,
    target: str,
    *,
    max_length: int = 128,
    max_target_length: int | None = None,
    sep: str = DEFAULT_SEP,
) -> dict[str, list[int]]:
    """input_ids / attention_mask / labels for one example, labels masked on the source part.

    Truncation keeps the target whole when possible: the target (+ eos) is capped at
    `max_target_length` (default: half of `max_length`), then the source gets what remains.
    """
    eos = tokenizer.eos_token_id
    tgt = tokenizer(" " + target.strip(), add_special_tokens=False)["input_ids"]
    cap = max_target_length if max_target_length is not None else max_length // 2
    tgt = tgt[: max(cap - 1, 1)] + [eos]
    n_sep = len(tokenizer(sep, add_special_tokens=False)["input_ids"])
    room = max(max_length - len(tgt) - n_sep, 1)
    prompt = prompt_ids(tokenizer, source, room, sep)
    ids = prompt + tgt
    return {"input_ids": ids, "attention_mask": [1] * len(ids), "labels": [IGNORE_INDEX] * len(prompt) + tgt}


def seq2seq_features(
    tokenizer: Any,
    source: str,
    target: str,
    *,
    max_source_length: int = 256,
    max_target_length: int = 64,
) -> dict[str, list[int]]:
    """Encoder input_ids / attention_mask and decoder labels (``<s> target </s>``)."""
    enc = tokenizer(source, truncation=True, max_length=max_source_length)
    lab = tokenizer(target.strip(), truncation=True, max_length=max_target_length)["input_ids"]
    return {
        "input_ids": list(enc["input_ids"]),
        "attention_mask": list(enc["attention_mask"]),
        "labels": list(lab),
    }


def build_features(
    tokenizer: Any,
    pairs: Iterable[tuple[str, str]],
    *,
    kind: str,
    max_source_length: int = 128,
    max_target_length: int = 64,
) -> list[dict[str, list[int]]]:
    """Features for all pairs. GPT-2's `max_length` is source + target budget combined."""
    if kind == "gpt2":
        return [
            causal_lm_features(
                tokenizer,
                s,
                t,
                max_length=max_source_length + max_target_length,
                max_target_length=max_target_length,
            )
            for s, t in pairs
        ]
    if kind == "bart":
        return [
            seq2seq_features(
                tokenizer, s, t, max_source_length=max_source_length, max_target_length=max_target_length
            )
            for s, t in pairs
        ]
    raise ValueError(f"unknown kind {kind!r}")


@dataclass
class PadCollator:
    """Right-pads a list of feature dicts into tensors: ids with `pad_token_id`, labels with -100.

    Right padding is right for training (causal attention never looks ahead; padded label positions
    are ignored); generation pads GPT-2 on the left (see `deltalora.textgen.generation`).
    """

    pad_token_id: int

    def __call__(self, batch: Sequence[dict[str, Any]]) -> dict[str, Any]:
        import torch

        n = max(len(b["input_ids"]) for b in batch)
        out = {
            "input_ids": torch.full((len(batch), n), self.pad_token_id, dtype=torch.long),
            "attention_mask": torch.zeros((len(batch), n), dtype=torch.long),
        }
        for i, b in enumerate(batch):
            k = len(b["input_ids"])
            out["input_ids"][i, :k] = torch.tensor(b["input_ids"])
            out["attention_mask"][i, :k] = torch.tensor(b["attention_mask"])
        if "labels" in batch[0]:
            m = max(len(b["labels"]) for b in batch)
            labels = torch.full((len(batch), m), IGNORE_INDEX, dtype=torch.long)
            for i, b in enumerate(batch):
                labels[i, : len(b["labels"])] = torch.tensor(b["labels"])
            out["labels"] = labels
        return out
