"""Hypothesis strategies shared by the property tests."""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

finite = st.floats(min_value=-1e3, max_value=1e3, allow_nan=False, allow_infinity=False, width=64)


@st.composite
def tables_params(draw, min_entries: int = 1, max_entries: int = 12, continuous: bool = False):
    """(breakpoints, slopes, intercepts) of a random table; continuous if asked."""
    n = draw(st.integers(min_entries, max_entries))
    bps = sorted(set(draw(st.lists(st.floats(-100, 100, allow_nan=False), min_size=n - 1, max_size=n - 1))))
    while len(bps) < n - 1:  # duplicates were drawn: pad with distinct values
        bps.append((bps[-1] if bps else 0.0) + 1.0)
    bps = np.array(sorted(bps))
    if len(bps) > 1 and not np.all(np.diff(bps) > 0):
        bps = np.cumsum(np.abs(np.diff(np.concatenate([[0.0], bps]))) + 0.5)
    slopes = np.array(draw(st.lists(st.floats(-10, 10, allow_nan=False), min_size=n, max_size=n)))
    if continuous:
        t0 = draw(st.floats(-10, 10, allow_nan=False))
        t = [t0]
        for i, d in enumerate(bps):
            t.append(t[-1] + (slopes[i] - slopes[i + 1]) * d)
        intercepts = np.array(t)
    else:
        intercepts = np.array(draw(st.lists(st.floats(-10, 10, allow_nan=False), min_size=n, max_size=n)))
    return bps, slopes, intercepts
