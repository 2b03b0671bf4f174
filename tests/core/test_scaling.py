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
