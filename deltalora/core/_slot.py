"""One adapted layer as Delta-LoRA sees it: its LoRA factors, its scale and its Delta-LoRA state.

Shared by both engines (`delta_lora`) and the folded branch (`_folded`); it imports neither, so the
package has no import cycle.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ._sharding import whole
from .telescoping import telescoped_factors


def compute_dtype(t: torch.Tensor) -> torch.dtype:
    """float64 stays float64; everything else is computed in float32."""
    return torch.float64 if t.dtype == torch.float64 else torch.float32


@dataclass(eq=False)
class Slot:
    """One adapted layer: its factors, scale and Delta-LoRA state."""

    name: str
    layer: nn.Module
    adapter: str
    scaling: float
    fan_in_fan_out: bool
    has_dropout: bool
    lam: float
    snap_A: torch.Tensor | None = None
    snap_B: torch.Tensor | None = None
    prev_A: torch.Tensor | None = None
    prev_B: torch.Tensor | None = None
    fold_handle: Any = None
    # (B_T, A_T) at detach() after the switch: the lam-term is then frozen at lam*s*(B_T A_T - S_B S_A)
    frozen: tuple[torch.Tensor, torch.Tensor] | None = None

    # The factors are looked up on the layer, not held: a move that replaces parameter objects (to the meta
    # device, or a new Parameter set by the user) is followed.
    @property
    def A(self) -> nn.Parameter:  # noqa: N802 (the paper's name), (r, in)
        return self.layer.lora_A[self.adapter].weight

    @property
    def B(self) -> nn.Parameter:  # noqa: N802, (out, r)
        return self.layer.lora_B[self.adapter].weight

    @property
    def weight(self) -> torch.Tensor:
        return self.layer.get_base_layer().weight

    def follow(self, *, prev: bool = False) -> None:
        """Keep the snapshot and the previous factors where the factors are (after model.to(), .cuda(),
        accelerate.prepare): Delta-LoRA's tensors are not module buffers, so a move does not take them.
        `prev`: also (re)allocate the inplace engine's copies of the factors before a step."""
        A, B = self.A, self.B
        if self.snap_A is not None and self.snap_A.device != A.device:
            self.snap_A, self.snap_B = self.snap_A.to(A.device), self.snap_B.to(B.device)
        if self.frozen is not None and self.frozen[1].device != A.device:
            self.frozen = (self.frozen[0].to(B.device), self.frozen[1].to(A.device))
        for name, p in (("prev_A", A), ("prev_B", B)) if prev else ():
            old = getattr(self, name)
            if old is None or old.shape != p.shape or old.device != p.device or old.dtype != p.dtype:
                setattr(self, name, torch.empty_like(p, memory_format=torch.contiguous_format).detach())

    def low_rank_factors(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(B', A') with B'A' = (1+lam) B A - lam S_B S_A: the whole change from W_0, rank <= 2r."""
        # FSDP2: A and B are gathered (a collective: every rank calls this, e.g. in export_adapter)
        return telescoped_factors(
            whole(self.B.detach()), whole(self.A.detach()), self.snap_B, self.snap_A, self.lam
        )

    def effective_delta(self) -> torch.Tensor:
        """s*[(1+lam) B A - lam S_B S_A] (after detach: s*B A + lam*s*(B_T A_T - S_B S_A)), laid out like W
        (transposed for Conv1D)."""
        dt = compute_dtype(self.weight)
        if self.frozen is None:
            b, a = self.low_rank_factors()
            delta = (b.to(dt) @ a.to(dt)) * self.scaling
        else:  # detached: s*B A (live) + lam*s*(B_T A_T - S_B S_A) (frozen)
            fb, fa = self.frozen
            b, a = telescoped_factors(fb, fa, self.snap_B, self.snap_A, self.lam)
            live = self.B.detach().to(dt) @ self.A.detach().to(dt)
            frozen = fb.to(dt) @ fa.to(dt)
            delta = (live + (b.to(dt) @ a.to(dt)) - frozen) * self.scaling
        return delta.T if self.fan_in_fan_out else delta
