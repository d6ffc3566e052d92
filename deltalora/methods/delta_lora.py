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

    def check(self, run: dict[str, Any]) -> list[str]:
        """Refusals of deltalora.core that the run configuration alone decides (the core raises them too)."""
        hp, problems = run["hp"], []
        if float(hp["dropout"]) > 0 and not hp["allow_dropout"]:
            problems.append(
                f"hp.dropout={hp['dropout']} (method delta_lora): Delta-LoRA needs dropout 0 on the LoRA "
                "branch (dropout breaks dL/dW == dL/d(BA)); set hp.dropout=0.0, or hp.allow_dropout=true "
                "to apply Algorithm 1 with dropout anyway"
            )
        quantize = (run.get("model_options") or {}).get("quantize")
        if quantize not in (None, "none") and hp["engine"] == "inplace":
            problems.append(
                f"hp.engine=inplace (method delta_lora): the in-place engine cannot write a quantized W "
                f"(model_options.quantize={quantize}); use hp.engine=folded"
            )
        return problems

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
