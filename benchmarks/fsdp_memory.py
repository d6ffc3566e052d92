"""Per-rank memory of Delta-LoRA under FSDP2: W, the factors, the snapshots (and inplace's pre-step copies).

Two gloo processes on CPU shard a GPT-2-shaped PEFT model (hidden 1024, 2 blocks, LoRA r=8 on every
Conv1D: c_attn, attn/mlp c_proj, c_fc) with `fully_shard`, train it past the switch with each engine,
and count the bytes of the tensors each rank holds for the adapted layers: the local storage of W's
shard, of A's and B's shards, of AdamW's state for A and B, of the snapshots (S_A, S_B) and, for
`inplace`, of the copies of A and B taken before each step. The same count for one unsharded process
is the reference. Counting storages is exact and repeatable; a process's RSS on CPU also holds
allocator slack, the interpreter and the libraries. Transients are not counted: the gathered A and B
during a step (a few r x (in+out), one layer at a time) and inplace's update block (the size of
this rank's shard of one W).

Run: python benchmarks/fsdp_memory.py  (writes benchmarks/results/fsdp_memory.json)
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from peft import LoraConfig, get_peft_model
from transformers import GPT2Config, GPT2LMHeadModel

from deltalora import DeltaLoRA

HIDDEN, BLOCKS, R, K, STEPS, WORLD = 1024, 2, 8, 1, 3, 2
OUT = Path(__file__).resolve().parent / "results" / "fsdp_memory.json"


def _model() -> torch.nn.Module:
    torch.manual_seed(0)
    cfg = GPT2Config(vocab_size=256, n_positions=32, n_embd=HIDDEN, n_layer=BLOCKS, n_head=16)
    lora = LoraConfig(
        r=R,
        lora_alpha=2 * R,
        lora_dropout=0.0,
        target_modules=["c_attn", "c_proj", "c_fc"],
        fan_in_fan_out=True,
    )
    return get_peft_model(GPT2LMHeadModel(cfg), lora)


def _local_bytes(t: torch.Tensor | None) -> int:
    if t is None:
        return 0
    t = t.to_local() if hasattr(t, "to_local") else t
    return t.numel() * t.element_size()


def _count(handle: DeltaLoRA, opt: torch.optim.Optimizer) -> dict[str, int]:
    rows = {
        "W": 0,
        "A, B": 0,
        "AdamW state of A, B": 0,
        "snapshots S_A, S_B": 0,
        "pre-step copies of A, B": 0,
    }
    for s in handle.slots:
        rows["W"] += _local_bytes(s.weight)
        rows["A, B"] += _local_bytes(s.A) + _local_bytes(s.B)
        rows["AdamW state of A, B"] += sum(
            _local_bytes(v) for p in (s.A, s.B) for k, v in opt.state[p].items() if k != "step"
        )
        rows["snapshots S_A, S_B"] += _local_bytes(s.snap_A) + _local_bytes(s.snap_B)
        rows["pre-step copies of A, B"] += _local_bytes(s.prev_A) + _local_bytes(s.prev_B)
    return rows


def _train(engine: str, rank: int, world: int) -> dict[str, int]:
    model = _model()
    if world > 1:
        from torch.distributed.device_mesh import init_device_mesh
        from torch.distributed.fsdp import fully_shard

        mesh = init_device_mesh("cpu", (world,))
        for block in model.base_model.model.transformer.h:
            fully_shard(block, mesh=mesh)
        fully_shard(model, mesh=mesh)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    handle = DeltaLoRA(model, opt, update_ratio=2.0, start_step=K, engine=engine)
    g = torch.Generator().manual_seed(rank)
    for _ in range(STEPS):
        ids = torch.randint(0, 256, (2, 16), generator=g)
        model(input_ids=ids, labels=ids).loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    assert handle.switched
    return _count(handle, opt)


def _worker(rank: int, world: int, out: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{out}/store", rank=rank, world_size=world)
    try:
        res = {engine: _train(engine, rank, world) for engine in ("folded", "inplace")}
        Path(out, f"rank{rank}.json").write_text(json.dumps(res))
    finally:
        dist.destroy_process_group()


def main() -> None:
    torch.set_num_threads(1)
    os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")
    single = {engine: _train(engine, 0, 1) for engine in ("folded", "inplace")}
    with tempfile.TemporaryDirectory() as tmp:
        mp.spawn(_worker, args=(WORLD, tmp), nprocs=WORLD, join=True)
        ranks = [json.loads(Path(tmp, f"rank{r}.json").read_text()) for r in range(WORLD)]
    result = {
        "model": f"GPT-2 shapes, hidden {HIDDEN}, {BLOCKS} blocks, LoRA r={R} on c_attn/c_proj/c_fc, fp32",
        "torch": torch.__version__,
        "world": WORLD,
        "unsharded": single,
        "ranks": ranks,
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(result, indent=2) + "\n")
    mib = 2.0**20
    print(f"{result['model']}; bytes held per process for the adapted layers (MiB)\n")
    print("| engine | tensors | unsharded | rank 0 | rank 1 | rank 0 / unsharded |")
    print("|---|---|---|---|---|---|")
    for engine in ("folded", "inplace"):
        rows = list(single[engine]) + ["total"]
        for row in rows:
            one = sum(single[engine].values()) if row == "total" else single[engine][row]
            per = [sum(r[engine].values()) if row == "total" else r[engine][row] for r in ranks]
            if one == 0 and not any(per):
                continue
            ratio = f"{per[0] / one:.3f}" if one else "-"
            cells = " | ".join(f"{b / mib:.2f}" for b in [one, *per])
            print(f"| {engine} | {row} | {cells} | {ratio} |")
    print(f"\nwritten {OUT}", file=sys.stderr)


if __name__ == "__main__":
    main()
