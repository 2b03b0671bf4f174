"""Every bfloat16 value (all 65,536 bit patterns: NaNs, +-inf, +-0, subnormals) through the fused
kernel of each built-in table kind gives the reference evaluation's value, bit for bit."""

from __future__ import annotations

import pytest
import torch

from nnlut.core._eval import evaluate_reference
from nnlut.kernels import _cpu
from nnlut.models import fitted_table

pytestmark = pytest.mark.skipif(not _cpu.available(), reason=f"fused kernels unavailable: {_cpu.unavailable_reason()}")

KINDS = [(name, "none") for name in ("gelu", "gelu_tanh", "silu", "sigmoid", "tanh", "exp", "reciprocal", "rsqrt")]
KINDS += [(name, sc) for name in ("reciprocal", "rsqrt") for sc in ("paper", "full")]


def _every_bf16(shift: int = 0) -> torch.Tensor:
    codes = torch.arange(-(1 << 15), 1 << 15, dtype=torch.int32).to(torch.int16)
    return codes.view(torch.bfloat16).roll(shift)  # rolled: lanes of one vector take different paths


@pytest.mark.parametrize("name,scaling", KINDS)
def test_every_bfloat16_code(name, scaling):
    table = fitted_table(name, "nnlut", 16, scaling)
    for shift in (0, 7):
        x = _every_bf16(shift)
        y, ref = table(x), evaluate_reference(table, x)
        assert y.dtype == torch.bfloat16
        assert torch.equal(y.view(torch.int16)[~ref.isnan()], ref.view(torch.int16)[~ref.isnan()])
        assert torch.equal(y.isnan(), ref.isnan())


@pytest.mark.parametrize("name", ["reciprocal", "rsqrt"])
def test_paper_tables_float32_mixed_vectors(name):
    # paper scaling: inputs at or above the period go to the table unreduced; vectors of 16 that
    # mix them with reduced inputs, specials and negatives must agree with the reference too
    table = fitted_table(name, "nnlut", 16, "paper")
    g = torch.Generator().manual_seed(0)
    wide = torch.exp2(torch.rand(40_000, generator=g, dtype=torch.float64) * 24 - 8).float()  # 2**-8 .. 2**16
    near = 1 + 4 * torch.rand(20_000, generator=g)  # around the period (2 or 4)
    x = torch.cat([wide, near, _every_bf16().float()])
    x = x[torch.randperm(len(x), generator=g)]
    for xs in (x, x.sort().values):
        y, ref = table(xs), evaluate_reference(table, xs)
        assert torch.equal(y.isnan(), ref.isnan())
        assert torch.equal(y.view(torch.int32)[~ref.isnan()], ref.view(torch.int32)[~ref.isnan()])
