"""LoRA with scale (1+lambda)*alpha/r: the control for the reviewers' objection.

After the switch at K, Delta-LoRA's effective weight is W_0 + s*[(1+lambda) B A - lambda S]: the
branch acts with (1+lambda) times LoRA's scale plus a frozen offset (docs/sources.md §7.2). If
Delta-LoRA's gains were only "LoRA with another learning rate", this control, with no dropout like
Delta-LoRA, would match them.
"""

from __future__ import annotations

from typing import Any, ClassVar

from torch import nn

from .base import Method, MethodContext
from .lora import peft_lora


class LoRAScaled(Method):
    name: ClassVar[str] = "lora_scaled"
    description: ClassVar[str] = (
        "Control: LoRA without dropout at scale (1+lambda)*alpha/r (Delta-LoRA's post-switch scale)"
    )
    defaults: ClassVar[dict[str, Any]] = {
        "r": 8,
        "alpha": 8.0,
        "dropout": 0.0,
        "update_ratio": 2.0,
        "rslora": False,
    }

    def apply(self, model: nn.Module, hp: dict[str, Any], ctx: MethodContext) -> nn.Module:
        scaled = {**hp, "alpha": float(hp["alpha"]) * (1.0 + float(hp["update_ratio"]))}
        return peft_lora(model, scaled, ctx)


METHOD = LoRAScaled()
