"""Exact refit of the values of a continuous piecewise-linear function for fixed breakpoints.

For fixed nodes the function is linear in its node values, so the best values are a convex
problem: a linear program for the max (minimax) error, a weighted least-squares solve for the
mean squared error. Both honour the tail constraints of the :class:`~._layout.Layout`.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import scipy.sparse as sp

from .._errors import NNLUTError
from ._layout import Layout

Weight = Callable[[np.ndarray], np.ndarray]


def segment_grid(nodes: np.ndarray, per_segment: int) -> np.ndarray:
    """``per_segment`` evenly spaced points in every segment, plus both ends."""
    s = np.arange(per_segment) / per_segment
    pts = nodes[:-1, None] + s[None, :] * np.diff(nodes)[:, None]
    return np.concatenate([pts.reshape(-1), nodes[-1:]])


def hat_matrix(x: np.ndarray, nodes: np.ndarray) -> sp.csr_matrix:
    """Sparse (len(x), len(nodes)) matrix of the piecewise-linear hat basis at ``x``."""
    k = len(nodes)
    idx = np.clip(np.searchsorted(nodes, x, side="right") - 1, 0, k - 2)
    w = (x - nodes[idx]) / (nodes[idx + 1] - nodes[idx])
    rows = np.arange(len(x))
    return sp.csr_matrix(
        (np.concatenate([1 - w, w]), (np.concatenate([rows, rows]), np.concatenate([idx, idx + 1]))),
        shape=(len(x), k),
    )


def values_to_table_arrays(nodes: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Breakpoints, slopes and intercepts of the continuous function through (nodes, v)."""
    s = np.diff(v) / np.diff(nodes)
    t = v[:-1] - s * nodes[:-1]
    return nodes[1:-1].copy(), s, t


def refit_minimax(
    f: Callable[[np.ndarray], np.ndarray],
    nodes: np.ndarray,
    layout: Layout,
    weight: Weight | None = None,
    *,
    per_segment: int = 128,
) -> tuple[np.ndarray, float]:
    """Node values minimising ``max |w(x) (p(x) - f(x))|`` on a fine grid. Returns (v, max error)."""
    from scipy.optimize import linprog

    x = segment_grid(nodes, per_segment)
    y = f(x)
    w = np.ones_like(x) if weight is None else weight(x)
    M, c, _ = layout.matrix(nodes)
    H = hat_matrix(x, nodes)
    A = sp.diags(w) @ H @ sp.csr_matrix(M)
    r = w * (y - H @ c)  # residual the free values must fit
    if layout.n_free == 0:
        v = c
        return v, float(np.max(np.abs(r)))
    n = len(x)
    one = sp.csr_matrix(np.ones((n, 1)))
    A_ub = sp.vstack([sp.hstack([A, -one]), sp.hstack([-A, -one])]).tocsc()
    b_ub = np.concatenate([r, -r])
    cost = np.zeros(layout.n_free + 1)
    cost[-1] = 1.0
    bounds = [(None, None)] * layout.n_free + [(0, None)]
    res = linprog(cost, A_ub=A_ub, b_ub=b_ub, bounds=bounds, method="highs")
    if res.status != 0:
        raise NNLUTError(f"minimax refit failed: {res.message}")
    vf = res.x[:-1]
    return M @ vf + c, float(res.x[-1])


def refit_least_squares(
    x: np.ndarray,
    y: np.ndarray,
    w: np.ndarray,
    nodes: np.ndarray,
    layout: Layout,
    *,
    ridge: float = 1e-12,
) -> np.ndarray:
    """Node values minimising ``sum w (p(x) - y)**2`` over samples ``x`` with weights ``w``."""
    M, c, _ = layout.matrix(nodes)
    if layout.n_free == 0:
        return c
    H = hat_matrix(x, nodes)
    A = (H @ sp.csr_matrix(M)).toarray()
    r = y - H @ c
    sw = np.sqrt(w)
    A = A * sw[:, None]
    r = r * sw
    # a node with no data nearby is held near its current value by a tiny ridge term
    G = A.T @ A
    G += ridge * (np.trace(G) / max(len(G), 1) + 1e-300) * np.eye(len(G))
    vf = np.linalg.solve(G, A.T @ r)
    return M @ vf + c
