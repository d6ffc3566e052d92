"""DoRA (Liu et al. 2024) through PEFT's `use_dora`: the worked example of adding a baseline.

The whole baseline is this module plus one `register(...)` line in registry.py.
"""

from __future__ import annotations

from typing import Any, ClassVar

from torch import nn

from .base import Method, MethodContext
from .lora import peft_lora


class DoRA(Method):
    name: ClassVar[str] = "dora"
    description: ClassVar[str] = (
        "DoRA (Liu et al. 2024): LoRA on the direction plus a trained magnitude vector (PEFT use_dora)"
    )
    defaults: ClassVar[dict[str, Any]] = {"r": 8, "alpha": 8.0, "dropout": 0.1, "rslora": False}

    def apply(self, model: nn.Module, hp: dict[str, Any], ctx: MethodContext) -> nn.Module:
        return peft_lora(model, hp, ctx, use_dora=True)


METHOD = DoRA()
