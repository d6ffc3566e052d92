"""Measurements on a trained model: the numerical rank of weight updates (the "high-rank" claim).

For every adapted layer we record the singular values of two updates, both laid out out x in:

* ``w``: W_T - W_0, the change of Algorithm 1's pretrained weight. For Delta-LoRA it is what the paper
  calls fine-tuning "high-rank parameters"; for LoRA-family methods it is zero; for full fine-tuning
  it is the whole update.
* ``effective``: the change of the layer's effective weight, W_T - W_0 + (adapter contribution),
  measured by pushing the identity matrix through the layer in eval mode, so it is exact for any
  method (LoRA, DoRA, AdaLoRA, DyLoRA at full rank, both Delta-LoRA engines).

Numerical rank at relative threshold tau = #{i : sigma_i > tau * sigma_1}. Several thresholds are
recorded because "rank" of a float matrix depends on it; 1e-3 is the headline (float32 training
noise sits far below it, genuine directions far above).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

THRESHOLDS = (1e-2, 1e-3, 1e-4, 1e-6)


def _is_target(name: str, targets: tuple[str, ...]) -> bool:
    return any(name == t or name.endswith("." + t) for t in targets)


def _oriented(module: nn.Module, weight: torch.Tensor) -> torch.Tensor:
    """Weight as out x in (GPT-2's Conv1D stores in x out)."""
    return weight.T if type(module).__name__ == "Conv1D" else weight


def capture_initial_weights(model: nn.Module, targets: tuple[str, ...]) -> dict[str, torch.Tensor]:
    """W_0 of the target layers (out x in, float64, CPU), taken before any method touches the model."""
    store = {}
    for name, module in model.named_modules():
        if _is_target(name, targets) and getattr(module, "weight", None) is not None:
            store[name] = _oriented(module, module.weight.detach()).to("cpu", torch.float64).clone()
    return store


def numerical_ranks(sv: torch.Tensor) -> dict[str, int]:
    if sv.numel() == 0 or sv[0] == 0:
        return {f"{t:g}": 0 for t in THRESHOLDS}
    return {f"{t:g}": int((sv > t * sv[0]).sum()) for t in THRESHOLDS}


@torch.no_grad()
def _effective_matrix(layer: nn.Module, in_features: int, device, dtype) -> torch.Tensor:
    eye = torch.eye(in_features, device=device, dtype=dtype)
    zero = torch.zeros(1, in_features, device=device, dtype=dtype)
    return (layer(eye) - layer(zero)).T.to("cpu", torch.float64)  # (out, in), bias removed


def _summary(update: torch.Tensor) -> dict[str, Any]:
    sv = torch.linalg.svdvals(update)
    return {
        "fro_norm": float(update.norm()),
        "ranks": numerical_ranks(sv),
        "singular_values": [float(f"{x:.6g}") for x in sv.tolist()],
    }


def weight_update_analysis(
    model: nn.Module, callbacks: list, initial: dict[str, torch.Tensor]
) -> dict[str, Any]:
    """Singular values and numerical ranks of W_T - W_0 and of the effective update, per adapted layer."""
    from peft import PeftModel
    from peft.tuners.lora import LoraLayer
    from peft.tuners.tuners_utils import BaseTunerLayer

    from .core.callback import DeltaLoRACallback

    handle = next((cb.delta_lora for cb in callbacks if isinstance(cb, DeltaLoRACallback)), None)
    telescoped = dict(handle.iter_weight_updates()) if handle is not None else {}
    prefix = "base_model.model." if isinstance(model, PeftModel) else ""
    was_training = model.training
    model.eval()
    layers: dict[str, Any] = {}
    for key, w0 in initial.items():
        name = prefix + key
        module = model.get_submodule(name)
        # any PEFT tuner layer (LoRA, LoHa, VeRA, HRA, ...) wraps the pretrained layer; full FT has none
        base = module.get_base_layer() if isinstance(module, BaseTunerLayer) else module
        weight = base.weight
        if name in telescoped and handle.engine == "folded":
            w_update = telescoped[name].to(
                "cpu", torch.float64
            )  # Algorithm 1's W_T - W_0; W itself untouched
        else:
            w_update = _oriented(base, weight.detach()).to("cpu", torch.float64) - w0
        effective = _effective_matrix(module, w0.shape[1], weight.device, weight.dtype)
        entry: dict[str, Any] = {
            "shape": list(w0.shape),
            "w": _summary(w_update),
            "effective": _summary(effective - w0),
        }
        if isinstance(module, LoraLayer):
            entry["two_r"] = 2 * int(next(iter(module.r.values())))
        if name in telescoped and handle.engine == "inplace" and handle.switched:
            # The telescoping identity, checked on the run: W_T - W_0 == lam*s*(B_T A_T - B_{K+1} A_{K+1}).
            predicted = telescoped[name].to("cpu", torch.float64)
            entry["telescoping_rel_err"] = float((w_update - predicted).norm()) / (
                float(w_update.norm()) or 1.0
            )
        layers[name] = entry
    model.train(was_training)
    return {"thresholds": list(THRESHOLDS), "headline_threshold": 1e-3, "layers": layers}
