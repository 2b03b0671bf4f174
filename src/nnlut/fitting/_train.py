"""Training the network: breakpoints and values together, on an Lp schedule toward the max error.

The network ``sum_j m_j relu(n_j x + b_j)`` is trained in an equivalent, better conditioned
parametrisation: log-widths ``u`` of the N segments (a softmax of ``u`` times the domain
length gives the widths, so breakpoints stay ordered and inside the domain) and the free node
values ``vf``. The loss is ``log integral |w(x) (p(x) - f(x))|**q dx``, integrated with
quadrature points that move with their segment, which keeps it smooth in the breakpoints.
``q`` grows stage by stage (L4 ... L256), moving the optimum toward the minimax solution;
each stage runs L-BFGS from the previous one.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from ._layout import Layout

Fn = Callable[[np.ndarray], np.ndarray]

# relative quadrature positions in a segment: its left node (where errors of convex pieces
# peak) and 48 midpoints; every point carries the same weight
_S = np.concatenate([[0.0], (np.arange(48) + 0.5) / 48])
_QW = np.full(len(_S), 1.0 / len(_S))


def _derivative(f: Fn, x: np.ndarray) -> np.ndarray:
    h = 1e-6 * np.maximum(1.0, np.abs(x))
    return (f(x + h) - f(x - h)) / (2 * h)


@dataclass
class TrainResult:
    nodes: np.ndarray
    values: np.ndarray
    iterations: int


class _Problem:
    def __init__(self, f: Fn, lo: float, hi: float, layout: Layout, weight: Fn | None) -> None:
        self.f, self.lo, self.hi, self.layout = f, lo, hi, layout
        self.weight = weight
        self.N = layout.N

    def unpack(self, z: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        u = z[: self.N]
        e = np.exp(u - u.max())
        w = e / e.sum() * (self.hi - self.lo)
        nodes = np.concatenate([[self.lo], self.lo + np.cumsum(w)])
        nodes[-1] = self.hi
        return u, w, nodes

    def pack(self, nodes: np.ndarray, v: np.ndarray) -> np.ndarray:
        return np.concatenate([np.log(np.diff(nodes)), self.layout.free_from_values(v)])

    def values(self, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        _, _, nodes = self.unpack(z)
        M, c, _ = self.layout.matrix(nodes)
        return nodes, M @ z[self.N:] + c

    def loss(self, z: np.ndarray, q: float, scale: float) -> tuple[float, np.ndarray]:
        N = self.N
        _, w, nodes = self.unpack(z)
        M, c, dc = self.layout.matrix(nodes)
        v = M @ z[N:] + c
        x = nodes[:-1, None] + _S[None, :] * w[:, None]
        pv = (1 - _S)[None, :] * v[:-1, None] + _S[None, :] * v[1:, None]
        fx = self.f(x)
        if self.weight is None:
            g, dg = 1.0, 0.0
        else:
            g = self.weight(x)
            dg = _derivative(self.weight, x)
        e = (pv - fx) * g / scale
        ae = np.maximum(np.abs(e), 1e-300)
        qw = np.log(np.maximum(w[:, None] * _QW[None, :], 1e-300))
        lw = qw + q * np.log(ae)
        m = lw.max()
        pw = np.exp(lw - m)
        total = pw.sum()
        logL = float(m + np.log(total))
        pi = pw / total  # d logL / d (log term)
        de = pi * q / (e if np.isscalar(e) else np.where(np.abs(e) > 1e-300, e, 1e-300))  # d logL / d e
        # d e / d pv = g/scale ; d e / d x (moving point) = ((pv - f) g' - f' g)/scale
        dpv = de * g / scale
        gv = np.zeros(N + 1)
        gv[:-1] += np.sum(dpv * (1 - _S), axis=1)
        gv[1:] += np.sum(dpv * _S, axis=1)
        fp = _derivative(self.f, x)
        dx = de * ((pv - fx) * dg - fp * g) / scale
        dwid = np.sum(pi, axis=1) / w  # d logL / d width through the quadrature weights
        gnodes = np.zeros(N + 1)
        gnodes[:-1] += np.sum(dx * (1 - _S), axis=1) - dwid
        gnodes[1:] += np.sum(dx * _S, axis=1) + dwid
        gnodes += gv * dc
        gvf = M.T @ gv
        gn = gnodes.copy()
        gn[0] = gn[-1] = 0.0
        gw = np.cumsum(gn[::-1])[::-1][1:]  # node k = lo + sum_{i<k} w_i
        gu = w * (gw - np.sum(gw * w) / (self.hi - self.lo))
        return logL, np.concatenate([gu, gvf])


def max_error_on_nodes(f: Fn, nodes: np.ndarray, v: np.ndarray, weight: Fn | None, per: int = 64) -> float:
    s = np.arange(per + 1) / per
    x = nodes[:-1, None] + s[None, :] * np.diff(nodes)[:, None]
    p = (1 - s)[None, :] * v[:-1, None] + s[None, :] * v[1:, None]
    e = p - f(x)
    if weight is not None:
        e = e * weight(x)
    return float(np.max(np.abs(e)))


def train(
    f: Fn,
    lo: float,
    hi: float,
    layout: Layout,
    nodes: np.ndarray,
    values: np.ndarray,
    *,
    weight: Fn | None = None,
    schedule: Sequence[float] = (4, 16, 64, 256),
    max_iter: int = 2000,
) -> TrainResult:
    """Train breakpoints and values from (nodes, values) along the Lp ``schedule``."""
    from scipy.optimize import minimize

    prob = _Problem(f, lo, hi, layout, weight)
    z = prob.pack(nodes, values)
    iters = 0
    for q in schedule:
        nd, v = prob.values(z)
        scale = max(max_error_on_nodes(f, nd, v, weight), 1e-300)
        with np.errstate(all="ignore"):
            res = minimize(prob.loss, z, args=(float(q), scale), jac=True, method="L-BFGS-B",
                           options={"maxiter": max_iter, "gtol": 1e-10, "ftol": 1e-13, "maxcor": 40})
        if np.all(np.isfinite(res.x)):
            z = res.x
        iters += int(res.nit)
    nd, v = prob.values(z)
    return TrainResult(nd, v, iters)
