"""Delta-LoRA (Zi et al. 2023): LoRA without dropout, plus the W update of Algorithm 1 (callback)."""

from __future__ import annotations

from typing import Any, ClassVar

from torch import nn

from ..core.callback import DeltaLoRACallback
from .base import Method, MethodContext
from .lora import peft_lora


class DeltaLoRAMethod(Method):
    name: ClassVar[str] = "delta_lora"
    description: ClassVar[str] = (
        "Delta-LoRA (Zi et al. 2023): LoRA whose frozen W also moves by lambda*s*delta(BA) after step K"
    )
    # lambda=2, K=500, r=8 and no dropout: the paper's defaults (docs/sources.md §1.2). Profiles scale K
    # to their run length.
    defaults: ClassVar[dict[str, Any]] = {
        "r": 8,
        "alpha": 8.0,
        "dropout": 0.0,
        "rslora": False,
        "update_ratio": 2.0,
        "start_step": 500,
        "engine": "folded",
        "allow_dropout": False,
    }

    def apply(self, model: nn.Module, hp: dict[str, Any], ctx: MethodContext) -> nn.Module:
        return peft_lora(model, hp, ctx)

    def callbacks(self, model: nn.Module, hp: dict[str, Any], ctx: MethodContext) -> list:
        return [
            DeltaLoRACallback(
                update_ratio=float(hp["update_ratio"]),
                start_step=int(hp["start_step"]),
                engine=str(hp["engine"]),
                allow_dropout=bool(hp["allow_dropout"]),
            )
        ]

    def extra_updated_params(self, model: nn.Module, hp: dict[str, Any]) -> int:
        from peft.tuners.lora import LoraLayer

        from ..core.quantized import weight_numel

        return sum(weight_numel(m) for m in model.modules() if isinstance(m, LoraLayer))


METHOD = DeltaLoRAMethod()
