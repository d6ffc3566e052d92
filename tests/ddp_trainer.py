"""A Trainer run with DeltaLoRACallback, used by tests/test_core_ddp.py: under `torchrun --nproc_per_node 2`
(gloo, CPU) and, for the comparison, in one process on the whole batch.

    torchrun --standalone --nproc_per_node 2 tests/ddp_trainer.py OUT_DIR
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from tiny_models import examples, logits, lora_model, trainer_args  # noqa: E402

GLOBAL_BATCH, STEPS, K = 4, 8, 3


def train(engine: str, out: Path, world: int) -> dict:
    from transformers import Trainer, TrainingArguments

    from deltalora import DeltaLoRACallback

    data = examples(48)
    model = lora_model("bert")
    cb = DeltaLoRACallback(update_ratio=2.0, start_step=K, engine=engine, export_dir=out / f"export-{engine}")
    # in order, so that rank r's half-batches are the single process's batch (an option of transformers >= 5)
    sequential = "train_sampling_strategy" in TrainingArguments.__dataclass_fields__
    extra = {"train_sampling_strategy": "sequential"} if sequential else {}
    if "average_tokens_across_devices" in TrainingArguments.__dataclass_fields__:
        extra["average_tokens_across_devices"] = False  # else the loss is scaled by the world size
    args = TrainingArguments(
        **trainer_args(
            out / f"trainer-{engine}",
            per_device_train_batch_size=GLOBAL_BATCH // world,
            max_steps=STEPS,
            warmup_steps=2,
            ddp_backend="gloo" if world > 1 else None,
            **extra,
        )
    )
    Trainer(model=model, args=args, train_dataset=data, callbacks=[cb]).train()
    return {
        "logits": logits(model, "bert"),
        "params": {n: p.detach().clone() for n, p in model.named_parameters()},
        "step": cb.delta_lora.step,
        "sequential": sequential,
    }


if __name__ == "__main__":
    torch.set_num_threads(1)
    out = Path(sys.argv[1])
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    for engine in ("inplace", "folded"):
        torch.save(train(engine, out, world), out / f"{engine}-rank{rank}.pt")
