"""Errors of a table against the exact function on a dense grid.

The grid is 2**20 + 1 evenly spaced points over the domain, plus 2**18 log-spaced points when
the domain is positive and spans more than two decades. Relative error ``|p - f| / |f|`` is
taken where ``|f(x)|`` is at least ``REL_FLOOR`` of its largest value on the domain (near a
zero of f it measures nothing useful); for the scaled functions (reciprocal, rsqrt), whose
values span many decades and never vanish, it is taken everywhere.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from ..core._functions import FunctionSpec

Approx = Callable[[np.ndarray], np.ndarray]

REL_FLOOR = 1e-3
DENSE_POINTS = 2**20 + 1


def dense_grid(lo: float, hi: float, points: int = DENSE_POINTS) -> np.ndarray:
    x = np.linspace(lo, hi, points)
    if lo > 0 and hi / lo > 100:
        x = np.union1d(x, np.geomspace(lo, hi, points // 4))
    return x


def error_arrays(table: Approx, spec: FunctionSpec, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(abs error, relative error, mask where the relative error counts) at ``x``."""
    y = spec(x)
    p = table(x)
    ae = np.abs(p - y)
    ay = np.abs(y)
    if spec.scaling is not None:
        mask = ay > 0
    else:
        mask = ay >= REL_FLOOR * np.max(ay)
    with np.errstate(divide="ignore", invalid="ignore"):
        re = np.where(mask, ae / np.where(ay > 0, ay, 1.0), 0.0)
    return ae, re, mask


def measure(table: Approx, spec: FunctionSpec, domain: tuple[float, float], points: int = DENSE_POINTS) -> dict[str, Any]:
    """Max and mean absolute and relative error of ``table`` (a table or any float64 numpy
    callable) over ``domain``."""
    lo, hi = domain
    x = dense_grid(lo, hi, points)
    ae, re, mask = error_arrays(table, spec, x)
    uniform = np.linspace(lo, hi, points)
    ae_u, re_u, mask_u = error_arrays(table, spec, uniform)
    return {
        "domain": [lo, hi],
        "points": int(len(x)),
        "max_abs": float(np.max(ae)),
        "mean_abs": float(np.mean(ae_u)),
        "max_rel": float(np.max(re[mask])) if mask.any() else float("nan"),
        "mean_rel": float(np.mean(re_u[mask_u])) if mask_u.any() else float("nan"),
        "argmax_abs": float(x[int(np.argmax(ae))]),
    }
