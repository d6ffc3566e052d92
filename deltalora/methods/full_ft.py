"""Full fine-tuning: every weight trained (the upper reference the paper compares against)."""

from __future__ import annotations

from typing import Any, ClassVar

from torch import nn

from .base import Method, MethodContext


class FullFineTuning(Method):
    name: ClassVar[str] = "full_ft"
    description: ClassVar[str] = "Full fine-tuning: all weights trained with AdamW"
    # Full FT needs a smaller learning rate than LoRA; `lr` here overrides the task's LoRA learning rate.
    defaults: ClassVar[dict[str, Any]] = {"lr": 1e-4}

    def apply(self, model: nn.Module, hp: dict[str, Any], ctx: MethodContext) -> nn.Module:
        for p in model.parameters():
            p.requires_grad_(True)
        return model


METHOD = FullFineTuning()
