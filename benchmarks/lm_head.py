"""Training-step time of a causal LM with the LM head at every position vs at labelled positions only.

deltalora/lm_loss.py asks the model for logits where a label is (prompt and padding carry none): same
loss and gradients (tests/test_lm_loss.py), less work in the head and its softmax. This measures what
that saves on a (prompt, target) batch: the first `--prompt-frac` of every row unlabelled, as in E2E
(63% of the tokens of an embedded E2E example are prompt; with random batching another 27% of the
positions are padding, not modelled here). Configurations alternate within each round; the median
step is reported. Run: python benchmarks/lm_head.py [--models gpt2-embedded gpt2m-4l] [--rounds 5]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from peft import get_peft_model

from deltalora import lm_loss
from deltalora.benchmark import MODELS, build


def _step(model, opt, batch) -> None:
    model(**batch).loss.backward()
    opt.step()
    opt.zero_grad(set_to_none=True)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--models",
        nargs="+",
        default=["gpt2-embedded", "gpt2m-4l"],
        choices=[k for k, v in MODELS.items() if v["family"] == "gpt2"],
    )
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--steps", type=int, default=3, help="timed steps per configuration and round")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--prompt-frac", type=float, default=0.63)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    print(
        f"device {args.device}, batch {args.batch} x {args.seq}, prompt fraction {args.prompt_frac}, "
        f"{args.rounds} rounds x {args.steps} steps"
    )
    print("| model | all positions (ms/step) | labelled only (ms/step) | ratio |")
    print("|---|---|---|---|")
    for name in args.models:
        torch.manual_seed(0)
        model, cfg, spec = build(name, "fp32", args.device)
        model = get_peft_model(model, cfg).to(args.device).train()
        lm_loss.install_loss(model)
        g = torch.Generator().manual_seed(0)
        ids = torch.randint(0, spec["vocab"], (args.batch, args.seq), generator=g)
        labels = ids.clone()
        labels[:, : int(args.seq * args.prompt_frac)] = -100
        full = {
            "input_ids": ids.to(args.device),
            "attention_mask": torch.ones_like(ids).to(args.device),
            "labels": labels.to(args.device),
        }
        batches = {"all": full, "labelled": lm_loss.label_only_inputs(full)}
        opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5)

        times: dict[str, list[float]] = {k: [] for k in batches}
        for _ in range(args.rounds):
            for key, batch in batches.items():
                _step(model, opt, batch)  # warm-up
                if args.device == "cuda":
                    torch.cuda.synchronize()
                for _ in range(args.steps):
                    t = time.perf_counter()
                    _step(model, opt, batch)
                    if args.device == "cuda":
                        torch.cuda.synchronize()
                    times[key].append(time.perf_counter() - t)
        a, b = (statistics.median(times[k]) * 1000 for k in ("all", "labelled"))
        print(f"| {name} ({spec['note']}) | {a:.1f} | {b:.1f} | {b / a:.2f} |")


if __name__ == "__main__":
    main()
