"""Exponential-mode nodes at many entries: finite, in order, without overflow."""

from __future__ import annotations

import warnings

import numpy as np

from nnlut.fitting._knots import exponential_nodes


def test_steep_growth_over_many_segments_does_not_overflow():
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # ratio**999 overflowed float64 and gave NaN nodes
        nodes = exponential_nodes(-5.0, 5.0, 1000, 0.0, 8.0)
    assert np.isfinite(nodes).all() and np.all(np.diff(nodes) >= 0)
    assert nodes[0] == -5.0 and nodes[-1] == 5.0 and len(nodes) == 1001
    # widths grow by the ratio away from the centre, where they are representable
    right = np.diff(nodes[nodes >= 0.0])
    big = right[right > 1e-300]
    np.testing.assert_allclose(big[1:] / big[:-1], 8.0, rtol=1e-9)
    # a gentle ratio: the same nodes as the direct formula
    n2 = exponential_nodes(-5.0, 5.0, 16, 0.0, 1.3)
    w = 1.3 ** np.arange(8)
    np.testing.assert_allclose(n2[8:], np.concatenate([[0.0], np.cumsum(w / w.sum() * 5.0)]), rtol=0, atol=1e-15)
