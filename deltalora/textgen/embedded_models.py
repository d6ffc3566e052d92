"""Tiny GPT-2 and BART built from their transformers configs (no pretrained weights needed).

Why these exact classes: Delta-LoRA and the baselines are applied through PEFT to the real model
classes, so the embedded models must have the same module names and layer types as GPT-2 Medium and
BART-large: GPT-2's fused ``c_attn`` is a ``Conv1D`` (weight stored in x out, so LoRA needs
``fan_in_fan_out=True``), BART's attention has separate ``q_proj``/``k_proj``/``v_proj`` Linear layers.
Only the sizes shrink (2 layers, width 128), so one fine-tuning run costs seconds on a CPU core.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

Kind = Literal["gpt2", "bart"]


@dataclass(frozen=True)
class TinyGPT2Spec:
    n_layer: int = 2
    n_embd: int = 128
    n_head: int = 4
    n_inner: int = 512
    n_positions: int = 256


@dataclass(frozen=True)
class TinyBartSpec:
    d_model: int = 128
    encoder_layers: int = 2
    decoder_layers: int = 2
    encoder_attention_heads: int = 4
    decoder_attention_heads: int = 4
    encoder_ffn_dim: int = 512
    decoder_ffn_dim: int = 512
    max_position_embeddings: int = 512


def build_gpt2(tokenizer: Any, spec: TinyGPT2Spec = TinyGPT2Spec(), seed: int = 0):
    """A randomly initialised `GPT2LMHeadModel` matching `tokenizer`'s vocabulary and special ids."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    cfg = GPT2Config(
        vocab_size=len(tokenizer),
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        **asdict(spec),
    )
    torch.manual_seed(seed)
    model = GPT2LMHeadModel(cfg)
    _set_generation_defaults(model, tokenizer)
    return model


def build_bart(tokenizer: Any, spec: TinyBartSpec = TinyBartSpec(), seed: int = 0):
    """A randomly initialised `BartForConditionalGeneration` with BART's start/forced-bos convention:
    the decoder starts from ``</s>`` and is forced to emit ``<s>`` first, like facebook/bart-*."""
    import torch
    from transformers import BartConfig, BartForConditionalGeneration

    cfg = BartConfig(
        vocab_size=len(tokenizer),
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        decoder_start_token_id=tokenizer.eos_token_id,
        forced_bos_token_id=tokenizer.bos_token_id,
        forced_eos_token_id=tokenizer.eos_token_id,
        dropout=0.1,
        attention_dropout=0.0,
        activation_dropout=0.0,
        scale_embedding=False,
        **asdict(spec),
    )
    torch.manual_seed(seed)
    model = BartForConditionalGeneration(cfg)
    _set_generation_defaults(model, tokenizer)
    return model


def _set_generation_defaults(model: Any, tokenizer: Any) -> None:
    """Token ids only; decoding settings (beams, penalties) are always passed explicitly by the task."""
    gc = model.generation_config
    gc.pad_token_id = tokenizer.pad_token_id
    gc.eos_token_id = tokenizer.eos_token_id
    gc.bos_token_id = tokenizer.bos_token_id
    if model.config.is_encoder_decoder:
        gc.decoder_start_token_id = tokenizer.eos_token_id
        gc.forced_bos_token_id = tokenizer.bos_token_id
        gc.forced_eos_token_id = tokenizer.eos_token_id


def build_model(kind: Kind, tokenizer: Any, seed: int = 0):
    if kind == "gpt2":
        return build_gpt2(tokenizer, seed=seed)
    if kind == "bart":
        return build_bart(tokenizer, seed=seed)
    raise ValueError(f"unknown kind {kind!r}")


def load_pretrained(path: str | Path):
    """(model, tokenizer) saved by `deltalora.textgen.pretrain.pretrain` (any `save_pretrained` folder)."""
    from transformers import AutoConfig, AutoTokenizer, BartForConditionalGeneration, GPT2LMHeadModel

    cfg = AutoConfig.from_pretrained(path)
    cls = BartForConditionalGeneration if cfg.model_type == "bart" else GPT2LMHeadModel
    return cls.from_pretrained(path), AutoTokenizer.from_pretrained(path)


def count_parameters(model: Any) -> int:
    return sum(p.numel() for p in model.parameters())
