"""The telescoped factors of Delta-LoRA's weight change (docs/design.md §2, §5), computed in one place."""

from __future__ import annotations

import pytest
import torch

from deltalora.benchmark import bf16_rounding_loss
from deltalora.core.telescoping import stacked_factors, telescoped_factors


def test_factors_give_the_telescoped_change_with_rank_2r():
    g = torch.Generator().manual_seed(0)
    out, inn, r, lam = 12, 10, 3, 2.0
    B, A, SB, SA = (
        torch.randn(s, generator=g, dtype=torch.float64) for s in ((out, r), (r, inn), (out, r), (r, inn))
    )
    b, a = telescoped_factors(B, A, SB, SA, lam)
    assert b.shape == (out, 2 * r) and a.shape == (2 * r, inn)
    torch.testing.assert_close(b @ a, (1 + lam) * (B @ A) - lam * (SB @ SA), rtol=0, atol=1e-12)
    assert torch.linalg.matrix_rank(b @ a) == 2 * r


def test_before_the_switch_or_without_lambda_the_change_is_the_lora_product():
    B, A = torch.ones(4, 2), torch.ones(2, 3)
    assert telescoped_factors(B, A, None, None, 2.0) == (B, A)
    got = telescoped_factors(B, A, torch.zeros(4, 2), torch.zeros(2, 3), 0.0)
    assert got[0] is B and got[1] is A


def test_memory_study_sees_no_rounding_loss_in_the_folded_engine():
    """bf16_rounding_loss reads the folded engine's change through telescoped_factors in float64."""
    res = bf16_rounding_loss("tiny", steps=4, batch=2, seq=8)
    assert res["folded_lost_fraction"] == pytest.approx(0.0, abs=1e-6)
    assert res["inplace_lost_fraction"] > 1e-3  # bf16 W drops part of every small update


def test_stacked_factors_carry_both_coefficients_in_the_callers_dtype():
    """The engines, the export and W's own change all use this one stacking (folded: (1+lam)s, -lam s)."""
    g = torch.Generator().manual_seed(1)
    B, A = (
        torch.randn(6, 2, generator=g, dtype=torch.float64),
        torch.randn(2, 5, generator=g, dtype=torch.float64),
    )
    SB, SA = torch.randn(6, 2, generator=g), torch.randn(2, 5, generator=g)  # float32 snapshot
    b, a = stacked_factors(B, A, SB, SA, 0.75, -0.25)
    assert b.dtype == a.dtype == torch.float64 and b.shape == (6, 4) and a.shape == (4, 5)
    want = 0.75 * (B @ A) - 0.25 * (SB.double() @ SA.double())
    torch.testing.assert_close(b @ a, want, rtol=0, atol=1e-12)
