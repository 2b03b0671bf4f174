"""Polishing a trained table of a saturating function: breakpoints, edges and values moved
together to lower the error over every input, the clamped tails included.

NN-LUT training starts from the curvature placement on a domain chosen before training, so it
keeps that start's symmetry: at few entries the best table of an S-shaped function is often
not symmetric (4 segments of tanh want two on one side). Here the max error is replaced by a
smooth stand-in, the L^q norm of the weighted error over a fixed set of inputs (a dense grid
around the table and a geometric reach far beyond each edge, where the table holds its edge
value), and q rises 8 -> 32 -> 128 under L-BFGS; the node values are solved exactly by the
minimax linear programme afterwards by the caller.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


def _points(nodes: np.ndarray) -> np.ndarray:
    lo, hi = float(nodes[0]), float(nodes[-1])
    span = hi - lo
    inner = np.linspace(lo - span, hi + span, 6001)
    reach = span * np.geomspace(1.0, 64.0, 256)
    return np.unique(np.concatenate([lo - reach, inner, hi + reach]))


def polish_clamped(f: Callable[[np.ndarray], np.ndarray], weight: Callable | None, nodes: np.ndarray,
                   values: np.ndarray, powers: tuple[int, ...] = (8, 32, 128), maxiter: int = 200) -> np.ndarray:
    """New nodes (edges included) for a continuous table with clamped tails (see the module
    docstring); ``nodes`` and ``values`` are the trained table's."""
    from scipy.optimize import minimize

    x = _points(nodes)
    fx = f(x)
    w = np.ones_like(x) if weight is None else weight(x)
    m = len(nodes) - 1

    def residuals(k: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, ...]:
        xc = np.clip(x, k[0], k[-1])  # clamped tails: the edge value beyond
        seg = np.clip(np.searchsorted(k, xc, side="right") - 1, 0, m - 1)
        h = k[seg + 1] - k[seg]
        lam = (xc - k[seg]) / h
        dv = v[seg + 1] - v[seg]
        r = ((1 - lam) * v[seg] + lam * v[seg + 1] - fx) * w
        inside = (x >= k[0]) & (x <= k[-1])
        # d lam / d k: only inside the domain (beyond it the input is the edge itself)
        dk_a = np.where(inside, -w * dv * (1 - lam) / h, 0.0)
        dk_b = np.where(inside, -w * dv * lam / h, 0.0)
        return r, seg, w * (1 - lam), w * lam, dk_a, dk_b

    def objective(z: np.ndarray, q: int) -> tuple[float, np.ndarray]:
        k, v = z[:m + 1], z[m + 1:]
        if np.any(np.diff(k) <= 1e-9 * (abs(k[-1] - k[0]) + 1e-300)):
            return 1e30, np.zeros_like(z)
        r, seg, dv_a, dv_b, dk_a, dk_b = residuals(k, v)
        u = np.abs(r)
        top = max(float(u.max()), 1e-300)
        t = float(np.mean((u / top) ** q))
        val = top * t ** (1.0 / q)
        coef = (u / top) ** (q - 1) * np.sign(r) * t ** ((1.0 - q) / q) / len(u)
        gk = np.zeros(m + 1)
        gv = np.zeros(m + 1)
        np.add.at(gv, seg, coef * dv_a)
        np.add.at(gv, seg + 1, coef * dv_b)
        np.add.at(gk, seg, coef * dk_a)
        np.add.at(gk, seg + 1, coef * dk_b)
        return val, np.concatenate([gk, gv])

    z = np.concatenate([np.asarray(nodes, dtype=np.float64), np.asarray(values, dtype=np.float64)])
    for q in powers:
        res = minimize(objective, z, args=(q,), jac=True, method="L-BFGS-B", options={"maxiter": maxiter})
        if res.fun < 1e29 and np.all(np.isfinite(res.x)):
            z = res.x
    return z[:m + 1]
