"""Power-of-two input scaling adds no error of its own."""

from __future__ import annotations

import math

import numpy as np
import pytest

import nnlut
from nnlut import NNLUTError, Scaling, Table


def test_scaling_is_exact_exponent_arithmetic(fitted):
    # For every x = m * 4**j, the scaled table's output must be exactly table(m) * 2**-j.
    table = fitted("rsqrt", range_reduction=True)
    plain = table.replace(scaling=None)
    m = np.linspace(1.0, 4.0, 257)[:-1]
    for j in (-30, -7, -1, 0, 1, 5, 30):
        x = m * 4.0**j
        np.testing.assert_array_equal(table(x), plain(m) * 2.0 ** (-j))


def test_paper_mode_scales_only_below_one(fitted):
    table = fitted("rsqrt")
    assert table.scaling is not None and table.scaling.mode == "paper"
    plain = table.replace(scaling=None)
    x = np.array([1.0, 3.5, 100.0, 1000.0])
    np.testing.assert_array_equal(table(x), plain(x))
    small = np.array([0.1, 0.25, 0.5, 0.9])
    for v in small:
        k = math.ceil(-math.log(v, 4))
        assert table(np.array([v]))[0] == plain(np.array([v * 4.0**k]))[0] * 2.0**k


def test_range_reduction_relative_error_over_wide_range(fitted):
    spec = nnlut.get_function("reciprocal")
    table = fitted("reciprocal", range_reduction=True)
    e = nnlut.measure(table, spec, (2.0**-20, 2.0**20), points=2**16 + 1)
    assert e["max_rel"] <= 2.6e-4  # the goal; best possible on [1, 2) is 2.35e-4


def test_special_inputs_of_scaled_tables(fitted):
    r = fitted("reciprocal", range_reduction=True)
    y = r(np.array([0.0, -2.0, math.inf, math.nan, -math.inf]))
    assert y[0] == math.inf and y[1] == -r(np.array([2.0]))[0] and y[2] == 0.0 and math.isnan(y[3])
    s = fitted("rsqrt", range_reduction=True)
    y = s(np.array([0.0, -1.0, math.inf]))
    assert y[0] == math.inf and math.isnan(y[1]) and y[2] == 0.0


def test_subnormal_and_extreme_float32_inputs(fitted):
    torch = pytest.importorskip("torch")
    table = fitted("rsqrt", range_reduction=True)
    x = torch.tensor([1e-40, 1.2e-38, 3e38, 1.0], dtype=torch.float32)
    y = table(x)
    ref = 1 / np.sqrt(x.double().numpy())
    np.testing.assert_allclose(y.double().numpy(), ref, rtol=4e-4)


def test_output_correction_beyond_a_float32_power_of_two():
    # f(x) = 1/x on [1, 4) with values near 0.1: an input in [2**-128, 2**-126) needs the
    # correction 2**128, which is no float32, though the result (~1e37) is; every backend
    # must round x * 2**k once, like float64 arithmetic rounded to float32
    torch = pytest.importorskip("torch")
    from nnlut.core._eval import evaluate_reference

    table = Table([1.5, 2.5, 3.2], [0.01, -0.01, 0.02, 0.0], [0.05, 0.1, 0.12, 0.2], domain=(1.0, 4.0),
                  tails=("clamp", "clamp"), scaling=Scaling("full", -1.0, 4))
    e = torch.tensor([-128.0, -127.5, -127.0, -126.5, 125.5, 126.0, 127.0])
    x = torch.exp2(e).float()
    # exact: reduce by hand in float64, evaluate the table's float32 arithmetic, scale in float64
    xd = x.double()
    j = torch.floor(torch.floor(torch.log2(xd)) / 2)
    u = (xd / 4.0**j).float()
    idx = torch.searchsorted(torch.tensor(table.breakpoints, dtype=torch.float32), u, right=True)
    v = torch.tensor(table.slopes, dtype=torch.float32)[idx] * u + torch.tensor(table.intercepts, dtype=torch.float32)[idx]
    want = (v.double() * torch.exp2(-2 * j)).float()
    assert torch.isfinite(want[:4]).all() and float(want[0]) > 1e37
    assert torch.equal(evaluate_reference(table, x), want)
    assert torch.equal(table(x), want)
    # the float64 numpy path agrees to float32 rounding
    np.testing.assert_allclose(table(x.numpy().astype(np.float64)), want.double().numpy(), rtol=1e-6)


def test_output_correction_beyond_the_float64_exponent_range():
    # f(x) = x**-8 with period 2: the correction 2**(-8 j) runs past 2**1023 and below
    # 2**-1022 for extreme float32 inputs, where the float32 result is inf or 0 anyway
    torch = pytest.importorskip("torch")
    from nnlut.core._eval import evaluate_reference

    table = Table([1.25, 1.5, 1.75], [-6.0, -3.0, -1.5, -0.8], [7.0, 4.25, 2.2, 1.2], domain=(1.0, 2.0),
                  tails=("clamp", "clamp"), scaling=Scaling("full", -8.0, 2))
    x = torch.tensor([2.0**-140, 2.0**-130, 2.0**-15, 1.0, 2.0**15, 2.0**127, 3.0e38])
    y = table(x)  # the table is 1 at u = 1, so powers of two give 2**(-8 log2 x) exactly
    assert torch.equal(y, evaluate_reference(table, x))
    assert torch.equal(y[:5], torch.tensor([math.inf, math.inf, 2.0**120, 1.0, 2.0**-120]))
    assert y[5] == 0 and y[6] == 0


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"mode": "half", "exponent": -1.0, "period": 2}, "scaling mode"),
        ({"mode": "full", "exponent": -1.0, "period": 3}, "power of two"),
        ({"mode": "full", "exponent": -0.5, "period": 2}, "whole power of two"),
    ],
)
def test_bad_scaling(kwargs, match):
    with pytest.raises(NNLUTError, match=match):
        Scaling(**kwargs)


def test_scaled_table_must_start_at_one():
    with pytest.raises(NNLUTError, match="start at 1.0"):
        Table([3.0], [0.0, 1.0], [0.0, 0.0], domain=(2.0, 8.0), scaling=Scaling("paper", -1.0, 2))
