"""Training-step time and collectives of PEFT LoRA vs Delta-LoRA (folded, inplace) under FSDP2.

Two gloo processes on CPU shard a Llama-shaped PEFT model (nn.Linear layers, LoRA r=8 on every
projection) with `fully_shard` and train it. Each rank times whole steps (forward, backward,
optimizer step) of three models built alike, interleaved one step each per round so that the
machine's drift hits all three (as `engine_overhead.py` does), and counts, with torch's
`CommDebugMode`, the collectives inside `optimizer.step()`: LoRA has none there (FSDP2's gathers are
in forward and backward), so whatever is counted is Delta-LoRA's own. Delta-LoRA is switched on from
the first step (K=0), so every timed step pays its full cost.

On CPU with gloo a collective costs far more than on GPUs with NCCL, so the step-time ratio here is
an upper bound for the collectives' share; the counts hold on any backend.

    python benchmarks/fsdp_step.py --rounds 20   (writes benchmarks/results/fsdp_step.json)
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from peft import LoraConfig, get_peft_model
from transformers import LlamaConfig, LlamaForCausalLM

from deltalora import DeltaLoRA

CONFIGS = ("lora", "folded", "inplace")
HIDDEN, LAYERS, R, WORLD, BATCH, SEQ = 512, 4, 8, 2, 4, 64
OUT = Path(__file__).resolve().parent / "results" / "fsdp_step.json"
TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def _model(mesh) -> torch.nn.Module:
    from torch.distributed.fsdp import fully_shard

    torch.manual_seed(0)
    cfg = LlamaConfig(
        vocab_size=512,
        hidden_size=HIDDEN,
        intermediate_size=4 * HIDDEN,
        num_hidden_layers=LAYERS,
        num_attention_heads=8,
        num_key_value_heads=8,
        max_position_embeddings=SEQ,
    )
    model = get_peft_model(
        LlamaForCausalLM(cfg), LoraConfig(r=R, lora_alpha=2 * R, lora_dropout=0.0, target_modules=TARGETS)
    )
    for block in model.base_model.model.model.layers:
        fully_shard(block, mesh=mesh)
    fully_shard(model, mesh=mesh)
    return model


def _worker(rank: int, world: int, out: str, rounds: int, warmup: int) -> None:
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.tensor.debug import CommDebugMode

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{out}/store", rank=rank, world_size=world)
    try:
        mesh = init_device_mesh("cpu", (world,))
        runs = {}
        for name in CONFIGS:
            model = _model(mesh)
            opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
            if name != "lora":
                DeltaLoRA(model, opt, update_ratio=0.5, start_step=0, engine=name)
            runs[name] = (model, opt)
        g = torch.Generator().manual_seed(rank)
        times: dict[str, list[float]] = {n: [] for n in CONFIGS}
        counts: dict[str, list[int]] = {n: [] for n in CONFIGS}
        for i in range(warmup + rounds):
            ids = torch.randint(0, 512, (BATCH // world, SEQ), generator=g)
            order = CONFIGS[i % 3 :] + CONFIGS[: i % 3]  # rotate, so no configuration always runs first
            for name in order:
                model, opt = runs[name]
                dist.barrier()
                t0 = time.perf_counter()
                model(input_ids=ids, labels=ids).loss.backward()
                with CommDebugMode() as comm:
                    opt.step()
                opt.zero_grad(set_to_none=True)
                dt = time.perf_counter() - t0
                if i >= warmup:
                    times[name].append(dt)
                    counts[name].append(comm.get_total_counts())
        Path(out, f"rank{rank}.json").write_text(json.dumps({"times": times, "counts": counts}))
    finally:
        dist.destroy_process_group()


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    args = ap.parse_args(argv)
    os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")
    with tempfile.TemporaryDirectory() as tmp:
        mp.spawn(_worker, args=(WORLD, tmp, args.rounds, args.warmup), nprocs=WORLD, join=True)
        ranks = [json.loads(Path(tmp, f"rank{r}.json").read_text()) for r in range(WORLD)]
    layers = LAYERS * len(TARGETS)
    # a step lasts as long as its slower rank
    steps = {n: [max(r["times"][n][i] for r in ranks) for i in range(args.rounds)] for n in CONFIGS}
    med = {n: statistics.median(v) for n, v in steps.items()}
    result = {
        "model": f"Llama shapes, hidden {HIDDEN}, {LAYERS} blocks, LoRA r={R} on {layers} Linear layers",
        "torch": torch.__version__,
        "world": WORLD,
        "batch": [BATCH, SEQ],
        "rounds": args.rounds,
        "median_step_s": med,
        "ratio_to_lora": {n: med[n] / med["lora"] for n in CONFIGS},
        "collectives_per_step": {n: sorted(set(ranks[0]["counts"][n])) for n in CONFIGS},
        "adapted_layers": layers,
        "date": time.strftime("%Y-%m-%d"),
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(result, indent=2) + "\n")
    print(f"{result['model']}; 2 gloo processes, median of {args.rounds} interleaved steps\n")
    print("| configuration | median step (s) | x LoRA | collectives in optimizer.step |")
    print("|---|---|---|---|")
    for n in CONFIGS:
        c = result["collectives_per_step"][n]
        print(f"| {n} | {med[n]:.3f} | {result['ratio_to_lora'][n]:.2f} | {', '.join(map(str, c))} |")
    print(f"\nwritten {OUT}", file=sys.stderr)


if __name__ == "__main__":
    main()
