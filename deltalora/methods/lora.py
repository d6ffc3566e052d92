"""PEFT LoRA (Hu et al. 2021), the baseline every other method is measured against."""

from __future__ import annotations

from typing import Any, ClassVar

from torch import nn

from .base import Method, MethodContext


def peft_lora(model: nn.Module, hp: dict[str, Any], ctx: MethodContext, **extra: Any) -> nn.Module:
    """Wrap `model` with a PEFT LoRA adapter built from the method's hyper-parameters."""
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(
        r=int(hp["r"]),
        lora_alpha=float(hp["alpha"]),
        lora_dropout=float(hp["dropout"]),
        target_modules=list(ctx.target_modules),
        fan_in_fan_out=ctx.fan_in_fan_out,
        task_type=ctx.task_type,
        modules_to_save=list(ctx.modules_to_save) or None,
        use_rslora=bool(hp.get("rslora", False)),
        bias="none",
        **extra,
    )
    return get_peft_model(model, config)


class LoRA(Method):
    name: ClassVar[str] = "lora"
    description: ClassVar[str] = (
        "PEFT LoRA (Hu et al. 2021): frozen W, trained low-rank B A with scale alpha/r"
    )
    # r=8, alpha=8: LoRA protocol for RoBERTa-base GLUE (LoRA paper Table 9). Dropout 0.1 follows the
    # LoRA GPT-2 protocol (Table 11); the "LoRA without dropout" control sets it to 0.
    defaults: ClassVar[dict[str, Any]] = {"r": 8, "alpha": 8.0, "dropout": 0.1, "rslora": False}

    def apply(self, model: nn.Module, hp: dict[str, Any], ctx: MethodContext) -> nn.Module:
        return peft_lora(model, hp, ctx)


METHOD = LoRA()
