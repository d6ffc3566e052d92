"""The numerical rank behind claim 1 ("Delta-LoRA updates high-rank parameters") on matrices whose singular
values are known: the rank is relative to the largest singular value, so it does not move with the scale
of the weights; a rank-2r update reads 2r and a full-rank one reads full. Runtime < 1 s."""

from __future__ import annotations

import pytest
import torch

from deltalora.analysis import THRESHOLDS, _summary, numerical_ranks

SCALES = (1e-3, 1.0, 1e3)


def _orthonormal(n: int, k: int, gen: torch.Generator) -> torch.Tensor:
    q, _ = torch.linalg.qr(torch.randn(n, k, generator=gen, dtype=torch.float64))
    return q


def with_singular_values(sv: list[float], out: int = 40, inp: int = 30, seed: int = 0) -> torch.Tensor:
    """U diag(sv) V^T with random orthonormal U, V: a matrix whose singular values are exactly `sv`."""
    gen = torch.Generator().manual_seed(seed)
    k = len(sv)
    return (
        _orthonormal(out, k, gen)
        @ torch.diag(torch.tensor(sv, dtype=torch.float64))
        @ _orthonormal(inp, k, gen).T
    )


# One singular value between each pair of neighbouring thresholds (1e-2, 1e-3, 1e-4, 1e-6), relative to 2.0.
KNOWN = [2.0, 1.0, 0.1, 2 * 5e-3, 2 * 5e-4, 2 * 5e-6, 2 * 1e-8]
EXPECTED = {"0.01": 3, "0.001": 4, "0.0001": 5, "1e-06": 6}


@pytest.mark.parametrize("scale", SCALES)
def test_known_singular_values_give_the_same_ranks_at_every_scale(scale):
    assert [f"{t:g}" for t in THRESHOLDS] == list(EXPECTED)
    m = with_singular_values(KNOWN) * scale
    summary = _summary(m)
    assert summary["singular_values"][:7] == pytest.approx(
        [s * scale for s in KNOWN], rel=1e-6, abs=1e-12 * scale
    )
    assert summary["ranks"] == EXPECTED
    assert numerical_ranks(torch.tensor(KNOWN, dtype=torch.float64) * scale) == EXPECTED


@pytest.mark.parametrize("scale", SCALES)
@pytest.mark.parametrize("r", [1, 4, 8])
def test_a_rank_2r_update_reads_2r_and_a_full_rank_one_reads_full(scale, r):
    """B1 A1 - B0 A0 (two rank-r products: the change Delta-LoRA adds to W over a step, summed) has rank
    2r; a dense update of a 40 x 30 weight has rank 30."""
    gen = torch.Generator().manual_seed(r)
    out, inp = 40, 30

    def product():
        b = torch.randn(out, r, generator=gen, dtype=torch.float64)
        return b @ torch.randn(r, inp, generator=gen, dtype=torch.float64)

    two_r = (product() - product()) * scale
    sv = torch.linalg.svdvals(two_r)
    assert float(sv[2 * r - 1] / sv[0]) > 2e-2  # the 2r directions are genuine at every threshold
    assert _summary(two_r)["ranks"] == {f"{t:g}": 2 * r for t in THRESHOLDS}
    full = torch.randn(out, inp, generator=gen, dtype=torch.float64) * scale
    assert _summary(full)["ranks"] == {f"{t:g}": inp for t in THRESHOLDS}


def test_a_zero_update_has_rank_zero():
    assert _summary(torch.zeros(5, 4, dtype=torch.float64))["ranks"] == {f"{t:g}": 0 for t in THRESHOLDS}
    assert numerical_ranks(torch.zeros(0)) == {f"{t:g}": 0 for t in THRESHOLDS}
