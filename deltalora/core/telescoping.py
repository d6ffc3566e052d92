"""The telescoped form of Delta-LoRA's weight change, computed in one place.

Summing Algorithm 1's W updates from the switch at K+1 to step T gives
``W_T = W_0 + lam * s * (B_T A_T - S_B S_A)`` with (S_A, S_B) the factors at the switch, so the whole
change of the model from W_0 is ``s * [(1+lam) B A - lam S_B S_A]``: a LoRA product of rank <= 2r
(docs/design.md §2 and §5). Export, merge, analysis and the memory study all need its factors.
"""

from __future__ import annotations

import torch


def stacked_factors(
    B: torch.Tensor,
    A: torch.Tensor,
    snap_B: torch.Tensor,
    snap_A: torch.Tensor,
    coef: float,
    snap_coef: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(B', A') = ([coef B | snap_coef S_B], [A ; S_A]), so B' A' = coef B A + snap_coef S_B S_A.

    Every rank-2r form of the method is this stacking with other coefficients: the model's change from
    W_0 (1+lam, -lam), W's own change (1, -1, times lam*s), the folded branch ((1+lam)s, -lam*s).
    """
    # the snapshot goes where the factors are: a moved model or a DataParallel replica on another device
    b = torch.cat((B * coef, snap_B.to(device=B.device, dtype=B.dtype) * snap_coef), 1)
    a = torch.cat((A, snap_A.to(device=A.device, dtype=A.dtype)), 0)
    return b, a


def telescoped_factors(
    B: torch.Tensor, A: torch.Tensor, snap_B: torch.Tensor | None, snap_A: torch.Tensor | None, lam: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """(B', A') with B' A' = (1+lam) B A - lam S_B S_A, in B's and A's dtype.

    B' = [(1+lam) B | -lam S_B] (out x 2r) and A' = [A ; S_A] (2r x in). Before the switch (no
    snapshot) or with lam = 0 the change is the plain LoRA product and (B, A) is returned.
    """
    if snap_A is None or snap_B is None or lam == 0.0:
        return B, A
    return stacked_factors(B, A, snap_B, snap_A, 1.0 + lam, -lam)


__all__ = ["stacked_factors", "telescoped_factors"]
