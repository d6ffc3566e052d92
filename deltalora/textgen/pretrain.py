"""Short pre-training of the embedded GPT-2 (causal LM) and BART (denoising), saved atomically.

Why a pre-training step at all: see `deltalora.textgen.corpus`. Why atomic: the pipeline treats the output
folder as "the pretrained model"; a run killed halfway must leave nothing that looks complete. We write
everything (safetensors weights, config, tokenizer, ``pretrain.json`` provenance) into a temporary
sibling folder and rename it into place only at the end; the provenance file is written last, so a
folder with ``pretrain.json`` is complete by construction.

BART's objective follows the BART paper's best setting: sentence permutation plus text infilling
(spans with Poisson(3) lengths replaced by one ``<mask>`` until ~30% of tokens are masked); the decoder
reconstructs the original text.
"""

from __future__ import annotations

import json
import math
import os
import random
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from .corpus import CORPUS_VERSION, CorpusConfig, build_corpus, split_sentences
from .embedded_models import TinyBartSpec, TinyGPT2Spec, build_bart, build_gpt2, count_parameters
from .tokenizer import DEFAULT_VOCAB_SIZE, train_bpe, wrap

Kind = Literal["gpt2", "bart"]
PROVENANCE = "pretrain.json"
PRETRAIN_VERSION = 1
# Per-model defaults; each pre-training takes about 110 s of one CPU core (see docs/nlg_proxies.md).
# BART (post-LayerNorm) collapses its encoder to a constant output at lr 2e-3 with a short warm-up,
# so it gets a lower peak and a longer warm-up.
KIND_DEFAULTS: dict[str, dict[str, Any]] = {
    "gpt2": {"steps": 600, "lr": 2e-3, "warmup_frac": 0.05},
    "bart": {"steps": 500, "lr": 1e-3, "warmup_frac": 0.15},
}
TOKENIZER_DOCS = 4000  # documents the BPE is trained on (a prefix of the shuffled corpus)


@dataclass(frozen=True)
class PretrainConfig:
    """Everything that determines the pretrained model (and so its fingerprint)."""

    kind: Kind
    steps: int
    seed: int = 0
    batch_size: int = 8
    block_size: int = 128
    lr: float = 2e-3
    warmup_frac: float = 0.05
    weight_decay: float = 0.01
    vocab_size: int = DEFAULT_VOCAB_SIZE
    mask_ratio: float = 0.3
    poisson_lambda: float = 3.0
    permute_sentences: bool = True
    decoder_mask_ratio: float = 0.4  # BART: share of decoder input tokens replaced by <mask> (see below)
    corpus: CorpusConfig = field(default_factory=CorpusConfig)
    gpt2: TinyGPT2Spec = field(default_factory=TinyGPT2Spec)
    bart: TinyBartSpec = field(default_factory=TinyBartSpec)

    def fingerprint(self) -> str:
        import hashlib

        blob = json.dumps(
            {"version": PRETRAIN_VERSION, "corpus_version": CORPUS_VERSION, **asdict(self)}, sort_keys=True
        )
        return hashlib.sha256(blob.encode()).hexdigest()


def _lr_at(step: int, cfg: PretrainConfig) -> float:
    """Linear warm-up, then cosine decay to 10% of the peak."""
    warm = max(1, int(cfg.warmup_frac * cfg.steps))
    if step < warm:
        return cfg.lr * (step + 1) / warm
    t = (step - warm) / max(1, cfg.steps - warm)
    return cfg.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * t)))


# ---------------------------------------------------------------------------------------------------
# Batches
# ---------------------------------------------------------------------------------------------------
def _gpt2_blocks(tok: Any, docs: list[str], block: int):
    """Documents joined with end-of-text and cut into equal blocks (standard LM packing)."""
    import torch

    ids: list[int] = []
    for enc in tok(docs, add_special_tokens=False, verbose=False)["input_ids"]:
        ids.extend(enc)
        ids.append(tok.eos_token_id)
    n = len(ids) // block
    return torch.tensor(ids[: n * block], dtype=torch.long).view(n, block)


def _bart_docs(tok: Any, docs: list[str], block: int) -> list[list[list[int]]]:
    """Each document as a list of sentences' token ids (leading space), capped at `block` - 2 tokens."""
    per_doc = [split_sentences(d) for d in docs]
    flat = [" " + s for sents in per_doc for s in sents]
    enc = iter(tok(flat, add_special_tokens=False)["input_ids"])
    out = []
    for sents in per_doc:
        kept, total, full = [], 0, False
        for _ in sents:
            ids = next(enc)
            if full or total + len(ids) > block - 2:
                full = True
                continue
            kept.append(ids)
            total += len(ids)
        if kept:
            out.append(kept)
    return out


def _poisson(lam: float, rng: random.Random) -> int:
    l_, k, p = math.exp(-lam), 0, 1.0
    while True:
        p *= rng.random()
        if p <= l_:
            return k
        k += 1


def bart_noise(
    sents: list[list[int]], tok: Any, rng: random.Random, mask_ratio: float, lam: float, permute: bool = True
) -> tuple[list[int], list[int]]:
    """(noised encoder input, decoder labels) for one document: permute sentences, infill spans."""
    perm = sents[:]
    if permute:
        rng.shuffle(perm)
    flat = [t for s in perm for t in s]
    target = [tok.bos_token_id, *(t for s in sents for t in s), tok.eos_token_id]
    n_mask = int(round(mask_ratio * len(flat)))
    masked = [False] * len(flat)
    budget, guard = n_mask, 0
    while budget > 0 and guard < 100:
        guard += 1
        span = min(max(_poisson(lam, rng), 0), budget)
        start = rng.randrange(len(flat))
        if span == 0:  # a zero-length span inserts a <mask> (BART's infilling); mark as a 0-span
            flat.insert(start, -1)
            masked.insert(start, False)
            continue
        for i in range(start, min(start + span, len(flat))):
            if not masked[i]:
                masked[i] = True
                budget -= 1
    noised: list[int] = []
    for t, m in zip(flat, masked, strict=True):
        if t == -1 or m:
            if not noised or noised[-1] != tok.mask_token_id:
                noised.append(tok.mask_token_id)
        else:
            noised.append(t)
    return [tok.bos_token_id, *noised, tok.eos_token_id], target


def _pad(seqs: list[list[int]], pad: int):
    import torch

    n = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), n), pad, dtype=torch.long)
    for i, s in enumerate(seqs):
        ids[i, : len(s)] = torch.tensor(s, dtype=torch.long)
    return ids


# ---------------------------------------------------------------------------------------------------
# Training and saving
# ---------------------------------------------------------------------------------------------------
def _train(cfg: PretrainConfig, log_every: int) -> tuple[Any, Any, dict[str, Any]]:
    import torch

    random.seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    t_corpus = time.perf_counter()
    docs = build_corpus(cfg.corpus)
    bpe = train_bpe(docs[:TOKENIZER_DOCS], cfg.vocab_size)
    tok = wrap(
        bpe,
        cfg.kind,
        model_max_length=cfg.gpt2.n_positions if cfg.kind == "gpt2" else cfg.bart.max_position_embeddings,
    )
    rng = random.Random(f"pretrain-{cfg.kind}-{cfg.seed}")
    if cfg.kind == "gpt2":
        model = build_gpt2(tok, cfg.gpt2, seed=cfg.seed)
        blocks = _gpt2_blocks(tok, docs, cfg.block_size)
        n_tokens = blocks.numel()
    else:
        model = build_bart(tok, cfg.bart, seed=cfg.seed)
        bdocs = _bart_docs(tok, docs, cfg.block_size)
        n_tokens = sum(len(t) for d in bdocs for t in d)
    data_s = time.perf_counter() - t_corpus

    decay = [p for n, p in model.named_parameters() if p.ndim >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.ndim < 2]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=cfg.lr,
        betas=(0.9, 0.98),
    )
    model.train()
    curve: list[tuple[int, float]] = []
    recent: list[float] = []
    seen_tokens = 0
    gen = torch.Generator().manual_seed(cfg.seed)
    for step in range(cfg.steps):
        for g in opt.param_groups:
            g["lr"] = _lr_at(step, cfg)
        if cfg.kind == "gpt2":
            idx = [rng.randrange(blocks.shape[0]) for _ in range(cfg.batch_size)]
            x = blocks[idx]
            loss = model(input_ids=x, labels=x).loss
            seen_tokens += x.numel()
        else:
            pairs = [
                bart_noise(
                    bdocs[rng.randrange(len(bdocs))],
                    tok,
                    rng,
                    cfg.mask_ratio,
                    cfg.poisson_lambda,
                    cfg.permute_sentences,
                )
                for _ in range(cfg.batch_size)
            ]
            src = _pad([p[0] for p in pairs], tok.pad_token_id)
            labels = _pad([p[1] for p in pairs], -100)
            # Decoder inputs = labels shifted right behind </s>, with a share of tokens masked: a tiny
            # decoder otherwise learns a language model on its own and the encoder is never used
            # (we saw the encoder collapse to a constant output); masking forces reading the source.
            dec = torch.full_like(labels, tok.pad_token_id)
            dec[:, 0] = model.config.decoder_start_token_id
            dec[:, 1:] = labels[:, :-1].clamp_min(0).masked_fill(labels[:, :-1] == -100, tok.pad_token_id)
            drop = (torch.rand(dec.shape, generator=gen) < cfg.decoder_mask_ratio) & (dec != tok.pad_token_id)
            drop[:, :2] = False
            dec = dec.masked_fill(drop, tok.mask_token_id)
            loss = model(
                input_ids=src,
                attention_mask=(src != tok.pad_token_id).long(),
                decoder_input_ids=dec,
                decoder_attention_mask=(dec != tok.pad_token_id).long(),
                labels=labels,
            ).loss
            seen_tokens += int((labels != -100).sum())
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        recent.append(loss.item())
        if (step + 1) % log_every == 0 or step + 1 == cfg.steps:
            curve.append((step + 1, sum(recent[-log_every:]) / len(recent[-log_every:])))
    model.eval()
    tail = recent[-min(20, len(recent)) :] if recent else [float("nan")]
    info = {
        "final_loss": sum(tail) / len(tail),
        "loss_curve": curve,
        "corpus_docs": len(docs),
        "corpus_tokens": n_tokens,
        "tokens_seen": seen_tokens,
        "data_prep_s": round(data_s, 3),
        "n_params": count_parameters(model),
        "vocab_size": len(tok),
    }
    return model, tok, info


def _write_provenance(folder: Path, prov: dict[str, Any]) -> None:
    (folder / PROVENANCE).write_text(json.dumps(prov, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def _install(tmp: Path, out: Path) -> None:
    """Move the finished temporary folder into place; an older complete folder is replaced."""
    if out.exists():
        old = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.old-"))
        os.replace(out, old / "x")
        os.replace(tmp, out)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, out)


def _coerce(overrides: dict[str, Any]) -> dict[str, Any]:
    """Accept plain dicts (from YAML/JSON configs) for the nested config fields."""
    types = {"corpus": CorpusConfig, "gpt2": TinyGPT2Spec, "bart": TinyBartSpec}
    return {k: types[k](**v) if k in types and isinstance(v, dict) else v for k, v in overrides.items()}


def make_config(kind: Kind, *, steps: int | None = None, seed: int = 0, **overrides: Any) -> PretrainConfig:
    """The `PretrainConfig` that `pretrain`/`ensure_pretrained` use for these arguments."""
    if kind not in ("gpt2", "bart"):
        raise ValueError(f"unknown kind {kind!r}")
    d = KIND_DEFAULTS[kind]
    base = PretrainConfig(
        kind=kind,
        steps=steps if steps is not None else d["steps"],
        seed=seed,
        lr=d["lr"],
        warmup_frac=d["warmup_frac"],
    )
    return replace(base, **_coerce(overrides))


def pretrain(
    kind: Kind,
    out_dir: str | os.PathLike[str],
    *,
    steps: int | None = None,
    seed: int = 0,
    num_threads: int | None = None,
    log_every: int = 25,
    **overrides: Any,
) -> dict[str, Any]:
    """Pre-train the embedded `kind` model and save it (+ tokenizer + provenance) into `out_dir`.

    `overrides` set other `PretrainConfig` fields (batch_size, lr, corpus=CorpusConfig(...), ...).
    Returns the provenance dict (also written to ``out_dir/pretrain.json``): steps, seed, final loss,
    wall time, corpus size, parameter count, library versions and the config fingerprint.
    """
    import tokenizers
    import torch
    import transformers

    cfg = make_config(kind, steps=steps, seed=seed, **overrides)
    if num_threads is not None:
        torch.set_num_threads(num_threads)
    out = Path(out_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    t0, c0 = time.perf_counter(), time.process_time()
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.tmp-"))
    try:
        model, tok, info = _train(cfg, log_every)
        model.save_pretrained(tmp, safe_serialization=True)
        tok.save_pretrained(tmp)
        prov = {
            "kind": kind,
            "steps": cfg.steps,
            "seed": cfg.seed,
            **info,
            "wall_time_s": round(time.perf_counter() - t0, 3),
            "cpu_time_s": round(time.process_time() - c0, 3),
            "torch_threads": torch.get_num_threads(),
            "config": asdict(cfg),
            "fingerprint": cfg.fingerprint(),
            "versions": {
                "torch": torch.__version__,
                "transformers": transformers.__version__,
                "tokenizers": tokenizers.__version__,
            },
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        _write_provenance(tmp, prov)  # last file: its presence marks a complete folder
        _install(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return prov


def read_provenance(out_dir: str | os.PathLike[str]) -> dict[str, Any] | None:
    try:
        return json.loads((Path(out_dir) / PROVENANCE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def ensure_pretrained(
    kind: Kind, out_dir: str | os.PathLike[str], *, steps: int | None = None, seed: int = 0, **kw: Any
) -> dict[str, Any]:
    """Reuse `out_dir` when its provenance fingerprint matches the requested config, else pretrain."""
    overrides = {k: v for k, v in kw.items() if k not in ("num_threads", "log_every")}
    cfg = make_config(kind, steps=steps, seed=seed, **overrides)
    prov = read_provenance(out_dir)
    if prov and prov.get("fingerprint") == cfg.fingerprint():
        return prov
    return pretrain(kind, out_dir, steps=steps, seed=seed, **kw)
