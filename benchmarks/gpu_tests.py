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


# ------------------------------------------------------------------ two GPUs: FSDP2 (docs/sharding.md)
def _fsdp2_nccl_worker(rank: int, world: int, out: str) -> None:
    """FSDP2 over NCCL, bf16 compute with fp32 sharded master weights, both engines."""
    import torch.distributed as dist
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

    torch.cuda.set_device(rank)
    dist.init_process_group("nccl", init_method=f"file://{out}/store", rank=rank, world_size=world)
    try:
        mesh = init_device_mesh("cuda", (world,))
        mp_policy = MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32)
        res = {}
        for eng in ("inplace", "folded"):
            model = lora_model("gpt2", dtype=torch.float32).to("cuda")
            w0 = {
                n: p.detach().clone() for n, p in model.named_parameters() if n.endswith("base_layer.weight")
            }
            for block in model.base_model.model.transformer.h:
                fully_shard(block, mesh=mesh, mp_policy=mp_policy)
            fully_shard(model, mesh=mesh, mp_policy=mp_policy)
            opt = make_optimizer(model)
            h = DeltaLoRA(model, opt, update_ratio=2.0, start_step=2, engine=eng)
            for b in batches("gpt2", 8):
                half = {k: v[rank * 2 : (rank + 1) * 2].to("cuda") for k, v in b.items()}
                model(**half).loss.backward()
                opt.step()
                opt.zero_grad()
            delta = dict(h.iter_weight_updates())
            # master weights and factors are fp32 shards; the update is computed in fp32 from them
            written = {s.name: s.weight.full_tensor() - w0[f"{s.name}.base_layer.weight"] for s in h.slots}
            if eng == "inplace":  # written W - W_0 = the telescoped change; folded: W never written
                written = {n: w - delta[n] for n, w in written.items()}
            dev = max(w.abs().max().item() for w in written.values())
            dtypes = {str(s.weight.dtype) for s in h.slots} | {str(s.A.dtype) for s in h.slots}
            h.export_adapter(f"{out}/adapter-{eng}")  # every rank calls it; rank 0 writes
            res[eng] = {"step": h.step, "dev": dev, "dtypes": sorted(dtypes), "logits": logits(model, "gpt2")}
        dist.barrier()
        torch.save(res, f"{out}/rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def test_fsdp2_two_gpus_nccl_bf16_mixed_precision(tmp_path):
    """Two GPUs: W - W_0 equals the telescoped change (fp32 masters), folded never writes W, ranks agree,
    and the exported adapter reproduces the bf16-computed sharded model on an unsharded fp32 base."""
    if torch.cuda.device_count() < 2:
        pytest.skip(f"needs two CUDA devices (found {torch.cuda.device_count()})")
    import torch.distributed as dist
    import torch.multiprocessing as mp
    from peft import PeftModel
    from tiny_models import base_model

    if not dist.is_nccl_available():
        pytest.skip("torch was built without NCCL")
    mp.spawn(_fsdp2_nccl_worker, args=(2, str(tmp_path)), nprocs=2, join=True)
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt", weights_only=False) for r in (0, 1))
    for eng in ("inplace", "folded"):
        a, b = r0[eng], r1[eng]
        assert a["step"] == b["step"] == 8
        assert a["dtypes"] == ["torch.float32"]
        assert torch.equal(a["logits"], b["logits"])
        # inplace: written W = W_0 + telescoped change (fp32); folded: W untouched
        assert a["dev"] < 1e-5 if eng == "inplace" else a["dev"] == 0.0, (eng, a["dev"])
        loaded = PeftModel.from_pretrained(
            base_model("gpt2", dtype=torch.float32), str(tmp_path / f"adapter-{eng}")
        )
        ref = logits(loaded.to(DEV), "gpt2")
        # the sharded model computed in bf16; the reloaded one in fp32
        assert (ref - a["logits"]).abs().max().item() < 5e-2 * max(1.0, ref.abs().max().item())


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
