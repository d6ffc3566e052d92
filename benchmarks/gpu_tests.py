"""Checks of the core that need a CUDA device (run by benchmarks/gpu_check.sh; CI has no GPU).

python -m pytest -q benchmarks/gpu_tests.py
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from tiny_models import batches, lora_model, make_optimizer  # noqa: E402

from deltalora import DeltaLoRA  # noqa: E402

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
DEV = "cuda"


def to_dev(batch):
    return {k: v.to(DEV) for k, v in batch.items()}


def reference(kind, lam, k, steps, dtype=torch.float64):
    model = lora_model(kind, dtype=dtype).to(DEV)
    opt = make_optimizer(model)
    layers = [m for m in model.modules() if hasattr(m, "lora_A") and "default" in m.lora_A]
    for t, b in enumerate(batches(kind, steps)):
        model(**to_dev(b)).loss.backward()
        old = [
            (m.lora_B["default"].weight.detach().clone(), m.lora_A["default"].weight.detach().clone())
            for m in layers
        ]
        opt.step()
        opt.zero_grad()
        if t > k:
            with torch.no_grad():
                for m, (b0, a0) in zip(layers, old, strict=False):
                    d = (
                        lam
                        * m.scaling["default"]
                        * (m.lora_B["default"].weight @ m.lora_A["default"].weight - b0 @ a0)
                    )
                    m.get_base_layer().weight += d.T if m.fan_in_fan_out else d
    return model


def engine(kind, eng, lam, k, steps, dtype=torch.float64):
    model = lora_model(kind, dtype=dtype).to(DEV)
    opt = make_optimizer(model)
    DeltaLoRA(model, opt, update_ratio=lam, start_step=k, engine=eng)
    for b in batches(kind, steps):
        model(**to_dev(b)).loss.backward()
        opt.step()
        opt.zero_grad()
    return model


def logits(model, kind):
    model.eval()
    with torch.no_grad():
        b = to_dev(batches(kind, 1, seed=9)[0])
        b.pop("labels")
        return model(**b).logits.double().cpu()


@pytest.mark.parametrize("kind", ["bert", "gpt2"])
@pytest.mark.parametrize("eng", ["inplace", "folded"])
def test_engines_match_reference_on_cuda_float64(kind, eng):
    ref = reference(kind, 2.0, 3, 20)
    got = engine(kind, eng, 2.0, 3, 20)
    assert (logits(ref, kind) - logits(got, kind)).abs().max().item() < 1e-9


@pytest.mark.parametrize("eng", ["inplace", "folded"])
def test_cuda_grad_scaler_skip_is_not_counted(eng):
    model = lora_model("bert", dtype=torch.float32).to(DEV)
    opt = make_optimizer(model)
    h = DeltaLoRA(model, opt, update_ratio=2.0, start_step=0, engine=eng)
    scaler = torch.amp.GradScaler("cuda")
    for i, b in enumerate(batches("bert", 6)):
        with torch.autocast("cuda", dtype=torch.float16):
            loss = model(**to_dev(b)).loss
        scaler.scale(loss).backward()
        if i == 2:
            next(p for p in model.parameters() if p.grad is not None).grad.fill_(float("inf"))
        scaler.step(opt)
        scaler.update()
        opt.zero_grad()
    assert h.step == 5


def _amp_skip_run(opt_kind, eng, *, skip_bad, n=9, k=3, bad=2):
    """fp16 autocast + CUDA GradScaler; batch `bad` gets an inf gradient (or is left out)."""
    model = lora_model("bert", dtype=torch.float32).to(DEV)
    flags = {"plain": dict(foreach=False), "foreach": dict(foreach=True), "fused": dict(fused=True)}[opt_kind]
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2, **flags)
    h = DeltaLoRA(model, opt, update_ratio=2.0, start_step=k, engine=eng)
    scaler = torch.amp.GradScaler("cuda", init_scale=2.0**8)  # small: only the poisoned step overflows
    for i, b in enumerate(batches("bert", n)):
        if i == bad and skip_bad:
            continue
        with torch.autocast("cuda", dtype=torch.float16):
            loss = model(**to_dev(b)).loss
        scaler.scale(loss).backward()
        if i == bad:
            next(p for p in model.parameters() if p.grad is not None).grad.fill_(float("inf"))
        scaler.step(opt)
        scaler.update()
        opt.zero_grad()
    return model, h


@pytest.mark.parametrize("eng", ["inplace", "folded"])
@pytest.mark.parametrize("opt_kind", ["fused", "foreach", "plain"])
def test_cuda_amp_skipped_step_equals_run_without_that_batch(opt_kind, eng):
    bad, h_bad = _amp_skip_run(opt_kind, eng, skip_bad=False)
    good, h_good = _amp_skip_run(opt_kind, eng, skip_bad=True)
    assert h_bad.step == h_good.step == 8
    for s1, s2 in zip(
        h_bad.slots, h_good.slots, strict=False
    ):  # the snapshot is taken at the same counted step
        assert (s1.snap_A - s2.snap_A).abs().max().item() < 1e-6
    # float32 weights; CUDA kernels may reduce in a different order between the two runs
    assert (logits(bad, "bert") - logits(good, "bert")).abs().max().item() < 1e-4


def test_bf16_autocast_engines_agree():
    outs = {}
    for eng in ("inplace", "folded"):
        model = lora_model("gpt2", dtype=torch.float32).to(DEV)
        opt = make_optimizer(model)
        DeltaLoRA(model, opt, update_ratio=2.0, start_step=2, engine=eng)
        for b in batches("gpt2", 12):
            with torch.autocast("cuda", dtype=torch.bfloat16):
                loss = model(**to_dev(b)).loss
            loss.backward()
            opt.step()
            opt.zero_grad()
        outs[eng] = logits(model, "gpt2")
    # float32 weights, bf16 matmuls: the engines differ only by bf16 rounding inside autocast
    assert (outs["inplace"] - outs["folded"]).abs().max().item() < 5e-2


def test_trainer_fp16_with_callback(tmp_path):
    from transformers import Trainer, TrainingArguments

    from deltalora import DeltaLoRACallback

    ds = [
        {"input_ids": ids, "labels": int(y)}
        for b in batches("bert", 8)
        for ids, y in zip(b["input_ids"], b["labels"], strict=False)
    ]  # a plain list: the GPU image has no `datasets`
    model = lora_model("bert", dtype=torch.float32)
    cb = DeltaLoRACallback(update_ratio=2.0, start_step=2, engine="folded")
    args = TrainingArguments(
        output_dir=str(tmp_path),
        per_device_train_batch_size=4,
        max_steps=8,
        fp16=True,
        report_to=[],
        save_strategy="no",
        logging_steps=100,
        disable_tqdm=True,
    )
    Trainer(model=model, args=args, train_dataset=ds, callbacks=[cb]).train()
    assert 6 <= cb.delta_lora.step <= 8  # fp16 scaler may skip the first steps while it calibrates


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two CUDA devices")
@pytest.mark.parametrize("eng", ["inplace", "folded"])
def test_cuda_data_parallel_two_gpus_matches_one(eng):
    """nn.DataParallel over two GPUs (what the Trainer does when it sees two): each replica's folded branch
    must use its own factors and a snapshot on its own device. Moved to CUDA after construction, so the
    snapshot and previous factors must follow too. Float64: equal to one GPU to 1e-9."""
    k, steps = 2, 8

    def run(parallel: bool):
        model = lora_model("bert")  # built on CPU; DeltaLoRA attached before the move
        opt = make_optimizer(model)
        handle = DeltaLoRA(model, opt, update_ratio=2.0, start_step=k, engine=eng)
        model.to(DEV)
        net = torch.nn.DataParallel(model, device_ids=[0, 1]) if parallel else model
        for b in batches("bert", steps, batch=8):
            out = net(**to_dev(b))
            out.loss.mean().backward()
            opt.step()
            opt.zero_grad()
        assert handle.step == steps and handle.slots[0].snap_A.device == handle.slots[0].A.device
        return logits(model, "bert")

    assert (run(True) - run(False)).abs().max().item() < 1e-9
