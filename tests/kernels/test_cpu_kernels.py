"""The fused CPU kernels give the reference evaluation's values, bit for bit."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import nnlut
from nnlut.core._eval import evaluate_reference
from nnlut.core._scaling import Scaling
from nnlut.kernels import _cpu
from nnlut.models import fitted_table
from nnlut.ops import lut_softmax
from tests.strategies import tables_params

pytestmark = pytest.mark.skipif(not _cpu.available(), reason=f"fused kernels unavailable: {_cpu.unavailable_reason()}")

SPECIALS = torch.tensor([math.nan, math.inf, -math.inf, 0.0, -0.0, 1e-45, 1e-40, 1.2e-38, 3.4e38, -3.4e38, 1.0, -1.0])


def _same(a: torch.Tensor, b: torch.Tensor) -> bool:
    return torch.equal(torch.isnan(a), torch.isnan(b)) and torch.equal(a.nan_to_num(0.0), b.nan_to_num(0.0))


@pytest.mark.parametrize("name,kw", [("gelu", {}), ("silu", {}), ("exp", {}), ("sigmoid", {}), ("rsqrt", {}),
                                     ("reciprocal", {}), ("rsqrt", {"range_reduction": True}),
                                     ("reciprocal", {"range_reduction": True})])
def test_fitted_tables_bit_identical(fitted, name, kw):
    table = fitted(name, **kw)
    x = torch.cat([SPECIALS, torch.randn(100_003) * 40, torch.exp(torch.randn(5000) * 20)])
    assert _same(table(x), evaluate_reference(table, x))


@given(tables_params(min_entries=1, max_entries=80),
       st.sampled_from([("extend", "extend"), ("clamp", "clamp"), ("clamp", "extend")]))
def test_random_tables_bit_identical(params, tails):
    table = nnlut.Table(*params, domain=(-50.0, 60.0), tails=tails)
    x = torch.cat([SPECIALS, torch.linspace(-200, 200, 4001), torch.tensor(table.breakpoints, dtype=torch.float32)])
    assert _same(table(x), evaluate_reference(table, x))


@pytest.mark.parametrize("entries", [15, 16, 17, 31, 32, 33, 48, 63, 64, 65])
def test_every_register_width_in_random_order(entries):
    # the register binary search has 16-, 32- and 64-entry forms; lanes of one vector fall in
    # different halves of the table when the inputs come in random order
    rng = np.random.default_rng(entries)
    table = nnlut.Table(np.sort(rng.uniform(-10, 10, entries - 1)), rng.uniform(-2, 2, entries),
                        rng.uniform(-2, 2, entries), domain=(-10.0, 10.0), tails=("clamp", "extend"))
    x = torch.cat([torch.rand(50_000) * 24 - 12, SPECIALS])
    assert _same(table(x), evaluate_reference(table, x))
    xb = x.to(torch.bfloat16)
    assert _same(table(xb), evaluate_reference(table, xb))


def _positive_every_exponent(seed: int) -> torch.Tensor:
    """Positive float32 values of every exponent, subnormals to the largest, in runs of 16 that
    hold normal values only (the kernels' direct path) and runs mixed with special values."""
    g = torch.Generator().manual_seed(seed)
    # first, for every exponent, aligned runs of 16 values of that exponent (256 in all, its
    # smallest and largest among them), so each exponent reaches the direct path on its own
    e = torch.arange(-126, 128, dtype=torch.float64)
    runs = torch.exp2(e)[:, None] * (1 + torch.rand(len(e), 256, generator=g, dtype=torch.float64))
    runs[:, 0], runs[:, 1] = torch.exp2(e), torch.exp2(e + 1) * (1 - 2.0**-24)
    edges = runs.float().reshape(-1)
    wide = torch.exp2(torch.rand(60_000, generator=g, dtype=torch.float64) * 256 - 127).float()
    dense = (1 + 3 * torch.rand(20_000, generator=g)) * 2.0 ** torch.randint(-8, 9, (20_000,), generator=g)
    return torch.cat([edges, wide[wide > 0], dense, SPECIALS])


@pytest.mark.parametrize("period,exponent", [(2, -1.0), (4, -0.5), (2, 1.0), (4, 0.5), (4, -1.0), (2, -2.0)])
@pytest.mark.parametrize("mode", ["full", "paper"])
@pytest.mark.parametrize("signs", ["positive", "mixed"])
def test_range_reduced_random_tables_bit_identical(period, exponent, mode, signs):
    # random tables on [1, period): the direct path (cell lookup, exponent add) must agree with
    # the reference bit for bit wherever it is taken, and hand every other input to the general path
    rng = np.random.default_rng(abs(hash((period, exponent, mode, signs))) % 2**32)
    for n in (1, 2, 5, 16, 24, 32):
        bps = np.sort(1 + (period - 1) * rng.random(n - 1))
        if signs == "positive":
            s, t = rng.uniform(-0.2, 0.2, n), rng.uniform(0.5, 4.0, n)
        else:
            s, t = rng.uniform(-3, 3, n), rng.uniform(-3, 3, n)
        table = nnlut.Table(bps, s, t, domain=(1.0, float(period)), tails=("clamp", "clamp"),
                            scaling=Scaling(mode, exponent, period, "odd" if signs == "mixed" else "nan"))
        x = _positive_every_exponent(n)
        x = torch.cat([x, -x[::7]])
        assert _same(table(x), evaluate_reference(table, x)), n
        xb = x.to(torch.bfloat16)
        assert _same(table(xb), evaluate_reference(table, xb)), n


def test_range_reduced_fitted_tables_every_exponent(fitted):
    for name, entries in (("rsqrt", 8), ("rsqrt", 16), ("rsqrt", 32), ("reciprocal", 16), ("reciprocal", 64)):
        table = fitted(name, entries, range_reduction=True)
        x = _positive_every_exponent(entries)
        assert _same(table(x), evaluate_reference(table, x)), (name, entries)


def test_non_contiguous_and_shapes(fitted):
    table = fitted("gelu")
    x = torch.randn(64, 33).t()
    y = table(x)
    assert y.shape == (33, 64) and _same(y, evaluate_reference(table, x))
    assert table(torch.empty(0)).shape == (0,)


def test_fused_softmax_matches_reference_path():
    e = fitted_table("exp", "nnlut", 16, "full")
    r = fitted_table("reciprocal", "nnlut", 16, "full")
    x = torch.randn(8, 12, 77) * 4
    x[..., 50:] = torch.finfo(torch.float32).min
    fused = lut_softmax(x, -1, e, r)
    ref = lut_softmax(x, -1, lambda z: evaluate_reference(e, z), lambda s: evaluate_reference(r, s))
    # the fused row sum is accumulated in float64: results differ from the float32 sum by rounding only
    assert float((fused - ref).abs().max()) <= 4 * float(np.finfo(np.float32).eps)


@pytest.mark.parametrize("name,kw", [("gelu", {}), ("exp", {}), ("rsqrt", {"range_reduction": True})])
def test_bfloat16_bit_identical(fitted, name, kw):
    table = fitted(name, **kw)
    x = torch.cat([SPECIALS, torch.randn(50_001) * 30]).to(torch.bfloat16)
    y = table(x)
    assert y.dtype == torch.bfloat16
    assert _same(y, evaluate_reference(table, x))


@pytest.mark.parametrize("affine", ["both", "weight", "bias", "none"])
@pytest.mark.parametrize("paper", [False, True])
def test_fused_layernorm_matches_reference_path(affine, paper):
    from nnlut.ops import lut_layernorm

    r = fitted_table("rsqrt", "nnlut", 16, "paper" if paper else "full")
    g = torch.Generator().manual_seed(0)
    x = torch.randn(6, 40, 387, generator=g) * 3 + 5
    x[0, 0] = 2.5  # a constant row: the output is the bias (or 0)
    w = torch.randn(387, generator=g) if affine in ("both", "weight") else None
    b = torch.randn(387, generator=g) if affine in ("both", "bias") else None
    fused = lut_layernorm(x, (387,), w, b, 1e-12, r)
    ref = lut_layernorm(x, (387,), w, b, 1e-12, lambda v: evaluate_reference(r, v))
    # mean and variance are accumulated in float64 (float32 in the reference path): the two
    # agree to rounding, a few float32 ulps of the output's scale
    scale = float(ref.abs().max())
    assert float((fused - ref).abs().max()) <= 8 * scale * float(np.finfo(np.float32).eps)
    assert torch.equal(fused[0, 0], b if b is not None else torch.zeros(387))
    # and the fused path is within the table's error of the exact LayerNorm
    exact = torch.nn.functional.layer_norm(x.double(), (387,), None if w is None else w.double(),
                                           None if b is None else b.double(), 1e-12)
    tol = 4e-3 if not paper else 8e-2
    assert float(((fused.double() - exact).abs() / (1 + exact.abs())).max()) < tol


def test_fused_layernorm_leaves_trainable_inputs_to_autograd():
    from nnlut.ops import lut_layernorm

    r = fitted_table("rsqrt", "nnlut", 16, "full")
    w = torch.ones(8, requires_grad=True)
    x = torch.randn(4, 8)
    y = lut_layernorm(x, (8,), w, None, 1e-5, r)
    y.sum().backward()  # the reference path keeps the graph
    assert w.grad is not None and w.grad.shape == (8,)
