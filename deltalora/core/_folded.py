"""The folded Delta-LoRA branch: one autograd function and the PEFT hook-up.

After the switch at step K, Algorithm 1's weight is W_0 + lam*s*(B A - S_B S_A), where (S_A, S_B)
is the snapshot of the factors taken at the switch. Instead of writing that into W, the folded
engine adds it to the LoRA branch:

    y = W_0 x + s*B A x + lam*s*(B A - S_B S_A) x
      = W_0 x + s*[(1+lam) B (A x) - lam S_B (S_A x)]

The lam-term is part of W in Algorithm 1, so it must pass **no gradient to A and B** (W has no
gradient path to the factors) but **must pass gradient to x** (gradients flow through W to the layers
below). `FoldedLoRAFunction` does exactly that and reuses A x, so the branch costs two rank-2r
matmuls forward and a few rank-r/2r matmuls backward: a few percent of the layer, with no
activation-sized temporaries beyond LoRA's own.
"""

from __future__ import annotations

import contextlib
from typing import Any

import torch
import torch.nn.functional as F

from ._slot import Slot
from .telescoping import stacked_factors


class FoldedLoRAFunction(torch.autograd.Function):
    """y = s*[(1+lam) B A x - lam S_B S_A x]; grads: A, B as for s*B A x; x as for all of y."""

    @staticmethod
    def forward(ctx, x, A, B, SA, SB, scaling: float, lam: float):  # noqa: N803 (math names)
        device_type = x.device.type
        try:
            ctx.autocast = (torch.is_autocast_enabled(device_type), torch.get_autocast_dtype(device_type))
        except RuntimeError:  # a device without autocast (meta: shape-only runs)
            ctx.autocast = (False, None)
        # b_cat (out, 2r) = [(1+lam)s B | -lam s S_B], a_cat (2r, in) = [A ; S_A]
        b_cat, a_cat = stacked_factors(B, A, SB, SA, (1.0 + lam) * scaling, -lam * scaling)
        w = F.linear(x, a_cat)  # (..., 2r) = [A x ; S_A x]
        y = F.linear(w, b_cat)
        ctx.save_for_backward(x, w, a_cat, B, SB)
        ctx.scaling, ctx.lam, ctx.r = scaling, lam, A.shape[0]
        return y

    @staticmethod
    def backward(ctx, gy):
        x, w, a_cat, B, SB = ctx.saved_tensors
        s, lam, r = ctx.scaling, ctx.lam, ctx.r
        need_x, need_a, need_b = ctx.needs_input_grad[0], ctx.needs_input_grad[1], ctx.needs_input_grad[2]
        gx = g_a = g_b = None
        enabled, dtype = ctx.autocast
        amp = torch.autocast(device_type=gy.device.type, dtype=dtype) if enabled else contextlib.nullcontext()
        with amp:
            if need_x or need_a:
                h = torch.matmul(gy, torch.cat((B, SB), 1))  # (..., 2r) = [B^T gy ; S_B^T gy]
            if need_b:
                u = w[..., :r]
                g_b = s * torch.matmul(gy.reshape(-1, gy.shape[-1]).t(), u.reshape(-1, r))
            if need_a:
                h1 = h[..., :r]
                g_a = s * torch.matmul(h1.reshape(-1, r).t(), x.reshape(-1, x.shape[-1]))
            if need_x:
                coeff = torch.cat((h.new_full((r,), s * (1.0 + lam)), h.new_full((r,), -s * lam)))
                gx = torch.matmul(h * coeff, a_cat.to(h.dtype))
        if g_a is not None:
            g_a = g_a.to(a_cat.dtype)
        if g_b is not None:
            g_b = g_b.to(B.dtype)
        if gx is not None:
            gx = gx.to(x.dtype)
        return gx, g_a, g_b, None, None, None, None


def folded_extra(x: torch.Tensor, A: torch.Tensor, B: torch.Tensor, slot: Slot) -> torch.Tensor:  # noqa: N803
    """lam*s*(B A - S_B S_A) x with A, B detached: the part folded from W when the branch has dropout,
    and the frozen term after detach(). A and B are the calling layer's weights as its forward holds
    them: a DataParallel replica's (on its device), and whole under FSDP2, where `slot.A` is this
    rank's shard."""
    b_cat, a_cat = stacked_factors(B.detach(), A.detach(), slot.snap_B, slot.snap_A, 1.0, -1.0)
    return F.linear(F.linear(x, a_cat.to(x.dtype)), b_cat.to(x.dtype)) * (slot.lam * slot.scaling)


class FoldedVariant:
    """Plugs the folded branch into a PEFT LoRA layer through its variant dispatch.

    PEFT's `lora.Linear.forward` hands the branch to `layer.lora_variant[adapter].forward` when one
    is registered (this is how DoRA works). Only the forward and the merge methods are used; nothing
    in the saved adapter changes, so PEFT state dicts stay standard.
    """

    def __init__(self, slot: Slot):
        self.slot = slot

    def supports_lora_conversion(self) -> bool:
        return False

    @staticmethod
    def init(module: Any, adapter_name: str, **kwargs: Any) -> None:  # pragma: no cover - never re-inited
        pass

    def forward(self, module: Any, active_adapter: str, x: torch.Tensor, result: torch.Tensor, **kwargs: Any):
        slot = self.slot
        dropout = module.lora_dropout[active_adapter]
        lora_a, lora_b = module.lora_A[active_adapter], module.lora_B[active_adapter]
        if slot.snap_A is None:  # before the switch: exactly PEFT's plain LoRA branch
            return result + lora_b(lora_a(dropout(x))) * module.scaling[active_adapter]
        if module is slot.layer:
            slot.follow()  # the model moved: take the snapshot along once (a replica converts per call)
        if slot.frozen is not None:  # detached: plain LoRA on top of the frozen lam-term
            branch = lora_b(lora_a(dropout(x))) * slot.scaling
            fb, fa = slot.frozen
            return result + branch + folded_extra(x, fa.to(x.device), fb.to(x.device), slot)
        A, B = lora_a.weight, lora_b.weight  # this layer's: a DataParallel replica's live on its device
        if slot.has_dropout and module.training:
            # Algorithm 1 as written with dropout (the dropout ablation): the branch sees dropout(x),
            # the part folded from W sees x.
            branch = lora_b(lora_a(dropout(x))) * slot.scaling
            return result + branch + folded_extra(x, A, B, slot)
        y = FoldedLoRAFunction.apply(
            x,
            A,
            B,
            slot.snap_A.to(device=A.device, dtype=A.dtype),
            slot.snap_B.to(device=B.device, dtype=B.dtype),
            slot.scaling,
            slot.lam,
        )
        return result + y

    # Merging (PEFT's merge_adapter / merge_and_unload) writes the effective weight.
    def merge_safe(self, module: Any, active_adapter: str, orig_weight: torch.Tensor) -> torch.Tensor:
        delta = self.slot.effective_delta()
        return (orig_weight.to(delta.dtype) + delta).to(orig_weight.dtype)

    def merge_unsafe(self, module: Any, active_adapter: str, orig_weight: torch.Tensor) -> None:
        orig_weight.data = self.merge_safe(module, active_adapter, orig_weight.data)

    def unmerge(self, module: Any, active_adapter: str, orig_weight: torch.Tensor) -> torch.Tensor:
        delta = self.slot.effective_delta()
        return (orig_weight.to(delta.dtype) - delta).to(orig_weight.dtype)
