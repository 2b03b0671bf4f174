"""Breakpoint placements: from curvature (NN-LUT's start), equal widths (linear mode) and
geometrically growing widths (exponential mode)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


def curvature_density(
    f: Callable[[np.ndarray], np.ndarray], lo: float, hi: float, weight: Callable | None = None, n: int = 8193
) -> tuple[np.ndarray, np.ndarray]:
    """Grid and density ``sqrt(|f''| w)``: segments of a best linear fit have error ~ f'' h**2,
    so equal error means widths ~ 1/sqrt(|f''|)."""
    x = np.linspace(lo, hi, n)
    y = f(x)
    d2 = np.abs(np.gradient(np.gradient(y, x), x))
    if weight is not None:
        d2 = d2 * weight(x)
    rho = np.sqrt(d2)
    peak = float(np.max(rho)) if np.any(rho > 0) else 1.0
    rho = rho + 1e-3 * peak  # keep some resolution where f is nearly straight
    return x, rho


def curvature_nodes(
    f: Callable[[np.ndarray], np.ndarray], lo: float, hi: float, entries: int, weight: Callable | None = None
) -> np.ndarray:
    """Nodes (lo, breakpoints..., hi) at equal quantiles of the curvature density."""
    x, rho = curvature_density(f, lo, hi, weight)
    cdf = np.concatenate([[0.0], np.cumsum(0.5 * (rho[1:] + rho[:-1]) * np.diff(x))])
    cdf /= cdf[-1]
    nodes = np.interp(np.linspace(0.0, 1.0, entries + 1), cdf, x)
    nodes[0], nodes[-1] = lo, hi
    return nodes


def linear_nodes(lo: float, hi: float, entries: int) -> np.ndarray:
    """Equal-width segments."""
    nodes = np.linspace(lo, hi, entries + 1)
    nodes[0], nodes[-1] = lo, hi
    return nodes


def bend_point(f: Callable[[np.ndarray], np.ndarray], lo: float, hi: float, weight: Callable | None = None) -> float:
    """Where the function bends most (maximum of the curvature density), snapped to the
    domain edge when it lies within 1% of it."""
    x, rho = curvature_density(f, lo, hi, weight)
    c = float(x[int(np.argmax(rho))])
    if c - lo < 0.01 * (hi - lo):
        return lo
    if hi - c < 0.01 * (hi - lo):
        return hi
    return c


def exponential_nodes(lo: float, hi: float, entries: int, center: float, ratio: float) -> np.ndarray:
    """Segments whose widths grow by ``ratio`` going away from ``center`` on each side.

    Segments are shared between the two sides of ``center`` in proportion to their lengths.
    """
    left_len, right_len = center - lo, hi - center
    total = hi - lo
    if left_len <= 1e-12 * total:
        n_left = 0
    elif right_len <= 1e-12 * total:
        n_left = entries
    else:
        n_left = int(np.clip(round(entries * left_len / total), 1, entries - 1))
    n_right = entries - n_left

    def side(length: float, k: int) -> np.ndarray:
        if k == 0:
            return np.zeros(0)
        with np.errstate(over="ignore"):
            w = ratio ** np.arange(k)
        if not np.isfinite(w.sum()):  # many segments, steep growth: the same shares scaled by ratio**-(k-1)
            w = ratio ** (np.arange(k) - (k - 1.0))
        return np.cumsum(w / w.sum() * length)

    right = center + side(right_len, n_right)
    left = center - side(left_len, n_left)
    nodes = np.concatenate([left[::-1], [center] if 0 < n_left < entries else [], right])
    if n_left == 0:
        nodes = np.concatenate([[lo], right])
    elif n_right == 0:
        nodes = np.concatenate([left[::-1], [hi]])
    nodes[0], nodes[-1] = lo, hi
    return nodes
