"""The folded engine under CPU bf16 autocast: `FoldedLoRAFunction` records the autocast state in forward
and runs its backward under the same autocast, as autograd would for the plain expression.

The reference is the same function written with ordinary autograd ops: the branch s*(1+lam) B A x
passes gradient to A and B; the folded part lam*s*(B A - S_B S_A) x, with A and B detached, passes
gradient to x only. Both run under `torch.autocast("cpu", torch.bfloat16)`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from deltalora.core._folded import FoldedLoRAFunction

S, LAM = 0.5, 2.0


def _inputs(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(3, 5, 16, generator=g, requires_grad=True)
    A = torch.randn(4, 16, generator=g, requires_grad=True)  # noqa: N806
    B = torch.randn(12, 4, generator=g, requires_grad=True)  # noqa: N806
    SA, SB = torch.randn(4, 16, generator=g), torch.randn(12, 4, generator=g)  # noqa: N806
    return x, A, B, SA, SB


def _reference(x, A, B, SA, SB):  # noqa: N803
    branch = F.linear(F.linear(x, A), B) * S
    folded = (F.linear(F.linear(x, A.detach()), B.detach()) - F.linear(F.linear(x, SA), SB)) * (LAM * S)
    return branch + folded


def _grads(fn):
    x, A, B, SA, SB = _inputs()  # noqa: N806
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = fn(x, A, B, SA, SB)
        loss = (y.float() * torch.linspace(-1, 1, y.shape[-1])).sum()
    loss.backward()
    return y, x.grad, A.grad, B.grad


def test_folded_function_under_cpu_bf16_autocast_matches_autograd():
    y, gx, ga, gb = _grads(lambda x, A, B, SA, SB: FoldedLoRAFunction.apply(x, A, B, SA, SB, S, LAM))  # noqa: N803
    y_ref, gx_ref, ga_ref, gb_ref = _grads(_reference)
    assert y.dtype == torch.bfloat16  # autocast reached the forward's matmuls
    assert (gx.dtype, ga.dtype, gb.dtype) == (torch.float32,) * 3  # grads cast back to the inputs' dtypes
    assert torch.allclose(y.float(), y_ref.float(), rtol=5e-2, atol=5e-2)
    for got, ref in ((gx, gx_ref), (ga, ga_ref), (gb, gb_ref)):
        assert float((got - ref).norm() / ref.norm()) < 2e-2  # bf16 rounding only
