"""Exact activation memory on CPU: the bytes autograd saves for backward in one training forward pass.

Peak RSS on CPU (results/memory_table.md) mixes in allocator slack and moves by several percent from
round to round; the tensors autograd keeps for backward do not. This counts them (distinct storages,
parameters excluded) for LoRA and the Delta-LoRA engines after the switch, so an engine that keeps an
extra activation-sized tensor shows at once. Run: python benchmarks/saved_activations.py
"""

from __future__ import annotations

import torch
from peft import get_peft_model

from deltalora.benchmark import build, make_batch, naive_delta_lora_class, saved_activation_bytes
from deltalora.core.delta_lora import DeltaLoRA


def saved_bytes(model_name: str, config: str, batch: int = 4, seq: int = 64) -> int:
    torch.manual_seed(0)
    model, lora_config, spec = build(model_name, "fp32", "cpu")
    model = get_peft_model(model, lora_config).train()
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5)
    if config in ("inplace", "folded"):
        DeltaLoRA(model, opt, update_ratio=2.0, start_step=0, engine=config)
    elif config == "naive":
        naive_delta_lora_class()(model, opt, update_ratio=2.0, start_step=0, engine="inplace")
    data = make_batch(spec, batch, seq, "cpu")
    for _ in range(2):  # past the switch, so the folded term is live
        model(**data).loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    return saved_activation_bytes(model, data)


def main() -> None:
    torch.set_num_threads(1)
    for model_name in ("minilm", "gpt2m-4l"):
        lora = saved_bytes(model_name, "lora")
        for config in ("lora", "inplace", "folded", "naive"):
            b = lora if config == "lora" else saved_bytes(model_name, config)
            print(f"{model_name:9s} {config:8s} saved {b / 2**20:8.2f} MiB  x{b / lora:.4f} of LoRA")


if __name__ == "__main__":
    main()
