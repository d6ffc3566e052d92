"""DyLoRA baseline: truncated forward, gradients, eval = LoRA, sampler, Trainer callback, GPT-2 Conv1D."""

from __future__ import annotations

import copy
from types import SimpleNamespace

import pytest
import torch
from peft import LoraConfig, get_peft_model
from tiny_models import randomize_lora
from transformers import BertConfig, BertForSequenceClassification, GPT2Config, GPT2LMHeadModel

from deltalora.methods.base import Method, MethodContext
from deltalora.methods.dylora import (
    METHOD,
    DyLoRAController,
    DyLoRARankCallback,
    get_controller,
    install_dylora,
    uninstall_dylora,
)

torch.set_num_threads(1)

R, ALPHA = 4, 8
HP = {"r": R, "alpha": ALPHA, "dropout": 0.0}
BERT_CTX = MethodContext(target_modules=("query", "value"), modules_to_save=("classifier",), seed=7)
GPT2_CTX = MethodContext(target_modules=("c_attn",), fan_in_fan_out=True, task_type="CAUSAL_LM", seed=7)
PREFIX = "base_model.model."


def _bert() -> BertForSequenceClassification:
    torch.manual_seed(0)
    cfg = BertConfig(
        vocab_size=100,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=37,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
        num_labels=3,
    )
    return BertForSequenceClassification(cfg).double()


def _gpt2() -> GPT2LMHeadModel:
    torch.manual_seed(0)
    cfg = GPT2Config(
        vocab_size=100,
        n_embd=32,
        n_layer=2,
        n_head=2,
        n_positions=32,
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
    )
    return GPT2LMHeadModel(cfg).double()


def _lora_factors(model):
    """{module path in the base model: (A (r x in), B (out x r))} for every adapted layer."""
    out = {}
    for name, p in model.named_parameters():
        if ".lora_A.default.weight" in name:
            path = name[len(PREFIX) : -len(".lora_A.default.weight")]
            b_name = name.replace("lora_A", "lora_B")
            out[path] = (p.detach(), dict(model.named_parameters())[b_name].detach())
    return out


def _hand_model(base, model, b: int, conv1d: bool = False):
    """A copy of the base model with W += (alpha/b) B[:, :b] A[:b, :] merged by hand."""
    ref = copy.deepcopy(base)
    mods = dict(ref.named_modules())
    with torch.no_grad():
        for path, (a, bm) in _lora_factors(model).items():
            delta = (ALPHA / b) * bm[:, :b] @ a[:b, :]
            mods[path].weight += delta.T if conv1d else delta
    return ref


IDS = torch.tensor([[5, 17, 42, 3, 99, 8, 1], [2, 4, 6, 8, 10, 12, 14]])


def _dylora_bert(**hp):
    base = _bert()
    model = METHOD.apply(copy.deepcopy(base), {**HP, **hp}, BERT_CTX)
    randomize_lora(model)
    return base, model


def test_method_contract():
    assert isinstance(METHOD, Method) and METHOD.name == "dylora" and METHOD.description
    assert {"r", "alpha", "dropout"} <= set(METHOD.defaults)
    assert METHOD.defaults["r"] == 8 and METHOD.defaults["alpha"] == 16 and METHOD.defaults["dropout"] == 0.0
    base, model = _dylora_bert()
    cbs = METHOD.callbacks(model, HP, BERT_CTX)
    assert len(cbs) == 1 and isinstance(cbs[0], DyLoRARankCallback)
    ctl = get_controller(model)
    assert cbs[0].controller is ctl and ctl.r == R and ctl.seed == BERT_CTX.seed and ctl.frozen
    assert len(ctl.layers) == 4  # query + value in 2 layers
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n or "classifier" in n for n in trainable)


@pytest.mark.parametrize("b", [1, 3, R])
def test_truncated_forward_equals_hand_merge(b):
    base, model = _dylora_bert()
    ctl = get_controller(model)
    model.train()
    ctl.set_rank(b)
    got = model(input_ids=IDS).logits
    ref = _hand_model(base, model, b)
    # modules_to_save trains a copy of the classifier; give the hand model the same head
    ref.classifier.load_state_dict(model.base_model.model.classifier.modules_to_save["default"].state_dict())
    want = ref.train()(input_ids=IDS).logits
    torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)
    # and the truncation really matters
    if b < R:
        ctl.set_rank(R)
        assert not torch.allclose(model(input_ids=IDS).logits, got)


def test_single_layer_branch_by_hand():
    """One LoRA layer: output = base(x) + (alpha/b) B[:, :b] A[:b] x."""
    _, model = _dylora_bert()
    ctl = get_controller(model)
    layer = ctl.layers[0]
    x = torch.randn(3, 32, dtype=torch.float64)
    layer.train()
    for b in range(1, R + 1):
        ctl.set_rank(b)
        a, bm = layer.lora_A["default"].weight, layer.lora_B["default"].weight
        want = layer.base_layer(x) + (ALPHA / b) * x @ a[:b].T @ bm[:, :b].T
        torch.testing.assert_close(layer(x), want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("frozen", [True, False])
def test_gradient_support(frozen):
    _, model = _dylora_bert(frozen=frozen)
    ctl = get_controller(model)
    model.train()
    b = 3
    ctl.set_rank(b)
    model(input_ids=IDS, labels=torch.tensor([0, 2])).loss.backward()
    for path in _lora_factors(model):
        ga = dict(model.named_parameters())[PREFIX + path + ".lora_A.default.weight"].grad
        gb = dict(model.named_parameters())[PREFIX + path + ".lora_B.default.weight"].grad
        row_nonzero = ga.abs().sum(1) > 0
        col_nonzero = gb.abs().sum(0) > 0
        trained = [b - 1] if frozen else list(range(b))
        assert row_nonzero.tolist() == [i in trained for i in range(R)], path
        assert col_nonzero.tolist() == [i in trained for i in range(R)], path


def test_eval_full_rank_is_plain_peft_lora():
    _, model = _dylora_bert()
    ctl = get_controller(model)
    torch.manual_seed(0)
    plain = get_peft_model(
        _bert(),
        LoraConfig(
            r=R,
            lora_alpha=ALPHA,
            target_modules=["query", "value"],
            modules_to_save=["classifier"],
            task_type="SEQ_CLS",
        ),
    )
    # identical PEFT state-dict keys: the truncation adds and renames nothing
    assert list(plain.state_dict()) == list(model.state_dict())
    plain.load_state_dict(model.state_dict())
    want = plain.eval()(input_ids=IDS).logits
    model.eval()
    ctl.set_rank(1)  # the training rank must not leak into eval mode
    assert torch.equal(model(input_ids=IDS).logits, want)
    # training mode at full rank, nothing detached: also plain LoRA
    ctl.frozen = False
    ctl.set_rank(R)
    assert torch.equal(model.train()(input_ids=IDS).logits, plain.train()(input_ids=IDS).logits)
    # a smaller evaluation rank gives the truncated forward
    ctl.set_eval_rank(2)
    ctl.set_rank(2)
    torch.testing.assert_close(model.eval()(input_ids=IDS).logits, model.train()(input_ids=IDS).logits)
    # merging merges the full-rank adapter
    ctl.set_eval_rank(None)
    model.eval()
    model.merge_adapter()
    torch.testing.assert_close(model(input_ids=IDS).logits, want)


def test_sampler_uniform_and_reproducible():
    ctl = DyLoRAController(8, seed=123)
    draws = [ctl.sample() for _ in range(8000)]
    counts = torch.bincount(torch.tensor(draws), minlength=9)
    assert counts[0] == 0 and all(counts[1:] > 0)
    assert all(abs(c - 1000) < 200 for c in counts[1:].tolist()), counts  # ~6.7 sigma band
    assert ctl.rank == draws[-1] and ctl.num_draws == 8000
    again = DyLoRAController(8, seed=123)
    assert [again.sample() for _ in range(200)] == draws[:200]
    other = DyLoRAController(8, seed=124)
    assert [other.sample() for _ in range(200)] != draws[:200]
    # the private generator neither uses nor disturbs torch's global RNG
    torch.manual_seed(5)
    x = torch.rand(3)
    torch.manual_seed(5)
    ctl.sample()
    assert torch.equal(torch.rand(3), x)


def test_sampler_state_roundtrip_and_resume():
    ctl = DyLoRAController(8, seed=3)
    [ctl.sample() for _ in range(10)]
    state = ctl.state_dict()
    cont = [ctl.sample() for _ in range(20)]
    restored = DyLoRAController(8, seed=999)
    restored.load_state_dict(copy.deepcopy(state))
    assert restored.num_draws == 10 and [restored.sample() for _ in range(20)] == cont
    # JSON-friendly state (no generator bytes) replays from the seed
    light = {k: v for k, v in state.items() if k != "generator_state"}
    replayed = DyLoRAController(8)
    replayed.load_state_dict(light)
    assert replayed.rank == state["rank"] and [replayed.sample() for _ in range(20)] == cont
    # what a resumed Trainer does: sync to the checkpoint's global_step
    cb = DyLoRARankCallback(DyLoRAController(8, seed=3))
    cb.on_train_begin(None, SimpleNamespace(global_step=10), None)
    assert [cb.controller.sample() for _ in range(20)] == cont
    with pytest.raises(ValueError):
        ctl.set_rank(9)


def test_trainer_draws_once_per_optimizer_step(tmp_path):
    from transformers import Trainer, TrainingArguments

    _, model = _dylora_bert()
    ctl = get_controller(model)
    seen = []
    hook = ctl.layers[0].register_forward_pre_hook(lambda m, a: seen.append(ctl.rank) if m.training else None)
    data = [{"input_ids": IDS[i % 2], "labels": i % 3} for i in range(12)]
    args = TrainingArguments(
        output_dir=str(tmp_path),
        per_device_train_batch_size=2,
        gradient_accumulation_steps=2,
        max_steps=3,
        learning_rate=1e-3,
        report_to=[],
        save_strategy="no",
        logging_strategy="no",
        use_cpu=True,
        disable_tqdm=True,
        seed=0,
        dataloader_num_workers=0,
    )
    callbacks = METHOD.callbacks(model, HP, BERT_CTX)
    trainer = Trainer(model=model, args=args, train_dataset=data, callbacks=callbacks)
    trainer.train()
    hook.remove()
    expected = DyLoRAController(R, seed=BERT_CTX.seed)
    want = [expected.sample() for _ in range(3)]
    assert seen == [b for b in want for _ in range(2)]  # both micro-batches of a step share the rank
    assert ctl.num_draws == 3 and ctl.rank is None  # back to full rank after training


def test_gpt2_conv1d_fan_in_fan_out():
    base = _gpt2()
    model = METHOD.apply(copy.deepcopy(base), HP, GPT2_CTX)
    randomize_lora(model)
    ctl = get_controller(model)
    assert len(ctl.layers) == 2
    ids = IDS % 100
    model.train()
    for b in (1, 2):
        ctl.set_rank(b)
        got = model(input_ids=ids).logits
        want = _hand_model(base, model, b, conv1d=True).train()(input_ids=ids).logits
        torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)
    model.zero_grad()
    model(input_ids=ids, labels=ids).loss.backward()
    for layer in ctl.layers:
        ga, gb = layer.lora_A["default"].weight.grad, layer.lora_B["default"].weight.grad
        assert (ga.abs().sum(1) > 0).tolist() == [False, True, False, False]
        assert (gb.abs().sum(0) > 0).tolist() == [False, True, False, False]
    ctl.set_rank(1)
    want = _hand_model(base, model, R, conv1d=True).eval()(input_ids=ids).logits
    torch.testing.assert_close(model.eval()(input_ids=ids).logits, want)


def test_deepcopy_and_uninstall():
    _, model = _dylora_bert()
    clone = copy.deepcopy(model)
    c1, c2 = get_controller(model), get_controller(clone)
    assert c1 is not c2 and all(layer.lora_A["default"]._dylora is c2 for layer in c2.layers)
    c2.set_rank(1)
    assert c1.rank is None
    model.eval()
    before = model(input_ids=IDS).logits
    uninstall_dylora(model)
    assert type(c1.layers[0].lora_A["default"]) is torch.nn.Linear
    assert torch.equal(model(input_ids=IDS).logits, before)
    with pytest.raises(ValueError):
        get_controller(model)
    # installing on a model without LoRA layers fails loudly
    with pytest.raises(ValueError):
        install_dylora(_bert())
