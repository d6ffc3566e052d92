"""Delta-LoRA on an FSDP2-sharded model in your own training loop (CPU, two gloo processes).

A tiny GPT-2 built from a config (no download) gets PEFT LoRA, every block and the root are sharded
with `fully_shard`, and each process trains on its half of every batch. Delta-LoRA attaches to the
optimizer as without sharding (lines marked ###). Then every rank calls `export_adapter` (it gathers
the shards, a collective; rank 0 writes), each rank saves its own checkpoint (its shards of the model
and of the optimizer state, which carries Delta-LoRA's state), and rank 0 checks that vanilla PEFT
loads the rank-2r adapter onto the unsharded base model with the trained model's outputs.

    python examples/fsdp2_loop.py                                   # starts its two processes
    torchrun --standalone --nproc_per_node 2 examples/fsdp2_loop.py  # or let torchrun start them

On GPUs use the "nccl" backend, init_device_mesh("cuda", ...), and optionally
fully_shard(..., mp_policy=MixedPrecisionPolicy(param_dtype=torch.bfloat16)) (fp32 shards stay the
master weights that Delta-LoRA updates).
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import torch
import torch.distributed as dist
from peft import LoraConfig, PeftModel, get_peft_model
from transformers import GPT2Config, GPT2LMHeadModel

from deltalora import DeltaLoRA  ###

STEPS, BATCH, VOCAB = 30, 8, 64


def base() -> GPT2LMHeadModel:
    torch.manual_seed(0)
    return GPT2LMHeadModel(GPT2Config(vocab_size=VOCAB, n_positions=32, n_embd=64, n_layer=2, n_head=4))


def batch(step: int) -> torch.Tensor:
    """Counting sequences mod VOCAB from a random start: a task LoRA learns in a few steps."""
    g = torch.Generator().manual_seed(step)
    start = torch.randint(0, VOCAB, (BATCH, 1), generator=g)
    return (start + torch.arange(16)) % VOCAB


def main(rank: int, world: int, out: Path) -> None:
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    torch.set_num_threads(1)
    mesh = init_device_mesh("cpu", (world,))
    cfg = LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0, target_modules=["c_attn"], fan_in_fan_out=True)
    model = get_peft_model(base(), cfg)
    for block in model.base_model.model.transformer.h:
        fully_shard(block, mesh=mesh)
    fully_shard(model, mesh=mesh)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=5e-3)
    delta = DeltaLoRA(model, opt, update_ratio=2.0, start_step=10, engine="folded")  ###

    for step in range(STEPS):
        ids = batch(step)[rank * BATCH // world : (rank + 1) * BATCH // world]  # this rank's half
        loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        opt.step()  # Delta-LoRA runs in the optimizer's step hooks, on every rank
        opt.zero_grad()
        if rank == 0 and (step % 10 == 0 or step == STEPS - 1):
            print(f"step {step:2d}  loss (rank 0's half) {loss.item():.4f}")

    # every rank calls export (it gathers the shards); rank 0 writes
    adapter = delta.export_adapter(out / "adapter")  ###
    torch.save({"model": model.state_dict(), "optim": opt.state_dict()}, out / f"checkpoint-rank{rank}.pt")
    model.eval()
    with torch.no_grad():
        trained = model(input_ids=batch(999)).logits  # a forward is collective too: every rank runs it
    dist.barrier()
    if rank == 0:
        reloaded = PeftModel.from_pretrained(base(), str(adapter)).eval()
        with torch.no_grad():
            diff = (reloaded(input_ids=batch(999)).logits - trained).abs().max().item()
        print(f"vanilla PEFT, rank-2r adapter on the unsharded base: max |logit difference| {diff:.2e}")
        assert diff < 1e-4, diff


def _spawned(rank: int, world: int, out: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{out}/store", rank=rank, world_size=world)
    try:
        main(rank, world, Path(out))
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")
    if "RANK" in os.environ:  # started by torchrun
        dist.init_process_group("gloo")
        try:
            out = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.gettempdir()) / "deltalora-fsdp2"
            out.mkdir(parents=True, exist_ok=True)
            main(dist.get_rank(), dist.get_world_size(), out)
        finally:
            dist.destroy_process_group()
    else:
        import torch.multiprocessing as mp

        with tempfile.TemporaryDirectory() as tmp:
            mp.spawn(_spawned, args=(2, tmp), nprocs=2, join=True)
