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
    A: nn.Parameter  # (r, in)
    B: nn.Parameter  # (out, r)
    scaling: float
    fan_in_fan_out: bool
    has_dropout: bool
    lam: float
    snap_A: torch.Tensor | None = None
    snap_B: torch.Tensor | None = None
    prev_A: torch.Tensor | None = None
    prev_B: torch.Tensor | None = None
    fold_handle: Any = None

    @property
    def weight(self) -> torch.Tensor:
        return self.layer.get_base_layer().weight

    def low_rank_factors(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(B', A') with B'A' = (1+lam) B A - lam S_B S_A: the whole change from W_0, rank <= 2r."""
        # FSDP2: A and B are gathered (a collective: every rank calls this, e.g. in export_adapter)
        return telescoped_factors(
            whole(self.B.detach()), whole(self.A.detach()), self.snap_B, self.snap_A, self.lam
        )

    def effective_delta(self) -> torch.Tensor:
        """s*[(1+lam) B A - lam S_B S_A], laid out like W (transposed for Conv1D)."""
        dt = compute_dtype(self.weight)
        b, a = self.low_rank_factors()
        delta = (b.to(dt) @ a.to(dt)) * self.scaling
        return delta.T if self.fan_in_fan_out else delta
