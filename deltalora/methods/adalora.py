"""AdaLoRA (Zhang et al. 2023) through PEFT, with its rank allocator called every optimizer step.

PEFT's docs require `update_and_allocate(global_step)` after each optimizer step and before the
gradients are zeroed; the plain Trainer never calls it. `on_optimizer_step` is exactly that point in
`transformers.Trainer` (after `optimizer.step()`, before `zero_grad`). The schedule (tinit, tfinal,
deltaT) is given as fractions of the run so the same config works for a 60-step proxy run and a
100k-step paper run.
"""

from __future__ import annotations

from typing import Any, ClassVar

from torch import nn
from transformers import TrainerCallback

from .base import Method, MethodContext


class AdaLoRAAllocatorCallback(TrainerCallback):
    def __init__(self, model: nn.Module):
        self.model = model

    def on_optimizer_step(self, args, state, control, **kwargs):
        self.model.base_model.update_and_allocate(state.global_step)


class AdaLoRA(Method):
    name: ClassVar[str] = "adalora"
    description: ClassVar[str] = (
        "AdaLoRA (Zhang et al. 2023): SVD-form LoRA with importance-based rank allocation (PEFT)"
    )
    # init_r 12 -> target_r 8 and beta1=beta2=0.85, orth_reg 0.1: AdaLoRA's official scripts
    # (docs/sources.md §6.5).
    # Schedule fractions: warm-up tinit, final fine-tuning tfinal, allocation every deltaT.
    defaults: ClassVar[dict[str, Any]] = {
        "init_r": 12,
        "target_r": 8,
        "alpha": 16.0,
        "dropout": 0.1,
        "tinit_frac": 0.1,
        "tfinal_frac": 0.3,
        "delta_t_frac": 0.02,
        "beta1": 0.85,
        "beta2": 0.85,
        "orth_reg_weight": 0.1,
    }

    def apply(self, model: nn.Module, hp: dict[str, Any], ctx: MethodContext) -> nn.Module:
        from peft import AdaLoraConfig, get_peft_model

        total = max(int(ctx.total_steps), 3)
        tinit = int(round(hp["tinit_frac"] * total))
        tfinal = int(round(hp["tfinal_frac"] * total))
        if tinit + tfinal >= total:  # PEFT requires a non-empty budgeting phase
            tinit, tfinal = total // 4, total // 4
        config = AdaLoraConfig(
            init_r=int(hp["init_r"]),
            target_r=int(hp["target_r"]),
            lora_alpha=float(hp["alpha"]),
            lora_dropout=float(hp["dropout"]),
            tinit=tinit,
            tfinal=tfinal,
            deltaT=max(1, int(round(hp["delta_t_frac"] * total))),
            beta1=float(hp["beta1"]),
            beta2=float(hp["beta2"]),
            orth_reg_weight=float(hp["orth_reg_weight"]),
            total_step=total,
            target_modules=list(ctx.target_modules),
            fan_in_fan_out=ctx.fan_in_fan_out,
            task_type=ctx.task_type,
            modules_to_save=list(ctx.modules_to_save) or None,
        )
        return get_peft_model(model, config)

    def callbacks(self, model: nn.Module, hp: dict[str, Any], ctx: MethodContext) -> list:
        return [AdaLoRAAllocatorCallback(model)]


METHOD = AdaLoRA()
