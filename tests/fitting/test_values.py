"""The exact value refit is optimal for its breakpoints."""

from __future__ import annotations

import numpy as np

import nnlut
from nnlut.core._functions import Tail
from nnlut.fitting._layout import Layout
from nnlut.fitting._values import refit_least_squares, refit_minimax, segment_grid


def test_minimax_values_cannot_be_improved_by_perturbation():
    f = nnlut.get_function("gelu")
    nodes = np.linspace(-5, 5, 9)
    lay = Layout(8, (Tail("extend"), Tail("extend")))
    v, err = refit_minimax(f, nodes, lay)
    x = segment_grid(nodes, 128)
    def max_err(vals):
        return np.max(np.abs(np.interp(x, nodes, vals) - f(x)))
    assert abs(max_err(v) - err) < 1e-6 * err  # the LP's optimum is the real max error (solver tolerance)
    rng = np.random.default_rng(0)
    for _ in range(200):
        assert max_err(v + rng.normal(0, 1e-4, len(v))) >= err * (1 - 1e-6)
    # and it beats interpolation
    assert err < max_err(f(nodes))


def test_asymptote_constraints_are_honoured():
    f = nnlut.get_function("gelu")
    nodes = np.linspace(-5, 5, 9)
    lay = Layout(8, (Tail("asymptote", 0.0, 0.0), Tail("asymptote", 1.0, 0.0)))
    v, _ = refit_minimax(f, nodes, lay)
    assert v[0] == 0.0 and v[1] == 0.0 and v[-1] == 5.0 and v[-2] == nodes[-2]


def test_least_squares_recovers_exact_pwl():
    nodes = np.array([0.0, 1.0, 3.0, 4.0])
    truth = np.array([1.0, -1.0, 2.0, 0.5])
    x = np.random.default_rng(0).uniform(0, 4, 500)
    y = np.interp(x, nodes, truth)
    v = refit_least_squares(x, y, np.ones_like(x), nodes, Layout(3, (Tail("extend"), Tail("extend"))))
    np.testing.assert_allclose(v, truth, atol=1e-9)
