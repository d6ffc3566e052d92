"""Delta-LoRA on a quantized (bitsandbytes) base: the folded engine is exact there, inplace is refused.

A tiny BERT is saved once and loaded quantized through transformers' BitsAndBytesConfig, as QLoRA
does (every encoder Linear quantized, the classifier kept in float32). bitsandbytes runs on CPU.
Without bitsandbytes these tests skip with the reason; with CI=true they fail instead.
"""

from __future__ import annotations

import os

import pytest
import torch

from deltalora.core.quantized import (
    QUANTIZE_CHOICES,
    bnb_status,
    dequantized_weight,
    quantization_of,
    weight_numel,
)

ok, reason = bnb_status()
if not ok:
    if os.environ.get("CI") == "true":
        raise RuntimeError(f"CI=true but {reason}")
    pytest.skip(reason, allow_module_level=True)

import warnings  # noqa: E402

from peft import LoraConfig, PeftModel, get_peft_model  # noqa: E402
from peft.tuners.lora import LoraLayer  # noqa: E402
from transformers import BertConfig, BertForSequenceClassification  # noqa: E402

from deltalora import DeltaLoRA  # noqa: E402
from deltalora.core.quantized import load_kwargs  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore")
KINDS = [k for k in QUANTIZE_CHOICES if k != "none"]
FOUR_BIT = ["nf4", "nf4-dq", "fp4", "fp4-dq"]
VOCAB, R, ALPHA, LAM, K = 50, 4, 8.0, 2.0, 2


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    cfg = BertConfig(
        vocab_size=VOCAB,
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=16,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
        num_labels=3,
    )
    path = tmp_path_factory.mktemp("tiny-bert")
    BertForSequenceClassification(cfg).save_pretrained(path)
    return str(path)


def load(checkpoint: str, quantize: str = "none"):
    # train(): from_pretrained returns eval mode, where bitsandbytes' CPU path repacks 4-bit weights for a
    # bf16 inference kernel on the first forward; training (as the Trainer does) runs in train mode.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return BertForSequenceClassification.from_pretrained(checkpoint, **load_kwargs(quantize)).train()


def wrap(model, seed: int = 0):
    cfg = LoraConfig(
        r=R, lora_alpha=ALPHA, lora_dropout=0.0, target_modules=["query", "value"], task_type="SEQ_CLS"
    )
    pm = get_peft_model(model, cfg)
    g = torch.Generator().manual_seed(seed)  # random A and B: the branch is not trivially zero
    with torch.no_grad():
        for n, p in sorted(pm.named_parameters()):
            if "lora_" in n:
                p.copy_(torch.randn(p.shape, generator=g) * 0.2)
    return pm


def data(n: int, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    return [
        (torch.randint(0, VOCAB, (4, 8), generator=g), torch.randint(0, 3, (4,), generator=g))
        for _ in range(n)
    ]


def opt_for(model):
    return torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=2e-2, weight_decay=0.01)


def lora_layers(model):
    return {n: m for n, m in model.named_modules() if isinstance(m, LoraLayer)}


@pytest.mark.parametrize("quantize", KINDS)
def test_layers_are_recognised_and_inplace_refused(checkpoint, quantize):
    pm = wrap(load(checkpoint, quantize))
    layers = lora_layers(pm)
    expected = "bnb-int8" if quantize == "int8" else f"bnb-{quantize}"
    assert {quantization_of(m) for m in layers.values()} == {expected}
    assert all(weight_numel(m) == 64 * 64 for m in layers.values())
    with pytest.raises(
        ValueError, match=r"engine='inplace'.*quantized \(" + expected + r"\).*use engine='folded'"
    ):
        DeltaLoRA(pm, opt_for(pm), engine="inplace")
    h = DeltaLoRA(pm, opt_for(pm), engine="folded")
    assert h.extra_updated_params() == len(layers) * 64 * 64  # unpacked, not the 4-bit storage's half


def test_plain_float_layers_are_not_quantized(checkpoint):
    pm = wrap(load(checkpoint))
    assert {quantization_of(m) for m in lora_layers(pm).values()} == {None}


@pytest.mark.parametrize("quantize", KINDS)
def test_folded_term_on_quantized_layer_is_the_delta_lora_branch(checkpoint, quantize):
    """Per layer, after the switch: y - base(x) = s*[(1+lam) B A x - lam S_B S_A x] on every quantization."""
    pm = wrap(load(checkpoint, quantize))
    opt = opt_for(pm)
    h = DeltaLoRA(pm, opt, update_ratio=LAM, start_step=K, engine="folded")
    for x, y in data(K + 3):
        pm(input_ids=x, labels=y).loss.backward()
        opt.step()
        opt.zero_grad()
    assert h.switched
    x = torch.randn(3, 5, 64)
    for slot in h.slots:
        layer = slot.layer
        with torch.no_grad():
            got = layer(x) - layer.get_base_layer()(x)
            A, B, SA, SB = slot.A, slot.B, slot.snap_A, slot.snap_B
            want = slot.scaling * ((1 + LAM) * x @ A.T @ B.T - LAM * x @ SA.T @ SB.T)
        assert torch.allclose(got, want, atol=1e-5, rtol=1e-4), (slot.name, (got - want).abs().max())
        assert not torch.allclose(SA, A)  # the factors moved after the snapshot: the check is not vacuous


def literal_algorithm_1(ref, batches):
    """Algorithm 1 written out on a float32 model: after step t > K, W += lam*s*(B'A' - BA)."""
    opt = opt_for(ref)
    layers = lora_layers(ref)
    losses = []
    for t, (x, y) in enumerate(batches):
        prev = {
            n: (m.lora_A["default"].weight.detach().clone(), m.lora_B["default"].weight.detach().clone())
            for n, m in layers.items()
        }
        loss = ref(input_ids=x, labels=y).loss
        loss.backward()
        opt.step()
        opt.zero_grad()
        losses.append(loss.item())
        if t > K:
            with torch.no_grad():
                for n, m in layers.items():
                    a0, b0 = prev[n]
                    a1, b1 = m.lora_A["default"].weight, m.lora_B["default"].weight
                    m.get_base_layer().weight += LAM * m.scaling["default"] * (b1 @ a1 - b0 @ a0)
    return losses


@pytest.mark.parametrize("quantize", FOUR_BIT)
def test_folded_on_4bit_equals_algorithm_1_on_dequantized_weight(checkpoint, quantize):
    """The exactness test: folded Delta-LoRA on a 4-bit base = Algorithm 1 whose W is deq(W_q) in float32."""
    q = wrap(load(checkpoint, quantize))
    ref = load(checkpoint)
    with torch.no_grad():  # the reference holds every quantized weight dequantized, in float32
        qmods = dict(q.get_base_model().named_modules())
        n_deq = 0
        for name, m in ref.named_modules():
            if isinstance(m, torch.nn.Linear) and quantization_of(qmods[name]) is not None:
                m.weight.copy_(dequantized_weight(qmods[name]))
                n_deq += 1
    assert n_deq == 2 * 6 + 1  # q, k, v, attention output, intermediate, output in 2 layers; the pooler
    ref = wrap(ref)
    for (n1, p1), (n2, p2) in zip(sorted(q.named_parameters()), sorted(ref.named_parameters()), strict=False):
        if p1.requires_grad:
            assert n1 == n2 and torch.equal(p1, p2)
    batches = data(10)
    opt = opt_for(q)
    DeltaLoRA(q, opt, update_ratio=LAM, start_step=K, engine="folded")
    ref_losses = literal_algorithm_1(ref, batches)
    dev = 0.0
    for t, (x, y) in enumerate(batches):
        loss = q(input_ids=x, labels=y).loss
        loss.backward()
        opt.step()
        opt.zero_grad()
        dev = max(dev, abs(loss.item() - ref_losses[t]) / abs(ref_losses[t]))
    trained = dict(q.named_parameters())
    for n, p in ref.named_parameters():
        if p.requires_grad:
            assert torch.allclose(trained[n], p, atol=2e-5, rtol=1e-4), (n, (trained[n] - p).abs().max())
    x = data(1, seed=7)[0][0]
    with torch.no_grad():  # train mode (dropout is 0): eval mode on CPU would switch bnb to its bf16 kernel
        lq, lr = q(input_ids=x).logits, ref(input_ids=x).logits
    assert torch.allclose(lq, lr, atol=2e-5, rtol=1e-4), (lq - lr).abs().max()
    assert dev < 1e-5
    print(
        f"{quantize}: max relative loss deviation {dev:.2e}, max logit deviation {(lq - lr).abs().max():.2e}"
    )


def trained(checkpoint, quantize, steps: int = 6):
    pm = wrap(load(checkpoint, quantize))
    opt = opt_for(pm)
    h = DeltaLoRA(pm, opt, update_ratio=LAM, start_step=K, engine="folded")
    for x, y in data(steps):
        pm(input_ids=x, labels=y).loss.backward()
        opt.step()
        opt.zero_grad()
    pm.eval()
    return pm, h


@pytest.mark.parametrize("quantize", ["nf4", "int8"])
def test_exported_rank_2r_adapter_reproduces_outputs_on_the_same_quantized_base(
    tmp_path, checkpoint, quantize
):
    pm, h = trained(checkpoint, quantize)
    x = data(1, seed=9)[0][0]
    with torch.no_grad():
        want = pm(input_ids=x).logits
    h.export_adapter(tmp_path / "adapter")
    loaded = PeftModel.from_pretrained(
        load(checkpoint, quantize), tmp_path / "adapter"
    ).eval()  # vanilla PEFT
    assert loaded.peft_config["default"].r == 2 * R
    assert all(quantization_of(m) is not None for m in lora_layers(loaded).values())
    with torch.no_grad():
        got = loaded(input_ids=x).logits
    tol = 1e-5
    assert torch.allclose(got, want, atol=tol), (got - want).abs().max()
    plain = PeftModel.from_pretrained(load(checkpoint, quantize), tmp_path / "adapter").eval()
    with plain.disable_adapter(), torch.no_grad():
        assert not torch.allclose(
            plain(input_ids=x).logits, want, atol=1e-3
        )  # the adapter carries the training


def test_merge_and_unload_on_4bit_dequantizes_merges_requantizes(checkpoint):
    """As PEFT does for LoRA on bitsandbytes: W' = Q(deq(W_q) + effective delta), still a 4-bit layer."""
    import bitsandbytes.functional as F

    pm, h = trained(checkpoint, "nf4")
    expect = {}
    for slot in h.slots:
        target = dequantized_weight(slot.layer) + slot.effective_delta()
        qw, state = F.quantize_4bit(target, quant_type="nf4")
        expect[slot.name] = (F.dequantize_4bit(qw, state), target)
    merged = h.merge_and_unload()
    mods = dict(merged.named_modules())
    for name, (requantized, exact) in expect.items():
        layer = mods[name.replace("base_model.model.", "")]
        assert quantization_of(layer) == "bnb-nf4"  # still 4-bit: requantized, not left in float
        got = dequantized_weight(layer)
        assert torch.allclose(got, requantized, atol=1e-6)
        assert not torch.allclose(got, exact, atol=1e-4)  # so the merge is lossy (PEFT warns the same)


@pytest.mark.parametrize("model", ["tiny", "gpt2-embedded"])
def test_memory_rows_on_the_4bit_base(tmp_path, model):
    """The memory table's 4-bit rows: weights shrink to 4 bits (constants counted), Delta-LoRA folded keeps
    exactly QLoRA's saved tensors plus S_A x (r numbers per token and layer) and factor-sized constants."""
    from deltalora.benchmark import quantized_checkpoint, run_one

    ckpt = quantized_checkpoint(model, tmp_path)
    kw = dict(device="cpu", dtype="fp32", batch=2, seq=8, steps=1, warmup=1, threads=1)
    q = run_one(model, "qlora", checkpoint=ckpt, **kw)
    f = run_one(model, "folded_4bit", checkpoint=ckpt, **kw)
    lora = run_one(model, "lora", **kw)
    if (
        model == "tiny"
    ):  # 13 Linears (6 per layer + pooler), 102400 weights: 4 bits each + a float32 absmax per
        # block of 64 + NF4's 16-entry float32 code per layer, instead of 32 bits each
        n = 2 * (4 * 64 * 64 + 2 * 64 * 256) + 64 * 64
        assert lora["weights_bytes"] - q["weights_bytes"] == n * 4 - (n // 2 + n // 64 * 4 + 13 * 16 * 4)
    assert q["weights_bytes"] < lora["weights_bytes"]
    assert f["weights_bytes"] == q["weights_bytes"] and f["trainable_params"] == q["trainable_params"]
    # per adapted layer the folded function also keeps S_A x (r per token), [A; S_A] (2r x in) and S_B
    # (out x r)
    r, tokens = 8, 2 * 8
    layers = (
        [(64, 64)] * 4 if model == "tiny" else [(128, 384)] * 2
    )  # (in, out): query+value x 2, or c_attn x 2
    extra = sum(4 * (tokens * r + 2 * r * fan_in + fan_out * r) for fan_in, fan_out in layers)
    assert f["saved_activation_bytes"] - q["saved_activation_bytes"] == extra
    assert f["extra_updated_params"] > 0 and q["extra_updated_params"] == 0


def test_memory_table_qlora_section(tmp_path):
    from deltalora.collect.memory import qlora_section

    rows = []
    for c, peak, step, saved in (
        ("qlora", 100, 1.0, 1000),
        ("folded_4bit", 104, 1.03, 1010),
        ("inplace", 300, 0.9, 1000),
        ("lora", 290, 0.9, 1000),
    ):
        rows.append(
            {
                "model": "m",
                "dtype": "fp32",
                "config": c,
                "peak_bytes": peak * 2**20,
                "median_step_s": step,
                "saved_activation_bytes": saved,
                "weights_bytes": 1,
                "peak_ratio_to_qlora": peak / 100,
                "step_ratio_to_qlora": step,
                "saved_ratio_to_qlora": saved / 1000,
            }
        )
    import pandas as pd

    text = "\n".join(qlora_section(pd.DataFrame(rows)))
    assert "| m | Delta-LoRA folded, NF4 base | 104.0 | 1.040 | 1030.0 | 1.030 |" in text
    assert "peak x1.040, step x1.030, saved activations x1.010 of QLoRA -> within the 1.05x goal" in text
    assert "inplace on the fp32 base is x3.000 of QLoRA's peak" in text
    rows[1]["step_ratio_to_qlora"] = 1.2
    assert "NOT within the 1.05x goal" in "\n".join(qlora_section(pd.DataFrame(rows)))
    assert qlora_section(pd.DataFrame(rows[2:])) == []


def test_eval_forward_keeps_the_training_kernel(tmp_path):
    """A run evaluates (eval mode, no_grad) between epochs and trains on. bitsandbytes' CPU inference
    path would repack the 4-bit weight for a bf16 kernel, which crashes for an input size below the block
    (64: the paper profile's tiny stand-ins are 32 wide) and changes what the layer computes afterwards.
    Models loaded through deltalora.models keep the training kernel: eval output equals train output."""
    from deltalora.core.quantized import keep_training_kernel
    from deltalora.models import load_pretrained

    torch.manual_seed(0)
    cfg = BertConfig(
        vocab_size=VOCAB,
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=16,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
        num_labels=3,
    )
    BertForSequenceClassification(cfg).save_pretrained(tmp_path / "m")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = load_pretrained(str(tmp_path / "m"), BertForSequenceClassification, {"quantize": "nf4"})
    layers = [m for m in model.modules() if quantization_of(m) == "bnb-nf4"]
    assert layers and not any(getattr(m, "support_avx512bf16_for_cpu", False) for m in layers)
    x = torch.randint(0, VOCAB, (2, 6))
    with torch.no_grad():
        train_out = model.train()(x).logits
        eval_out = model.eval()(x).logits
    assert torch.equal(train_out, eval_out)
    assert dequantized_weight(layers[0]).shape == (32, 32)  # still the standard layout
    assert keep_training_kernel(model) == 0  # nothing left to change
