"""Embedded NLG stack: tokenizer, tiny GPT-2/BART (+ PEFT LoRA on Conv1D), features, beam search,
and atomic pre-training."""

from __future__ import annotations

import json
import os

import pytest
import torch

from deltalora.textgen import pretrain as pt
from deltalora.textgen.corpus import CorpusConfig, build_corpus
from deltalora.textgen.embedded_models import (
    TinyBartSpec,
    TinyGPT2Spec,
    build_bart,
    build_gpt2,
    load_pretrained,
)
from deltalora.textgen.features import (
    DEFAULT_SEP,
    IGNORE_INDEX,
    PadCollator,
    build_features,
    causal_lm_features,
    prompt_ids,
)
from deltalora.textgen.generation import _no_repeat_processor, generate
from deltalora.textgen.tokenizer import train_bpe, wrap

torch.set_num_threads(1)
TINY_CORPUS = CorpusConfig(n_restaurant=120, n_facts=120, n_news=80)
MICRO_GPT2 = TinyGPT2Spec(n_layer=1, n_embd=32, n_head=2, n_inner=64, n_positions=128)
MICRO_BART = TinyBartSpec(
    d_model=32,
    encoder_layers=1,
    decoder_layers=1,
    encoder_attention_heads=2,
    decoder_attention_heads=2,
    encoder_ffn_dim=64,
    decoder_ffn_dim=64,
    max_position_embeddings=128,
)
TEXTS = [
    "The Vaults is a pub near Café Adriatic with prices more than £30.",
    "Aarhus_Airport : cityServed : Aarhus | Aarhus : country : Denmark",
    "  Two  spaces,\nand a newline — and ünïcödé.",
]


@pytest.fixture(scope="module")
def bpe():
    return train_bpe(build_corpus(TINY_CORPUS), vocab_size=600)


@pytest.fixture(scope="module")
def toks(bpe):
    return {"gpt2": wrap(bpe, "gpt2"), "bart": wrap(bpe, "bart")}


def test_tokenizer_round_trips_and_special_tokens(toks, tmp_path):
    from transformers import AutoTokenizer

    g, b = toks["gpt2"], toks["bart"]
    for t in TEXTS:
        assert g.decode(g(t)["input_ids"]) == t
        assert b.decode(b(t)["input_ids"], skip_special_tokens=True) == t
    assert g.eos_token == g.bos_token == "<|endoftext|>" and g.pad_token == "<pad>"
    assert g.pad_token_id != g.eos_token_id
    assert (b.bos_token_id, b.pad_token_id, b.eos_token_id, b.unk_token_id) == (0, 1, 2, 3)
    assert b.mask_token == "<mask>"
    ids = b("hello")["input_ids"]
    assert ids[0] == b.bos_token_id and ids[-1] == b.eos_token_id
    assert g("hello")["input_ids"][0] != g.bos_token_id  # GPT-2 adds no special tokens
    b.save_pretrained(tmp_path)
    b2 = AutoTokenizer.from_pretrained(tmp_path)
    assert b2(TEXTS[0])["input_ids"] == b(TEXTS[0])["input_ids"] and b2.mask_token == "<mask>"


def test_tiny_models_build_and_run(toks):
    g = build_gpt2(toks["gpt2"], MICRO_GPT2)
    x = torch.tensor([toks["gpt2"](TEXTS[0])["input_ids"]])
    assert g(input_ids=x, labels=x).loss.isfinite()
    b = build_bart(toks["bart"], MICRO_BART)
    enc = toks["bart"]([TEXTS[0]], return_tensors="pt")
    out = b(**enc, labels=enc["input_ids"])
    assert out.loss.isfinite()
    assert b.config.decoder_start_token_id == toks["bart"].eos_token_id
    assert b.generation_config.forced_bos_token_id == toks["bart"].bos_token_id
    default = build_gpt2(toks["gpt2"])  # the embedded default size
    assert default.config.n_layer == 2 and default.config.n_embd == 128


def test_lora_on_gpt2_conv1d_uses_fan_in_fan_out(toks):
    from peft import LoraConfig, get_peft_model
    from transformers.pytorch_utils import Conv1D

    base = build_gpt2(toks["gpt2"], MICRO_GPT2).eval()
    x = torch.tensor([toks["gpt2"](TEXTS[0])["input_ids"]])
    with torch.no_grad():
        ref = base(input_ids=x).logits.clone()
    cfg = LoraConfig(
        r=8,
        lora_alpha=16,
        target_modules=["c_attn"],
        fan_in_fan_out=True,
        lora_dropout=0.0,
        task_type="CAUSAL_LM",
    )
    model = get_peft_model(base, cfg)
    layers = [m for n, m in model.named_modules() if n.endswith("attn.c_attn")]
    assert layers
    for layer in layers:
        assert isinstance(layer.base_layer, Conv1D)  # GPT-2 keeps its Conv1D (weight: in x out)
        assert layer.fan_in_fan_out is True
        assert layer.base_layer.weight.shape == (MICRO_GPT2.n_embd, 3 * MICRO_GPT2.n_embd)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n for n in trainable)
    model.eval()
    with torch.no_grad():
        assert torch.allclose(model(input_ids=x).logits, ref, atol=1e-6)  # B = 0 at init
        for layer in layers:
            torch.nn.init.normal_(layer.lora_B["default"].weight, std=0.1)
        unmerged = model(input_ids=x).logits.clone()
        assert not torch.allclose(unmerged, ref, atol=1e-4)
        model.merge_adapter()  # exercises the fan_in_fan_out transpose in the merge
        merged = model(input_ids=x).logits
    assert torch.allclose(merged, unmerged, atol=1e-4)


def test_lora_on_bart_q_v_proj(toks):
    from peft import LoraConfig, get_peft_model

    model = get_peft_model(
        build_bart(toks["bart"], MICRO_BART),
        LoraConfig(
            r=8,
            lora_alpha=16,
            target_modules=["q_proj", "v_proj"],
            lora_dropout=0.0,
            task_type="SEQ_2_SEQ_LM",
        ),
    )
    names = [n for n, m in model.named_modules() if n.endswith(("q_proj", "v_proj")) and hasattr(m, "lora_A")]
    assert len(names) == 2 * (1 + 2)  # encoder self, decoder self + cross attention
    assert all(isinstance(m.base_layer, torch.nn.Linear) for n, m in model.named_modules() if n in names)


def test_causal_features_mask_the_source(toks):
    tok = toks["gpt2"]
    src, tgt = "name : The Vaults | eatType : pub", "The Vaults is a pub."
    f = causal_lm_features(tok, src, tgt, max_length=64)
    p = prompt_ids(tok, src)
    assert f["input_ids"][: len(p)] == p and tok.decode(p).endswith(DEFAULT_SEP)
    assert tok.eos_token_id not in p  # end-of-text would tell the model to forget the source
    assert f["labels"][: len(p)] == [IGNORE_INDEX] * len(p)
    tgt_ids = f["labels"][len(p) :]
    assert IGNORE_INDEX not in tgt_ids and tgt_ids[-1] == tok.eos_token_id
    assert tok.decode(tgt_ids[:-1]) == " " + tgt
    assert tok.decode(p) == src + DEFAULT_SEP
    # truncation keeps the target and shortens the source
    g = causal_lm_features(tok, src * 20, tgt, max_length=40, max_target_length=20)
    assert len(g["input_ids"]) <= 40 and tok.decode(g["labels"][-len(tgt_ids) :][:-1]) == " " + tgt


def test_seq2seq_features_and_collator(toks):
    tok = toks["bart"]
    feats = build_features(
        tok,
        [("a long document here.", "short one."), ("b.", "c d e.")],
        kind="bart",
        max_source_length=16,
        max_target_length=8,
    )
    assert feats[0]["labels"][0] == tok.bos_token_id and feats[0]["labels"][-1] == tok.eos_token_id
    batch = PadCollator(tok.pad_token_id)(feats)
    assert batch["input_ids"].shape[0] == 2
    assert (batch["labels"] == IGNORE_INDEX).sum() > 0  # padded labels are ignored
    assert batch["attention_mask"][1].sum() == len(feats[1]["input_ids"])


def test_no_repeat_rule_ignores_the_prompt():
    proc = _no_repeat_processor(prompt_len=3, n=2)
    ids = torch.tensor([[5, 6, 7, 5, 6, 5]])  # prompt 5 6 7, generated 5 6 5
    scores = proc(ids, torch.zeros(1, 10))
    assert scores[0, 6] == -float("inf")  # "5 6" was generated: banned after "5"
    ids2 = torch.tensor([[5, 6, 7, 5]])  # "5 6" occurs only in the prompt: allowed
    assert proc(ids2, torch.zeros(1, 10))[0, 6] == 0


# What the untrained micro models (seed 0) generate for the four sources below: byte-level BPE pieces of
# random weights, but fixed. A decoding change (beams, the no-repeat rule, padding, the cut at the prompt,
# special-token stripping) shows up here even where the clean-string checks still hold.
KNOWN_OUTPUTS = {
    "gpt2": ["@@JJl", "hehe44 University", "|\ufffd\ufffd\ufffd\ufffd", "@@\ufffd\ufffd It"],
    "bart": ["\ufffd\ufffd"] * 4,
}


@pytest.mark.parametrize("kind", ["gpt2", "bart"])
def test_generate_returns_one_clean_string_per_input(toks, kind):
    tok = toks[kind]
    model = (build_gpt2 if kind == "gpt2" else build_bart)(tok, MICRO_GPT2 if kind == "gpt2" else MICRO_BART)
    model.train()
    sources = [TEXTS[0], TEXTS[1], "short", TEXTS[0] + " " + TEXTS[1]]
    outs = generate(
        model,
        tok,
        sources,
        kind=kind,
        num_beams=2,
        max_new_tokens=5,
        batch_size=3,
        no_repeat_ngram_size=2,
        length_penalty=0.9,
    )
    assert model.training  # mode restored
    assert len(outs) == len(sources) and all(isinstance(o, str) and o for o in outs)  # non-empty strings
    assert outs == KNOWN_OUTPUTS[kind]
    for o, s in zip(outs, sources, strict=True):
        assert "<|endoftext|>" not in o and "<pad>" not in o and "<s>" not in o and "</s>" not in o
        assert o == " ".join(o.split())
        assert not (o and o.startswith(s))
    # batching (left padding for GPT-2) does not change the result of any input
    one_by_one = [
        generate(
            model,
            tok,
            [s],
            kind=kind,
            num_beams=2,
            max_new_tokens=5,
            no_repeat_ngram_size=2,
            length_penalty=0.9,
        )[0]
        for s in sources
    ]
    assert one_by_one == outs
    assert generate(model, tok, [], kind=kind) == []


# --------------------------------------------------------------------------------------------------
# pre-training
# --------------------------------------------------------------------------------------------------
PT_KW = dict(corpus=TINY_CORPUS, vocab_size=500, batch_size=4, block_size=32)


@pytest.mark.parametrize("kind,spec", [("gpt2", {"gpt2": MICRO_GPT2}), ("bart", {"bart": MICRO_BART})])
def test_pretrain_writes_complete_folder_with_provenance(tmp_path, kind, spec):
    out = tmp_path / f"pt-{kind}"
    prov = pt.pretrain(kind, out, steps=2, seed=3, **PT_KW, **spec)
    files = set(os.listdir(out))
    assert {"config.json", "model.safetensors", "tokenizer.json", "pretrain.json"} <= files
    saved = json.loads((out / "pretrain.json").read_text())
    assert saved == json.loads(json.dumps(prov))
    assert saved["steps"] == 2 and saved["seed"] == 3 and saved["kind"] == kind
    assert saved["final_loss"] > 0 and saved["wall_time_s"] > 0 and saved["fingerprint"]
    model, tok = load_pretrained(out)
    assert model.config.model_type == kind and len(tok) == model.config.vocab_size
    assert [p for p in os.listdir(tmp_path) if p.startswith(".")] == []  # no temp folders left
    # same config: reused without training again
    assert pt.ensure_pretrained(kind, out, steps=2, seed=3, **PT_KW, **spec)["created"] == prov["created"]


def test_pretrain_crash_leaves_nothing_complete(tmp_path, monkeypatch):
    def boom(folder, prov):
        raise RuntimeError("killed")

    monkeypatch.setattr(pt, "_write_provenance", boom)
    out = tmp_path / "pt"
    with pytest.raises(RuntimeError, match="killed"):
        pt.pretrain("gpt2", out, steps=1, seed=0, gpt2=MICRO_GPT2, **PT_KW)
    assert not out.exists()
    assert os.listdir(tmp_path) == []  # the temporary folder was removed too


def test_bart_noise_masks_and_permutes():
    import random

    class T:
        bos_token_id, eos_token_id, mask_token_id = 0, 2, 4

    sents = [[10, 11, 12, 13], [20, 21, 22], [30, 31, 32, 33, 34]]
    src, tgt = pt.bart_noise(sents, T, random.Random(0), 0.3, 3.0)
    assert tgt == [0, 10, 11, 12, 13, 20, 21, 22, 30, 31, 32, 33, 34, 2]
    assert src[0] == 0 and src[-1] == 2 and 4 in src
    assert len(src) < len(tgt)


def _no_repeat_reference(ids: torch.Tensor, scores: torch.Tensor, prompt_len: int, n: int) -> torch.Tensor:
    """The rule written out per row and n-gram (the processor is vectorised)."""
    scores = scores.clone()
    for i, toks in enumerate(ids[:, prompt_len:].tolist()):
        cur = len(toks)
        for j in range(cur - n + 1):
            if toks[j : j + n - 1] == toks[cur - n + 1 :]:
                scores[i, toks[j + n - 1]] = -float("inf")
    return scores


@pytest.mark.parametrize("n", [1, 2, 3, 4])
def test_no_repeat_processor_equals_the_rule_written_out(n):
    g = torch.Generator().manual_seed(n)
    for length in range(0, 30, 3):
        ids = torch.randint(0, 4, (12, 5 + length), generator=g)  # 4 tokens: many repeated n-grams
        scores = torch.randn(12, 6, generator=g)
        expected = _no_repeat_reference(ids, scores, prompt_len=5, n=n)
        got = _no_repeat_processor(prompt_len=5, n=n)(ids, scores.clone())
        assert torch.equal(got, expected), (n, length)
        if length >= 9 and n <= 3:
            assert torch.isinf(got).any()  # the case is exercised, not vacuous
