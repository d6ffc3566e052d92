"""Delta-LoRA against an independent, literal Algorithm 1 in float64.

The reference below does not use deltalora at all: it trains plain PEFT LoRA with AdamW and, after
each optimizer step t > K, adds lam*s*(B'A' - BA) to every adapted W by forming both full products,
exactly as the paper's Algorithm 1 reads. Both engines must match it to 1e-9.
"""

from __future__ import annotations

import copy

import pytest
import torch
from peft import LoraConfig, PeftModel, get_peft_model_state_dict, set_peft_model_state_dict
from peft.tuners.lora import LoraLayer
from tiny_models import base_model, batches, logits, lora_model, make_optimizer

import deltalora.core._folded as folded_mod
from deltalora import DeltaLoRA

TOL = 1e-9
STEPS = 30
K = 5


def lora_layers(model):
    return [(n, m) for n, m in model.named_modules() if isinstance(m, LoraLayer) and "default" in m.lora_A]


def train_steps(model, kind, opt, data, *, accum: int = 1):
    model.train()
    for i, batch in enumerate(data):
        loss = model(**batch).loss / accum
        loss.backward()
        if (i + 1) % accum == 0:
            opt.step()
            opt.zero_grad(set_to_none=True)


def reference_run(kind, lam, k, steps, *, accum: int = 1, **model_kw):
    """Algorithm 1, literally, on plain PEFT LoRA."""
    model = lora_model(kind, **model_kw)
    opt = make_optimizer(model)
    layers = [m for _, m in lora_layers(model)]
    data = batches(kind, steps * accum)
    t = 0
    model.train()
    for i, batch in enumerate(data):
        (model(**batch).loss / accum).backward()
        if (i + 1) % accum:
            continue
        old = [
            (m.lora_B["default"].weight.detach().clone(), m.lora_A["default"].weight.detach().clone())
            for m in layers
        ]
        opt.step()
        opt.zero_grad(set_to_none=True)
        if t > k:
            with torch.no_grad():
                for m, (b0, a0) in zip(layers, old, strict=False):
                    b1, a1 = m.lora_B["default"].weight, m.lora_A["default"].weight
                    delta = lam * m.scaling["default"] * (b1 @ a1 - b0 @ a0)
                    if m.fan_in_fan_out:
                        delta = delta.T
                    m.get_base_layer().weight += delta
        t += 1
    return model


def engine_run(kind, engine, lam, k, steps, *, accum: int = 1, **model_kw):
    model = lora_model(kind, **model_kw)
    opt = make_optimizer(model)
    handle = DeltaLoRA(
        model,
        opt,
        update_ratio=lam,
        start_step=k,
        engine=engine,
        allow_dropout=model_kw.get("dropout", 0) > 0,
    )
    train_steps(model, kind, opt, batches(kind, steps * accum), accum=accum)
    return model, handle


def max_dev(m1, m2, kind) -> dict[str, float]:
    out = {"logits": (logits(m1, kind) - logits(m2, kind)).abs().max().item()}
    d_ab = 0.0
    for (_, a), (_, b) in zip(lora_layers(m1), lora_layers(m2), strict=False):
        d_ab = max(d_ab, (a.lora_A["default"].weight - b.lora_A["default"].weight).abs().max().item())
        d_ab = max(d_ab, (a.lora_B["default"].weight - b.lora_B["default"].weight).abs().max().item())
    out["AB"] = d_ab
    return out


@pytest.mark.parametrize("kind", ["bert", "gpt2"])
@pytest.mark.parametrize("engine", ["inplace", "folded"])
@pytest.mark.parametrize("lam", [0.0, 0.5, 2.0])
def test_engines_match_reference_algorithm_1(kind, engine, lam):
    ref = reference_run(kind, lam, K, STEPS)
    model, handle = engine_run(kind, engine, lam, K, STEPS)
    dev = max_dev(model, ref, kind)
    assert dev["logits"] < TOL and dev["AB"] < TOL, dev
    assert handle.step == STEPS
    w0 = base_model(kind)
    for (name, layer), (_, ref_layer) in zip(lora_layers(model), lora_layers(ref), strict=False):
        w = layer.get_base_layer().weight
        orig = w0.get_submodule(name.replace("base_model.model.", "")).weight
        if engine == "folded":
            assert torch.equal(w, orig), f"folded engine wrote W of {name}"
            # ... but its effective weight is Algorithm 1's W_T
            eff = (
                orig
                + handle.slots[[s.name for s in handle.slots].index(name)].effective_delta()
                - (layer.get_delta_weight("default"))
            )
            assert (eff - ref_layer.get_base_layer().weight).abs().max().item() < TOL
        else:
            assert (w - ref_layer.get_base_layer().weight).abs().max().item() < TOL
    if lam > 0:  # the comparison is not vacuous: Delta-LoRA really differs from LoRA here
        lora = reference_run(kind, 0.0, K, STEPS)
        assert (logits(model, kind) - logits(lora, kind)).abs().max().item() > 1e-4


def test_rslora_and_more_targets_match_reference():
    kw = dict(use_rslora=True, targets=["query", "key", "value", "dense"], r=3, alpha=5)
    ref = reference_run("bert", 2.0, 3, 20, **kw)
    for engine in ("inplace", "folded"):
        model, _ = engine_run("bert", engine, 2.0, 3, 20, **kw)
        dev = max_dev(model, ref, "bert")
        assert dev["logits"] < TOL and dev["AB"] < TOL, (engine, dev)


def test_gpt2_all_conv1d_targets_match_reference():
    kw = dict(targets=["c_attn", "c_proj", "c_fc"])
    ref = reference_run("gpt2", 1.0, 2, 15, **kw)
    for engine in ("inplace", "folded"):
        model, _ = engine_run("gpt2", engine, 1.0, 2, 15, **kw)
        dev = max_dev(model, ref, "gpt2")
        assert dev["logits"] < TOL and dev["AB"] < TOL, (engine, dev)


def test_folded_term_detached_from_input_is_detected(monkeypatch):
    """Sanity check of the test itself: the wrong 'no gradient to x' branch must fail the comparison."""
    right = folded_mod.FoldedLoRAFunction.apply
    monkeypatch.setattr(folded_mod.FoldedLoRAFunction, "apply", lambda x, *rest: right(x.detach(), *rest))
    ref = reference_run("bert", 2.0, K, STEPS)
    model, _ = engine_run("bert", "folded", 2.0, K, STEPS)
    assert max_dev(model, ref, "bert")["AB"] > 1e-6


def test_folded_engine_uses_peft_variant_table_only():
    """One code path: the folded term lives in PEFT's `lora_variant` table (no forward hooks)."""
    model, handle = engine_run("bert", "folded", 2.0, 2, 5)
    for slot in handle.slots:
        assert isinstance(slot.layer.lora_variant["default"], folded_mod.FoldedVariant)
        assert not slot.layer._forward_hooks
    before = lora_model("bert")
    handle = DeltaLoRA(before, make_optimizer(before), update_ratio=2.0, start_step=2, engine="folded")
    handle.detach()  # before the switch: nothing of Delta-LoRA is left
    assert all("default" not in slot.layer.lora_variant for slot in handle.slots)


@pytest.mark.parametrize("engine", ["inplace", "folded"])
def test_dropout_allowed_matches_reference_algorithm(engine):
    """allow_dropout=True is Algorithm 1 as written with dropout in the branch (the ablation)."""
    torch.manual_seed(7)
    ref = reference_run("bert", 2.0, 3, 12, dropout=0.3)
    torch.manual_seed(7)
    model, _ = engine_run("bert", engine, 2.0, 3, 12, dropout=0.3)
    dev = max_dev(model, ref, "bert")
    assert dev["logits"] < TOL and dev["AB"] < TOL, dev


@pytest.mark.parametrize("engine", ["inplace", "folded"])
def test_lambda_zero_is_plain_lora_bitwise(engine):
    plain = lora_model("gpt2")
    opt = make_optimizer(plain)
    train_steps(plain, "gpt2", opt, batches("gpt2", 12))
    model, _ = engine_run("gpt2", engine, 0.0, 0, 12)
    assert torch.equal(logits(model, "gpt2"), logits(plain, "gpt2"))


@pytest.mark.parametrize("engine", ["inplace", "folded"])
def test_nothing_changes_before_the_switch(engine):
    k = 6
    plain = lora_model("bert")
    opt = make_optimizer(plain)
    train_steps(plain, "bert", opt, batches("bert", k))
    model, handle = engine_run("bert", engine, 2.0, k, k)
    assert torch.equal(logits(model, "bert"), logits(plain, "bert"))  # steps 0..K-1: bitwise plain LoRA
    assert not handle.switched
    train_steps(model, "bert", handle.optimizer, batches("bert", 1, seed=4))
    train_steps(plain, "bert", opt, batches("bert", 1, seed=4))
    # after step K the folded term is (BA - S)x = 0 exactly in real arithmetic; only rounding remains
    assert (logits(model, "bert") - logits(plain, "bert")).abs().max().item() < 1e-14
    w0 = base_model("bert")
    for name, layer in lora_layers(model):
        orig = w0.get_submodule(name.replace("base_model.model.", "")).weight
        assert torch.equal(layer.get_base_layer().weight, orig)
    assert handle.switched  # the snapshot is taken after K+1 steps; W moves from the next step on
    # one more step moves W (inplace) / the function (both)
    opt2 = handle.optimizer
    train_steps(model, "bert", opt2, batches("bert", 1, seed=5))
    train_steps(plain, "bert", opt, batches("bert", 1, seed=5))
    # a real change, far above the 1e-14 rounding drift allowed above
    moved = (logits(model, "bert") - logits(plain, "bert")).abs().max().item()
    assert moved > 1e-5, moved


@pytest.mark.parametrize("engine", ["inplace", "folded"])
def test_gradient_accumulation_counts_optimizer_steps(engine):
    accum, steps = 3, 10
    ref = reference_run("bert", 2.0, 2, steps, accum=accum)
    model, handle = engine_run("bert", engine, 2.0, 2, steps, accum=accum)
    assert handle.step == steps
    dev = max_dev(model, ref, "bert")
    assert dev["logits"] < TOL and dev["AB"] < TOL, dev


@pytest.mark.parametrize("engine", ["inplace", "folded"])
def test_amp_skipped_step_is_not_counted(engine):
    """torch.amp.GradScaler skips optimizer.step when a gradient is inf; that step must not count."""
    model = lora_model("bert", dtype=torch.float32)
    opt = make_optimizer(model)
    handle = DeltaLoRA(model, opt, update_ratio=2.0, start_step=0, engine=engine)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**8)
    data = batches("bert", 6)
    w = lora_layers(model)[0][1].get_base_layer().weight
    for i, batch in enumerate(data):
        scaler.scale(model(**batch).loss).backward()
        if i == 3:  # poison one gradient: the scaler must skip this step
            next(p for p in model.parameters() if p.grad is not None).grad.fill_(float("inf"))
            w_before, a_before = w.detach().clone(), handle.slots[0].A.detach().clone()
        scaler.step(opt)
        scaler.update()
        opt.zero_grad(set_to_none=True)
        if i == 3:
            assert handle.step == 3, "a skipped AMP step was counted"
            assert torch.equal(w, w_before) and torch.equal(handle.slots[0].A, a_before)
    assert handle.step == 5
    if engine == "inplace":
        assert not torch.equal(
            w, base_model("bert", dtype=torch.float32).bert.encoder.layer[0].attention.self.query.weight
        )


@pytest.mark.parametrize("kind", ["bert", "gpt2"])
@pytest.mark.parametrize("engine", ["inplace", "folded"])
def test_export_round_trip_rank_2r(tmp_path, kind, engine):
    r = 4
    model, handle = engine_run(kind, engine, 2.0, 3, 15, r=r)
    path = handle.export_adapter(tmp_path / "adapter")
    assert (path / "adapter_config.json").is_file() and (path / "adapter_model.safetensors").is_file()
    loaded = PeftModel.from_pretrained(base_model(kind), str(path))
    assert loaded.peft_config["default"].r == 2 * r
    assert (logits(loaded, kind) - logits(model, kind)).abs().max().item() < TOL
    merged = loaded.merge_and_unload()
    w0 = base_model(kind)
    for name, _ in lora_layers(model):
        sub = name.replace("base_model.model.", "")
        update = merged.get_submodule(sub).weight - w0.get_submodule(sub).weight
        assert torch.linalg.matrix_rank(update).item() <= 2 * r


def test_export_before_switch_is_plain_rank_r(tmp_path):
    model, handle = engine_run("bert", "folded", 2.0, 50, 5, r=4)
    path = handle.export_adapter(tmp_path / "a")
    loaded = PeftModel.from_pretrained(base_model("bert"), str(path))
    assert loaded.peft_config["default"].r == 4
    assert (logits(loaded, "bert") - logits(model, "bert")).abs().max().item() < TOL


def test_export_keeps_scale_with_rslora_and_rank_pattern(tmp_path):
    kw = dict(use_rslora=True, r=4, alpha=6, rank_pattern={"value": 2}, alpha_pattern={"query": 3})
    model, handle = engine_run("bert", "folded", 2.0, 2, 10, **kw)
    loaded = PeftModel.from_pretrained(base_model("bert"), str(handle.export_adapter(tmp_path / "a")))
    assert (logits(loaded, "bert") - logits(model, "bert")).abs().max().item() < TOL


@pytest.mark.parametrize("engine", ["inplace", "folded"])
def test_merge_and_unload_gives_effective_weights(engine):
    model, handle = engine_run("gpt2", engine, 2.0, 3, 12)
    expected = logits(model, "gpt2")
    merged = handle.merge_and_unload()
    assert not any(isinstance(m, LoraLayer) for m in merged.modules())
    assert (logits(merged, "gpt2") - expected).abs().max().item() < TOL


RESUME_K, RESUME_TOTAL = 4, 10
RESUME_AT = (RESUME_K - 1, RESUME_K, RESUME_K + 1, RESUME_K + 2)  # K-1, K, K+1 (the switch), K+2


def _strip_carried(opt_sd: dict) -> dict:
    """The optimizer's own state only: the resume must come through DeltaLoRA.load(), not the optimizer."""
    from deltalora.core.delta_lora import OPTIMIZER_STATE_KEY

    out = copy.deepcopy(opt_sd)
    for st in out["state"].values():
        st.pop(OPTIMIZER_STATE_KEY, None)
    return out


def _resume_from(folder, engine: str, at: int, model=None, opt=None, handle=None) -> torch.Tensor:
    """Restore the state saved at step `at` (into the given objects, or new ones) and train to the end."""
    data = batches("bert", RESUME_TOTAL)
    if model is None:
        model = lora_model("bert")
        opt = make_optimizer(model)
        handle = DeltaLoRA(model, opt, update_ratio=2.0, start_step=RESUME_K, engine=engine)
    saved = torch.load(f"{folder}/{engine}-{at}.pt", weights_only=True)
    set_peft_model_state_dict(model, saved["adapter"])
    opt.load_state_dict(saved["opt"])
    assert handle.restores == 0 or handle.step != at  # nothing came through the optimizer
    handle.load(f"{folder}/{engine}-{at}.safetensors")
    assert handle.step == at
    train_steps(model, "bert", opt, data[at:])
    return logits(model, "bert")


_FRESH = """
import sys, torch
sys.path[:0] = [{tests!r}, {root!r}]
from test_delta_lora import RESUME_AT, _resume_from
out = {{(e, at): _resume_from({folder!r}, e, at) for e in ("inplace", "folded") for at in RESUME_AT}}
torch.save(out, {folder!r} + "/fresh.pt")
"""


def test_resume_is_exact(tmp_path):
    """Save at K-1, K, K+1, K+2; resume through load() in the same process (into the model that trained on
    and wrote W since) and in a fresh process: both bitwise equal to the uninterrupted run."""
    import subprocess
    import sys
    from pathlib import Path

    data = batches("bert", RESUME_TOTAL)
    full = {}
    for engine in ("inplace", "folded"):
        model = lora_model("bert")
        opt = make_optimizer(model)
        handle = DeltaLoRA(model, opt, update_ratio=2.0, start_step=RESUME_K, engine=engine)
        for t in range(RESUME_TOTAL + 1):
            if t in RESUME_AT:
                handle.save(tmp_path / f"{engine}-{t}.safetensors")
                adapter = {k: v.clone() for k, v in get_peft_model_state_dict(model).items()}
                torch.save(
                    {"adapter": adapter, "opt": _strip_carried(opt.state_dict())},
                    tmp_path / f"{engine}-{t}.pt",
                )
            if t < RESUME_TOTAL:
                train_steps(model, "bert", opt, data[t : t + 1])
        full[engine] = logits(model, "bert")
        for at in RESUME_AT:  # the same process, the same objects: W, snapshot and step were moved on since
            got = _resume_from(tmp_path, engine, at, model, opt, handle)
            assert torch.equal(got, full[engine]), (engine, at)
    tests = str(Path(__file__).resolve().parent)
    code = _FRESH.format(tests=tests, root=str(Path(tests).parent), folder=str(tmp_path))
    subprocess.run([sys.executable, "-c", code], check=True, timeout=600)
    fresh = torch.load(tmp_path / "fresh.pt", weights_only=True)
    for (engine, at), got in fresh.items():
        assert torch.equal(got, full[engine]), ("fresh process", engine, at)
    assert len(fresh) == 8


def test_load_state_rejects_mismatched_settings():
    model, handle = engine_run("bert", "folded", 2.0, 2, 5)
    state = handle.state_dict()
    other = lora_model("bert")
    h = DeltaLoRA(other, make_optimizer(other), update_ratio=1.0, start_step=2, engine="folded")
    with pytest.raises(ValueError, match="update_ratio"):
        h.load_state_dict(state)


# ---------------------------------------------------------------------------- bad input
def _opt(model):
    return make_optimizer(model)


def test_no_lora_layers():
    m = base_model("bert")
    with pytest.raises(ValueError, match="no PEFT LoRA layers"):
        DeltaLoRA(m, _opt(m))


def test_dropout_refused_unless_allowed():
    m = lora_model("bert", dropout=0.1)
    with pytest.raises(ValueError, match=r"lora_dropout must be 0.*allow_dropout=True"):
        DeltaLoRA(m, _opt(m))
    DeltaLoRA(m, _opt(m), allow_dropout=True)


@pytest.mark.parametrize("value", [-1.0, float("nan"), float("inf"), "2", True])
def test_bad_update_ratio(value):
    m = lora_model("bert")
    with pytest.raises(ValueError, match="update_ratio must be a finite number >= 0"):
        DeltaLoRA(m, _opt(m), update_ratio=value)


@pytest.mark.parametrize("value", [-1, 2.5, "500", None, True])
def test_bad_start_step(value):
    m = lora_model("bert")
    with pytest.raises(ValueError, match="start_step must be a non-negative integer"):
        DeltaLoRA(m, _opt(m), start_step=value)


def test_unknown_engine():
    m = lora_model("bert")
    with pytest.raises(ValueError, match=r"engine must be one of \('inplace', 'folded'\); got 'fast'"):
        DeltaLoRA(m, _opt(m), engine="fast")


def test_merged_adapters_refused():
    m = lora_model("bert")
    m.merge_adapter()
    with pytest.raises(ValueError, match="adapters are merged"):
        DeltaLoRA(m, _opt(m))


def test_two_active_adapters_refused():
    m = lora_model("gpt2")
    m.add_adapter("second", LoraConfig(r=2, target_modules=["c_attn"], lora_dropout=0.0, fan_in_fan_out=True))
    m.base_model.set_adapter(["default", "second"])
    with pytest.raises(ValueError, match="more than one adapter is active"):
        DeltaLoRA(m, _opt(m))


def test_dora_refused():
    m = lora_model("bert", use_dora=True)
    with pytest.raises(ValueError, match="LoRA variant"):
        DeltaLoRA(m, _opt(m))


def test_optimizer_without_adapter_refused():
    m = lora_model("bert")
    head = [p for n, p in m.named_parameters() if p.requires_grad and "lora_" not in n]
    with pytest.raises(ValueError, match="optimizer: it does not update lora_A/lora_B"):
        DeltaLoRA(m, torch.optim.AdamW(head))


def test_double_attach_refused_and_detach_restores_lora():
    m = lora_model("bert")
    opt = _opt(m)
    h = DeltaLoRA(m, opt, start_step=0)
    with pytest.raises(ValueError, match="already attached"):
        DeltaLoRA(m, opt)
    h.detach()
    DeltaLoRA(m, opt)


def test_extra_updated_params_counts_adapted_weights():
    m = lora_model("bert")
    h = DeltaLoRA(m, _opt(m))
    # 2 layers x (query, value) x 24 x 24
    assert h.extra_updated_params() == 2 * 2 * 24 * 24


def test_weight_updates_follow_telescoping_identity():
    model, handle = engine_run("bert", "inplace", 2.0, 3, 14)
    w0 = base_model("bert")
    for name, update in handle.iter_weight_updates():
        sub = name.replace("base_model.model.", "")
        actual = model.get_submodule(name).get_base_layer().weight - w0.get_submodule(sub).weight
        assert (actual - update).abs().max().item() < TOL
        assert torch.linalg.matrix_rank(update).item() <= 2 * 4


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_inplace_refuses_low_precision_weight(dtype):
    m = lora_model("bert", dtype=dtype)
    name = str(dtype)
    with pytest.raises(
        ValueError, match=rf"engine='inplace'.*{name} weight.*engine='folded'.*allow_low_precision=True"
    ):
        DeltaLoRA(m, _opt(m), engine="inplace")
    DeltaLoRA(m, _opt(m), engine="folded")  # the folded engine never writes W: accepted


def test_inplace_refuses_integer_weight():
    m = lora_model("bert")
    layer = lora_layers(m)[0][1].get_base_layer()
    layer.weight = torch.nn.Parameter(torch.zeros(layer.weight.shape, dtype=torch.int8), requires_grad=False)
    with pytest.raises(ValueError, match=r"torch.int8 \(quantized\?\) weight.*engine='folded'"):
        DeltaLoRA(m, _opt(m), engine="inplace")


def test_bf16_inplace_opt_in_is_float32_accumulated_and_rounded_once():
    """With allow_low_precision=True each step's W is bf16(float32(W) + lam*s*(B'A' - BA)), rounded once."""
    m = lora_model("bert", dtype=torch.bfloat16)
    for n, p in m.named_parameters():  # float32 factors, as mixed-precision LoRA keeps them
        if "lora_" in n:
            p.data = p.data.float()
    opt = _opt(m)
    h = DeltaLoRA(m, opt, start_step=0, engine="inplace", allow_low_precision=True)
    data = batches("bert", 6)
    checked = moved = 0
    for i, batch in enumerate(data):
        before = [
            (s.weight.detach().clone(), s.A.detach().double().clone(), s.B.detach().double().clone())
            for s in h.slots
        ]
        m(**batch).loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        if i == 0:  # t = 0 = K: no write yet
            assert all(torch.equal(s.weight, w) for s, (w, _, _) in zip(h.slots, before, strict=False))
            continue
        for s, (w0, a0, b0) in zip(h.slots, before, strict=False):
            exact = w0.double() + s.lam * s.scaling * (
                s.B.detach().double() @ s.A.detach().double() - b0 @ a0
            )
            once = exact.float().to(torch.bfloat16)  # the float64 result rounded (via float32) once
            w = s.weight.detach()
            assert w.dtype == torch.bfloat16
            # float32 accumulation differs from float64 only far below bf16's step: equal nearly everywhere,
            # never more than one bf16 step apart
            ulp = torch.finfo(torch.bfloat16).eps * exact.abs().clamp_min(1e-30)
            assert ((w.double() - exact).abs() <= ulp).all()
            assert (w == once).float().mean().item() > 0.99
            moved += int((w != w0).sum())
            checked += 1
    assert checked == 5 * len(h.slots)
    assert moved > 0  # not vacuous: some updates survive the rounding
