"""ReLU network <-> table conversion is exact (to float rounding) in both directions."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from nnlut import NNLUTError, ReluNetwork, Table
from tests.strategies import tables_params

# conversion reorders sums of up to ~12 terms of size ~1e3: a few ulps of that magnitude
CONVERSION_ATOL = 1e-9


@st.composite
def networks(draw):
    h = draw(st.integers(1, 12))
    fl = st.floats(-5, 5, allow_nan=False)
    n = np.array(draw(st.lists(fl, min_size=h, max_size=h)))
    b = np.array(draw(st.lists(fl, min_size=h, max_size=h)))
    m = np.array(draw(st.lists(fl, min_size=h, max_size=h)))
    return ReluNetwork(n, b, m, draw(fl), draw(fl))


@given(networks())
def test_network_to_table_is_exact(net):
    bps, s, t = net.to_table_arrays()
    table = Table(bps, s, t)
    x = np.concatenate([np.linspace(-60, 60, 2001), bps, bps + 1e-7, bps - 1e-7])
    assert np.all(np.abs(table(x) - net(x)) <= CONVERSION_ATOL * (1 + np.abs(x)) * (1 + np.max(np.abs(net.m))))


def test_network_with_switch_points_beyond_float_range():
    # |n| so small that -b/n overflows: such neurons are linear over every finite input
    net = ReluNetwork(np.array([2.2e-311, -2.2e-311, 1.0, 2.2e-311]), np.array([1.0, 1.0, 0.5, -1.0]),
                      np.array([2.0, -1.0, 3.0, 7.0]), 0.25, 0.5)
    bps, s, t = net.to_table_arrays()
    assert np.all(np.isfinite(bps)) and len(bps) == 1
    x = np.linspace(-1e3, 1e3, 2001)
    np.testing.assert_allclose(Table(bps, s, t)(x), net(x), rtol=1e-12, atol=1e-9)


@given(tables_params(min_entries=2, continuous=True))
def test_table_to_network_round_trip(params):
    table = Table(*params)
    net = table.network()
    assert net.hidden == table.entries - 1
    x = np.linspace(-150, 150, 1001)
    np.testing.assert_allclose(net(x), table(x), rtol=1e-9, atol=1e-7)
    back = Table(*net.to_table_arrays())
    np.testing.assert_allclose(back.breakpoints, table.breakpoints, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(back.slopes, table.slopes, rtol=1e-9, atol=1e-9)


def test_flat_left_end_gives_paper_form_without_skip():
    # GELU-like: flat left tail -> right-active neurons only, skip 0 (NN-LUT's network)
    table = Table([-1.0, 0.0, 1.0], [0.0, 0.2, 0.8, 1.0], [0.0, 0.2, 0.2, 0.0])
    net = table.network()
    assert net.skip == 0.0 and np.all(net.n > 0)
    # reciprocal-like: flat right tail -> left-active neurons only
    table = Table([2.0, 4.0], [-0.5, -0.1, 0.0], [2.0, 1.2, 0.8])
    net = table.network()
    assert net.skip == 0.0 and np.all(net.n < 0)


def test_coincident_and_zero_weight_neurons():
    net = ReluNetwork([1.0, 2.0, 0.0], [-1.0, -2.0, 3.0], [1.0, 1.0, 2.0], bias=0.5)
    bps, s, t = net.to_table_arrays()
    assert list(bps) == [1.0]  # both neurons switch at x = 1; the n = 0 neuron is a constant 6
    x = np.linspace(-3, 3, 61)
    np.testing.assert_allclose(Table(bps, s, t)(x), net(x), atol=1e-12)


def test_discontinuous_table_is_not_a_network():
    with pytest.raises(NNLUTError, match="continuous"):
        Table([0.0], [1.0, 1.0], [0.0, 1.0]).network()
