"""Delta-LoRA under DistributedDataParallel: two CPU processes (gloo), float64, both engines.

Each rank holds a DDP-wrapped PEFT model and trains on its half of every batch; DDP averages the
gradients, so both ranks must end bitwise equal and equal one process trained on the whole batch.
Rank 0 alone writes the exported adapter, which vanilla PEFT loads. The workers also check that a
DTensor weight with a placement FSDP2 never uses (Partial) is refused.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from peft import PeftModel
from tiny_models import base_model, batches, logits, lora_model

from deltalora import DeltaLoRA

STEPS, K, BATCH = 10, 3, 4
ENGINES = ("inplace", "folded")


def _optimizer(model):
    return torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2, weight_decay=0.01)


def _state(model, handle) -> dict:
    return {
        "logits": logits(model, "bert"),
        "params": {n: p.detach().clone() for n, p in model.named_parameters()},
        "keys": sorted(handle.state_dict()["tensors"]),
        "step": handle.step,
    }


def _dtensor_refused() -> str:
    """A DTensor W with a Partial placement (tensor parallel's pending sum) is refused; FSDP2's
    Shard/Replicate placements are accepted (tests/test_core_fsdp.py)."""
    try:
        from torch.distributed.tensor import DTensor, Partial
    except ImportError:  # torch < 2.5
        from torch.distributed._tensor import DTensor

        try:
            from torch.distributed._tensor.placement_types import Partial
        except ImportError:  # named _Partial before torch 2.4
            from torch.distributed._tensor.placement_types import _Partial as Partial
    from torch.distributed.device_mesh import init_device_mesh

    mesh = init_device_mesh("cpu", (dist.get_world_size(),))
    model = lora_model("bert")
    layer = next(m for n, m in model.named_modules() if n.endswith("query") and hasattr(m, "lora_A"))
    base = layer.get_base_layer()
    base.weight = torch.nn.Parameter(
        DTensor.from_local(base.weight.detach(), mesh, [Partial()]), requires_grad=False
    )
    try:
        DeltaLoRA(model, _optimizer(model))
    except ValueError as e:
        return str(e)
    return "accepted"


def _worker(rank: int, world: int, out: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{out}/store", rank=rank, world_size=world)
    try:
        results = {}
        for engine in ENGINES:
            model = lora_model("bert")
            ddp = torch.nn.parallel.DistributedDataParallel(model)
            opt = _optimizer(ddp)
            handle = DeltaLoRA(ddp, opt, update_ratio=2.0, start_step=K, engine=engine)
            for batch in batches("bert", STEPS, batch=BATCH):
                half = {k: v[rank * BATCH // world : (rank + 1) * BATCH // world] for k, v in batch.items()}
                ddp(**half).loss.backward()
                opt.step()
                opt.zero_grad(set_to_none=True)
            results[engine] = _state(model, handle)
            handle.export_adapter(Path(out) / f"adapter-{engine}")  # every rank calls it; rank 0 writes
            handle.export_adapter(Path(out) / f"adapter-{engine}-rank{rank}")
            dist.barrier()
        results["dtensor"] = _dtensor_refused()
        torch.save(results, Path(out) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def _single(engine):
    model = lora_model("bert")
    opt = _optimizer(model)
    handle = DeltaLoRA(model, opt, update_ratio=2.0, start_step=K, engine=engine)
    for batch in batches("bert", STEPS, batch=BATCH):
        model(**batch).loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    return _state(model, handle)


def test_ddp_two_processes_match_one_process_for_both_engines(tmp_path):
    os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")
    mp.spawn(_worker, args=(2, str(tmp_path)), nprocs=2, join=True)
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt", weights_only=False) for r in (0, 1))
    for engine in ENGINES:
        a, b, one = r0[engine], r1[engine], _single(engine)
        assert a["step"] == b["step"] == one["step"] == STEPS
        assert a["keys"] == one["keys"]  # DDP-wrapped or not: the same state keys
        assert torch.equal(a["logits"], b["logits"])
        assert all(torch.equal(a["params"][n], b["params"][n]) for n in a["params"])
        dev = max((a["params"][n] - one["params"][n]).abs().max().item() for n in one["params"])
        assert dev < 1e-9 and (a["logits"] - one["logits"]).abs().max().item() < 1e-9, (engine, dev)
        # written once, by rank 0; vanilla PEFT loads it and gives the trained model's outputs
        assert (tmp_path / f"adapter-{engine}-rank0").is_dir() and not (
            tmp_path / f"adapter-{engine}-rank1"
        ).exists()
        loaded = PeftModel.from_pretrained(base_model("bert"), str(tmp_path / f"adapter-{engine}"))
        assert (logits(loaded, "bert") - a["logits"]).abs().max().item() < 1e-9
    for r in (r0, r1):
        assert "a DTensor with placement" in r["dtensor"] and "Partial" in r["dtensor"], r["dtensor"]


def test_trainer_callback_under_torchrun_two_processes(tmp_path):
    """`torchrun --nproc_per_node 2` (gloo, CPU) with DeltaLoRACallback: ranks bitwise equal, equal to one
    process on the whole batch (where the Trainer can feed the examples in order), rank 0 exports."""
    import subprocess
    import sys

    import ddp_trainer

    script = Path(ddp_trainer.__file__)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        str(script),
        str(tmp_path),
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=900, env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    for engine in ENGINES:
        a, b = (torch.load(tmp_path / f"{engine}-rank{r}.pt", weights_only=False) for r in (0, 1))
        assert a["step"] == b["step"] == ddp_trainer.STEPS
        assert torch.equal(a["logits"], b["logits"])
        assert all(torch.equal(a["params"][n], b["params"][n]) for n in a["params"])
        loaded = PeftModel.from_pretrained(base_model("bert"), str(tmp_path / f"export-{engine}"))
        assert (logits(loaded, "bert") - a["logits"]).abs().max().item() < 1e-9
        if a["sequential"]:
            one = ddp_trainer.train(engine, tmp_path / "single", world=1)
            dev = max((a["params"][n] - one["params"][n]).abs().max().item() for n in one["params"])
            assert dev < 1e-9, (engine, dev)
