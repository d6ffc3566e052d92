"""Full fine-tuning: every weight trained (the upper reference the paper compares against)."""

from __future__ import annotations

from typing import Any, ClassVar

from torch import nn

from .base import Method, MethodContext


class FullFineTuning(Method):
    name: ClassVar[str] = "full_ft"
    description: ClassVar[str] = "Full fine-tuning: all weights trained with AdamW (or SGD: hp.optimizer=sgd)"
    # Full FT needs a smaller learning rate than LoRA; `lr` here overrides the task's LoRA learning rate.
    # optimizer=sgd: the reviewers' control, full FT without Adam's two states per weight (momentum 0:
    # no optimizer state at all).
    defaults: ClassVar[dict[str, Any]] = {"lr": 1e-4, "optimizer": "adamw", "momentum": 0.0}

    def apply(self, model: nn.Module, hp: dict[str, Any], ctx: MethodContext) -> nn.Module:
        for p in model.parameters():
            p.requires_grad_(True)
        return model

    def optimizer(self, model: nn.Module, hp: dict[str, Any], lr: float, weight_decay: float) -> Any:
        if hp.get("optimizer", "adamw") != "sgd":
            return None
        import torch

        return torch.optim.SGD(
            [p for p in model.parameters() if p.requires_grad],
            lr=lr,
            momentum=float(hp["momentum"]),
            weight_decay=weight_decay,
        )


METHOD = FullFineTuning()
