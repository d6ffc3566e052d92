"""GradientCosineProbe / GradientCosineCallback: the cosine between dL/dW and dL/d(BA).

References are computed by autograd, independently of the probe: dL/dW by making W require grad
(here, in the test only; the probe never does), dL/d(BA) as the gradient of a zero matrix D added to
the branch (s * (B A + D) drop(x)), whose gradient is exactly dL/d(BA). Dropout masks are made
identical between the probe's pass and the reference pass by seeding the RNG before each forward.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from peft.tuners.lora import LoraLayer
from tiny_models import batches, lora_model

from deltalora.gradients import GradientCosineCallback, GradientCosineProbe

torch.set_num_threads(1)


def _model(kind: str, dropout: float, seed: int = 0):
    m = lora_model(kind, dropout=dropout, seed=seed, init_lora_weights=False)  # B random, not 0
    m.train()
    return m


def _lora_layers(model):
    return {n: m for n, m in model.named_modules() if isinstance(m, LoraLayer)}


def _probe_pass(model, bs, seed):
    model.zero_grad(set_to_none=True)
    with GradientCosineProbe(model) as probe:
        for i, b in enumerate(bs):
            torch.manual_seed(seed + i)
            model(**b).loss.backward()
    return probe


def _reference(model, bs, seed):
    """{layer: (dL/dW, dL/d(BA))} by autograd, out x in, summed over batches (masks as in _probe_pass)."""
    layers = _lora_layers(model)
    handles, deltas, weights = [], {}, {}
    for name, m in layers.items():
        w = m.get_base_layer().weight
        w.requires_grad_(True)  # test only
        w.grad = None
        weights[name] = w
        out_f, in_f = m.lora_B["default"].out_features, m.lora_A["default"].in_features
        D = torch.zeros(out_f, in_f, dtype=torch.float64, requires_grad=True)
        deltas[name] = D
        seen: dict = {}

        def a_hook(mod, args, seen=seen):
            seen["d"] = args[0]

        def b_hook(mod, args, out, seen=seen, D=D):
            return out + F.linear(seen["d"], D)  # lora_B(...) + D d, then * s by PEFT

        handles += [
            m.lora_A["default"].register_forward_pre_hook(a_hook),
            m.lora_B["default"].register_forward_hook(b_hook),
        ]
    try:
        for i, b in enumerate(bs):
            torch.manual_seed(seed + i)
            model(**b).loss.backward()
        out = {}
        for name, m in layers.items():
            gw = weights[name].grad.detach().clone()
            if type(m.get_base_layer()).__name__ == "Conv1D":
                gw = gw.T  # stored in x out
            out[name] = (gw, deltas[name].grad.detach().clone())
    finally:
        for h in handles:
            h.remove()
        for w in weights.values():
            w.requires_grad_(False)
            w.grad = None
        model.zero_grad(set_to_none=True)
    return out


def _close(a, b, tol=1e-10):
    return (a - b).abs().max().item() <= tol * max(1.0, b.abs().max().item())


def _cos(a, b):
    return float((a * b).sum() / (a.norm() * b.norm()))


def _frozen_weights_untouched(model):
    for m in _lora_layers(model).values():
        w = m.get_base_layer().weight
        assert not w.requires_grad and w.grad is None


def test_without_dropout_cosine_is_one():
    model = _model("bert", 0.0)
    probe = _probe_pass(model, batches("bert", 1), seed=1)
    cos = probe.cosines()
    assert len(cos) == 4  # 2 layers x (query, value)
    assert all(abs(c - 1.0) < 1e-12 for c in cos.values()), cos
    _frozen_weights_untouched(model)


@pytest.mark.parametrize("dropout", [0.0, 0.3])
def test_probe_matches_autograd(dropout):
    model = _model("bert", dropout)
    bs = batches("bert", 1)
    probe = _probe_pass(model, bs, seed=7)
    _frozen_weights_untouched(model)
    ref = _reference(model, bs, seed=7)
    mats = probe.matrices()
    assert set(mats) == set(ref)
    for name, (gw, gba) in mats.items():
        assert gw.dtype == gba.dtype == torch.float64
        assert gw.abs().max() > 0 and gba.abs().max() > 0
        assert _close(gw, ref[name][0]), name
        assert _close(gba, ref[name][1]), name
        assert abs(probe.cosines()[name] - _cos(*ref[name])) < 1e-10
    if dropout:
        cos = probe.cosines()
        assert all(c < 0.99 for c in cos.values()), cos  # dropout breaks dL/dW == dL/d(BA)
        assert all(c > 0 for c in cos.values()), cos


def test_gradient_accumulation_sums_micro_batches():
    model = _model("bert", 0.3)
    bs = batches("bert", 2, seed=5)
    probe = _probe_pass(model, bs, seed=11)
    assert set(probe.backwards().values()) == {2}
    parts = [_reference(model, [bs[i]], seed=11 + i) for i in range(2)]
    for name, (gw, gba) in probe.matrices().items():
        assert _close(gw, parts[0][name][0] + parts[1][name][0])
        assert _close(gba, parts[0][name][1] + parts[1][name][1])
    # and the single-micro-batch probe differs: the sum really covers both
    one = _probe_pass(model, bs[:1], seed=11).matrices()
    name = next(iter(one))
    assert not _close(one[name][0], probe.matrices()[name][0])


@pytest.mark.parametrize("dropout", [0.0, 0.3])
def test_gpt2_conv1d(dropout):
    model = _model("gpt2", dropout)
    bs = batches("gpt2", 1)
    probe = _probe_pass(model, bs, seed=3)
    ref = _reference(model, bs, seed=3)
    assert len(ref) == 2
    for name, (gw, gba) in probe.matrices().items():
        assert gw.shape == (72, 24)  # c_attn: out x in
        assert _close(gw, ref[name][0]) and _close(gba, ref[name][1])
    cos = probe.cosines()
    if dropout:
        assert all(c < 0.99 for c in cos.values())
    else:
        assert all(abs(c - 1) < 1e-12 for c in cos.values())
    _frozen_weights_untouched(model)


def test_disarmed_probe_and_no_grad_forwards_record_nothing():
    model = _model("bert", 0.3)
    layer = next(iter(_lora_layers(model).values()))
    before = (len(layer._forward_hooks), len(layer._forward_pre_hooks))
    probe = GradientCosineProbe(model)
    with torch.no_grad():
        model(**batches("bert", 1)[0])
    assert probe.matrices() == {} and all(math.isnan(c) for c in probe.cosines().values())
    probe.disarm()
    assert (len(layer._forward_hooks), len(layer._forward_pre_hooks)) == before
    model(**batches("bert", 1)[0]).loss.backward()
    assert probe.matrices() == {}


# --------------------------------------------------------------------------- inside transformers.Trainer
def _dataset(n=32):
    from datasets import Dataset

    rows = batches("bert", n // 4)
    return Dataset.from_dict(
        {
            "input_ids": torch.cat([b["input_ids"] for b in rows]).tolist(),
            "labels": torch.cat([b["labels"] for b in rows]).tolist(),
        }
    )


def _train(tmp_path, model, callbacks, *, max_steps, accum, save_steps=None, resume=None):
    from transformers import Trainer, TrainingArguments

    args = TrainingArguments(
        output_dir=str(tmp_path),
        per_device_train_batch_size=4,
        gradient_accumulation_steps=accum,
        max_steps=max_steps,
        learning_rate=1e-2,
        logging_steps=1000,
        report_to=[],
        save_strategy="steps" if save_steps else "no",
        save_steps=save_steps or 500,
        seed=0,
        data_seed=0,
        use_cpu=True,
        disable_tqdm=True,
    )
    trainer = Trainer(model=model, args=args, train_dataset=_dataset(), callbacks=callbacks)
    trainer.train(resume_from_checkpoint=resume)
    return trainer


def test_callback_in_trainer_with_dropout_and_accumulation(tmp_path):
    model = _model("bert", 0.3)
    layer = next(iter(_lora_layers(model).values()))
    n_hooks = len(layer._forward_hooks)
    cb = GradientCosineCallback(steps=[1, 3])
    trainer = _train(tmp_path, model, [cb], max_steps=4, accum=2)
    assert trainer.state.global_step == 4
    assert sorted(cb.results) == [1, 3]  # the requested steps only
    for t in (1, 3):
        assert len(cb.results[t]) == 4
        assert all(0 < c < 0.99 for c in cb.results[t].values()), cb.results[t]
        assert set(cb.backwards[t].values()) == {2}  # both micro-batches of the step
    assert len(layer._forward_hooks) == n_hooks  # disarmed
    rec = cb.to_record()
    assert sorted(rec) == ["1", "3"] and set(rec["1"]) == set(cb.results[1])


@pytest.mark.parametrize("dropout", [0.0, 0.3])
def test_callback_with_folded_delta_lora(tmp_path, dropout):
    """Without dropout the folded engine bypasses lora_A (drop(x) = x); with allow_dropout it calls it."""
    from deltalora import DeltaLoRACallback
    from deltalora.core._folded import FoldedVariant

    model = _model("bert", dropout)
    cb = GradientCosineCallback(steps=[3])
    dl = DeltaLoRACallback(update_ratio=2.0, start_step=0, engine="folded", allow_dropout=dropout > 0)
    _train(tmp_path, model, [dl, cb], max_steps=4, accum=1)
    layer = next(iter(_lora_layers(model).values()))
    assert isinstance(layer.lora_variant.get("default"), FoldedVariant)  # the folded branch ran at step 3
    assert sorted(cb.results) == [3]
    if dropout:
        assert all(0 < c < 0.99 for c in cb.results[3].values()), cb.results[3]
    else:
        assert all(abs(c - 1) < 1e-12 for c in cb.results[3].values()), cb.results[3]
    _frozen_weights_untouched(model)


def test_callback_results_survive_resume(tmp_path):
    first = GradientCosineCallback(steps=[1, 3])
    _train(tmp_path, _model("bert", 0.3), [first], max_steps=4, accum=1, save_steps=2)
    resumed = GradientCosineCallback(steps=[1, 3])
    _train(
        tmp_path, _model("bert", 0.3), [resumed], max_steps=4, accum=1, resume=str(tmp_path / "checkpoint-2")
    )
    assert sorted(resumed.results) == [1, 3]
    assert resumed.results[1] == first.results[1]  # restored from the checkpoint, not re-measured
    for name, c in first.results[3].items():  # re-measured after an exact resume
        assert abs(resumed.results[3][name] - c) < 1e-9


def test_callback_validates_steps():
    for bad in ([-1], [1.5], [True]):
        with pytest.raises(ValueError):
            GradientCosineCallback(steps=bad)
