"""Beam-search generation with the reference protocols' settings, returning clean strings.

LoRA (Hu et al. 2021, Table 11 and ``examples/NLG/src/gpt2_beam.py``): beam 10, length penalty 0.9
(E2E) / 0.8 (WebNLG), no repeated 4-grams, up to 64 new tokens. Two details of LoRA's own decoder that
`transformers`' defaults would change, and that we reproduce:

- its no-repeat-n-gram rule looks only at the GENERATED tokens; transformers' built-in rule for a
  decoder-only model also counts the prompt, which would forbid copying any 4-gram of the source
  (names, values) into the output. `GeneratedNoRepeatNGram` restricts the rule to the continuation.
- GPT-2 batches are padded on the LEFT so every prompt ends where generation starts; transformers
  derives position ids from the attention mask, so padding does not shift positions.

AdaLoRA's XSum script: 8 beams, max target length 64 (pass those for XSum).
Outputs are decoded without special tokens, with the prompt removed and whitespace collapsed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from .features import prompt_ids

Kind = Literal["gpt2", "bart"]


def _no_repeat_processor(prompt_len: int, n: int):
    import torch
    from transformers.generation import LogitsProcessor

    class GeneratedNoRepeatNGram(LogitsProcessor):
        """Ban a token if it would repeat an n-gram of the generated continuation (prompt excluded)."""

        def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
            # Vectorised over beams (a per-row Python loop was ~7% of beam search): every n-gram of the
            # continuation whose first n-1 tokens equal its last n-1 tokens bans its n-th token.
            gen = input_ids[:, prompt_len:]
            cur = gen.shape[1]
            if cur < n:
                return scores
            grams = gen.unfold(1, n, 1)  # (rows, cur - n + 1, n)
            prefix = gen[:, cur - n + 1 :]  # (rows, n - 1); empty for n == 1: every generated token is banned
            hit = (grams[:, :, : n - 1] == prefix[:, None, :]).all(dim=-1)
            rows, pos = hit.nonzero(as_tuple=True)
            scores[rows, grams[rows, pos, n - 1]] = -float("inf")
            return scores

    return GeneratedNoRepeatNGram()


def _clean(text: str) -> str:
    return " ".join(text.split())


def generate(
    model: Any,
    tokenizer: Any,
    sources: Sequence[str],
    *,
    kind: Kind,
    num_beams: int = 10,
    length_penalty: float = 0.9,
    no_repeat_ngram_size: int = 4,
    max_new_tokens: int = 64,
    batch_size: int = 16,
    max_source_length: int | None = None,
    early_stopping: bool | str = True,
    **kw: Any,
) -> list[str]:
    """One generated string per source, in input order (no source text, no special tokens).

    Inputs are processed in batches of similar length (then restored to input order) to waste less
    compute on padding. Extra keyword arguments go to `model.generate`. The model is put in eval mode
    for the call and restored to its previous mode afterwards.
    """
    import torch

    if kind not in ("gpt2", "bart"):
        raise ValueError(f"unknown kind {kind!r}")
    if not sources:
        return []
    was_training = model.training
    model.eval()
    outputs: list[str | None] = [None] * len(sources)
    gen_kw: dict[str, Any] = dict(
        num_beams=num_beams,
        length_penalty=length_penalty,
        max_new_tokens=max_new_tokens,
        early_stopping=early_stopping if num_beams > 1 else False,
        do_sample=False,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    gen_kw.update(kw)
    try:
        with torch.inference_mode():
            if kind == "gpt2":
                prompts = [prompt_ids(tokenizer, s, max_source_length) for s in sources]
                order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
                for b in range(0, len(order), batch_size):
                    idx = order[b : b + batch_size]
                    n = max(len(prompts[i]) for i in idx)
                    ids = torch.full((len(idx), n), tokenizer.pad_token_id, dtype=torch.long)
                    mask = torch.zeros((len(idx), n), dtype=torch.long)
                    for r, i in enumerate(idx):  # left padding
                        p = prompts[i]
                        ids[r, n - len(p) :] = torch.tensor(p)
                        mask[r, n - len(p) :] = 1
                    procs = []
                    if no_repeat_ngram_size and no_repeat_ngram_size > 0:
                        from transformers.generation import LogitsProcessorList

                        procs = LogitsProcessorList([_no_repeat_processor(n, no_repeat_ngram_size)])
                    out = model.generate(
                        input_ids=ids,
                        attention_mask=mask,
                        logits_processor=procs,
                        no_repeat_ngram_size=0,
                        **gen_kw,
                    )
                    for r, i in enumerate(idx):
                        outputs[i] = _clean(tokenizer.decode(out[r, n:], skip_special_tokens=True))
            else:
                enc_kw = {"truncation": max_source_length is not None}
                if max_source_length is not None:
                    enc_kw["max_length"] = max_source_length
                lengths = [len(tokenizer(s, **enc_kw)["input_ids"]) for s in sources]
                order = sorted(range(len(sources)), key=lambda i: lengths[i])
                for b in range(0, len(order), batch_size):
                    idx = order[b : b + batch_size]
                    enc = tokenizer([sources[i] for i in idx], padding=True, return_tensors="pt", **enc_kw)
                    out = model.generate(
                        input_ids=enc["input_ids"],
                        attention_mask=enc["attention_mask"],
                        no_repeat_ngram_size=no_repeat_ngram_size or 0,
                        **gen_kw,
                    )
                    for r, i in enumerate(idx):
                        outputs[i] = _clean(tokenizer.decode(out[r], skip_special_tokens=True))
    finally:
        model.train(was_training)
    return [o if o is not None else "" for o in outputs]
