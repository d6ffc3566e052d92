"""Claim 5's control `lora_scaled`: LoRA at Delta-LoRA's post-switch scale (1+lambda)*alpha/r.

If the control ignored `update_ratio` it would silently be plain LoRA, and claim 5 would compare
Delta-LoRA with LoRA. So the layer's scaling is checked, and one AdamW step from the same start is
shown to move the model (1+lambda) times as far as LoRA's step does.
"""

from __future__ import annotations

import math

import pytest
import torch
from tiny_models import base_model, batches

from deltalora.methods.base import MethodContext
from deltalora.methods.registry import get_method

CTX = MethodContext(target_modules=("query", "value"), task_type="SEQ_CLS", modules_to_save=())


def _adapted(method: str, **hp):
    m = get_method(method)
    model = base_model("bert", seed=0)
    torch.manual_seed(1000)  # the same A init for both methods
    return m.apply(model, {**m.defaults, **hp}, CTX)


def _scalings(model) -> list[float]:
    from peft.tuners.lora import LoraLayer

    return [mod.scaling["default"] for mod in model.modules() if isinstance(mod, LoraLayer)]


@pytest.mark.parametrize("rslora", [False, True])
def test_layer_scaling_is_one_plus_lambda_times_loras(rslora):
    r, alpha, lam = 4, 8.0, 2.0
    scaled = _scalings(_adapted("lora_scaled", r=r, alpha=alpha, update_ratio=lam, rslora=rslora))
    plain = _scalings(_adapted("lora", r=r, alpha=alpha, dropout=0.0, rslora=rslora))
    expected = (1 + lam) * alpha / (math.sqrt(r) if rslora else r)
    assert len(scaled) == 4  # query and value of both layers
    assert scaled == pytest.approx([expected] * 4, rel=1e-12)
    assert plain == pytest.approx([alpha / (math.sqrt(r) if rslora else r)] * 4, rel=1e-12)
    # a different lambda gives a different scale: update_ratio is read
    assert _scalings(_adapted("lora_scaled", r=r, alpha=alpha, update_ratio=0.5, rslora=rslora))[
        0
    ] == pytest.approx(1.5 * alpha / (math.sqrt(r) if rslora else r))


def _delta_after_one_step(method: str, **hp) -> dict[str, torch.Tensor]:
    """The merged weight change s * B A of every adapted layer after one AdamW step on a fixed batch."""
    model = _adapted(method, r=4, alpha=8.0, **hp)
    # eps ~ 0 and no weight decay: Adam's first step is exactly lr * sign(grad) for both methods
    opt = torch.optim.AdamW(
        [p for p in model.parameters() if p.requires_grad], lr=1e-2, eps=1e-30, weight_decay=0.0
    )
    model(**batches("bert", 1)[0]).loss.backward()
    opt.step()
    out = {}
    for name, mod in model.named_modules():
        if hasattr(mod, "get_delta_weight") and hasattr(mod, "lora_A"):
            out[name] = mod.get_delta_weight("default").detach().clone()
    return out


def test_trains_differently_from_lora_by_the_factor_one_plus_lambda():
    """Adam's first step moves B by about lr*sign(grad) whatever the scale, so the merged change s*B*A of the
    control is (1+lambda) times LoRA's, layer by layer."""
    lam = 2.0
    scaled = _delta_after_one_step("lora_scaled", update_ratio=lam)
    plain = _delta_after_one_step("lora", dropout=0.0)
    assert scaled.keys() == plain.keys() and len(scaled) == 4
    for name in scaled:
        assert plain[name].norm() > 0
        ratio = scaled[name].norm() / plain[name].norm()
        assert ratio == pytest.approx(1 + lam, rel=1e-9), name
        assert torch.allclose(scaled[name], (1 + lam) * plain[name], rtol=1e-9, atol=1e-15)
