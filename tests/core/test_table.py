"""The Table object: validation, evaluation semantics, special values, immutability."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given

from nnlut import NNLUTError, Table
from tests.strategies import tables_params


def brute_eval(bps, s, t, x):
    """Independent reference: loop over segments by plain comparisons."""
    out = np.empty_like(x)
    for k, v in enumerate(x):
        i = sum(1 for d in bps if v >= d)
        out[k] = s[i] * v + t[i]
    return out


@given(tables_params())
def test_evaluation_matches_segment_definition(params):
    bps, s, t = params
    table = Table(bps, s, t)
    x = np.concatenate([bps, bps - 1e-3, bps + 1e-3, np.linspace(-150, 150, 31)])
    np.testing.assert_array_equal(table(x), brute_eval(bps, s, t, x))


def test_breakpoint_belongs_to_the_right_segment():
    table = Table([0.0], [0.0, 1.0], [5.0, 7.0])
    assert table(np.array([0.0]))[0] == 7.0
    assert table(np.array([-1e-12]))[0] == 5.0


@pytest.mark.parametrize(
    "bps,s,t,match",
    [
        ([0.0, 0.0], [1, 2, 3], [0, 0, 0], "strictly increasing"),
        ([1.0, 0.0], [1, 2, 3], [0, 0, 0], "strictly increasing"),
        ([0.0], [1, 2, 3], [0, 0, 0], "N-1 breakpoints"),
        ([0.0], [1, 2], [0], "N-1 breakpoints"),
        ([math.nan], [1, 2], [0, 0], "finite"),
        ([0.0], [1, math.inf], [0, 0], "finite"),
        ([], [], [], "at least 1 entry"),
        (["a"], [1, 2], [0, 0], "list of numbers"),
    ],
)
def test_bad_tables_are_rejected(bps, s, t, match):
    with pytest.raises(NNLUTError, match=match):
        Table(bps, s, t)


def test_clamp_tails_saturate_at_the_domain_edges():
    table = Table([0.0], [1.0, 2.0], [0.0, 0.0], domain=(-1.0, 1.0), tails=("clamp", "clamp"))
    np.testing.assert_array_equal(table(np.array([-5.0, -1.0, 0.5, 1.0, 9.0])), [-1.0, -1.0, 1.0, 2.0, 2.0])
    assert table.limits == (-1.0, 2.0)


def test_clamp_needs_a_domain():
    with pytest.raises(NNLUTError, match="needs a domain"):
        Table([0.0], [1.0, 2.0], [0.0, 0.0], tails=("clamp", "extend"))


def test_special_values():
    table = Table([0.0], [0.0, 1.0], [0.0, 0.0], limits=(0.0, math.inf))
    y = table(np.array([math.nan, math.inf, -math.inf, 3.0]))
    assert math.isnan(y[0]) and y[1] == math.inf and y[2] == 0.0 and y[3] == 3.0


def test_own_limits_follow_the_end_segments():
    assert Table([0.0], [-2.0, 0.0], [1.0, 4.0]).limits == (math.inf, 4.0)
    assert Table([0.0], [0.0, -3.0], [1.0, 4.0]).limits == (1.0, -math.inf)


def test_tables_are_immutable_and_replace_returns_new():
    table = Table([0.0], [0.0, 1.0], [0.0, 0.0])
    with pytest.raises(ValueError):
        table.slopes[0] = 5.0
    other = table.replace(slopes=[0.0, 2.0])
    assert other is not table and table.slopes[1] == 1.0 and other.slopes[1] == 2.0
    with pytest.raises(NNLUTError, match="no field"):
        table.replace(colour="red")


def test_numpy_dtypes_and_shapes():
    table = Table([0.0], [0.0, 1.0], [0.0, 0.0])
    x32 = np.linspace(-1, 1, 12, dtype=np.float32).reshape(3, 4)
    y = table(x32)
    assert y.dtype == np.float32 and y.shape == (3, 4)
    assert table(np.arange(-3, 3)).dtype == np.float64
    assert float(table(2.5)) == 2.5
    with pytest.raises(NNLUTError, match="numeric"):
        table(np.array(["a"]))


def test_continuity_check():
    assert Table([0.0], [1.0, 2.0], [0.0, 0.0]).is_continuous()
    assert not Table([0.0], [1.0, 2.0], [0.0, 1.0]).is_continuous()


def test_tables_with_the_same_values_are_equal_whatever_their_fit_record():
    from nnlut import Table

    a = Table([0.0], [0.0, 1.0], [0.0, 0.0], domain=(-1.0, 1.0), function="relu", meta={"seconds": 1.5})
    b = a.replace(meta={"seconds": 9.0, "seed": 3})
    assert a == b
    assert a != a.replace(slopes=[0.0, 2.0]) and a != a.replace(function=None) and a != a.replace(tails=("clamp", "clamp"))
