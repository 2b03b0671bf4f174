"""Exact conversion between one-hidden-layer ReLU networks and piecewise-linear tables.

``NN(x) = sum_j m_j * relu(n_j * x + b_j) + skip * x + bias``. Neuron j switches at
``d_j = -b_j / n_j``; a neuron with ``n_j > 0`` is active right of ``d_j``, one with
``n_j < 0`` left of it. Sorting the ``d_j`` gives the breakpoints; the slope and intercept of
each segment are a prefix sum over right-active neurons plus a suffix sum over left-active
ones. ``skip`` (a linear skip connection, 0 in NN-LUT's paper form) lets any continuous
N-entry table be written with N-1 neurons; tables whose left (right) end segment is flat
need no skip term and use right-active (left-active) neurons only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from .._errors import NNLUTError

if TYPE_CHECKING:
    from ._table import Table


@dataclass(frozen=True)
class ReluNetwork:
    """A one-hidden-layer ReLU network with a scalar input and output (see module docstring).

    Args:
        n: (H,) input weights.  b: (H,) hidden biases.  m: (H,) output weights.
        bias: output bias.  skip: weight of the linear skip connection (0 = paper form).
    """

    n: np.ndarray
    b: np.ndarray
    m: np.ndarray
    bias: float = 0.0
    skip: float = 0.0

    def __post_init__(self) -> None:
        arrs = []
        for name in ("n", "b", "m"):
            a = np.array(getattr(self, name), dtype=np.float64).reshape(-1)
            if not np.all(np.isfinite(a)):
                raise NNLUTError(f"network parameter {name!r} must be finite")
            arrs.append(a)
            object.__setattr__(self, name, a)
        if not (len(arrs[0]) == len(arrs[1]) == len(arrs[2])):
            raise NNLUTError(f"network parameters n, b, m must have equal lengths, got {[len(a) for a in arrs]}")
        object.__setattr__(self, "bias", float(self.bias))
        object.__setattr__(self, "skip", float(self.skip))

    @property
    def hidden(self) -> int:
        return len(self.n)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """Evaluate in float64 (numpy)."""
        x = np.asarray(x, dtype=np.float64)
        z = np.maximum(np.multiply.outer(x, self.n) + self.b, 0.0)
        return z @ self.m + self.skip * x + self.bias

    def to_table_arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Exact (breakpoints, slopes, intercepts). Neurons with n == 0 fold into the bias;
        neurons sharing a switch point share a breakpoint."""
        const = self.bias + float(np.sum(self.m[self.n == 0] * np.maximum(self.b[self.n == 0], 0.0)))
        skip = self.skip
        with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
            d_all = -self.b / self.n
        # a switch point beyond the float range (|n| tiny): the neuron is linear over every
        # finite input, always on (its term joins the skip line) or always off (dropped)
        far = (self.n != 0) & ~np.isfinite(d_all)
        on = far & ((self.n > 0) == (d_all < 0))
        skip += float(np.sum(self.m[on] * self.n[on]))
        const += float(np.sum(self.m[on] * self.b[on]))
        live = (self.n != 0) & ~far
        n, b, m, d = self.n[live], self.b[live], self.m[live], d_all[live]
        order = np.argsort(d, kind="stable")
        n, b, m, d = n[order], b[order], m[order], d[order]
        bps, first = np.unique(d, return_index=True)
        k = len(bps)
        # contribution of each neuron to slope/intercept when active
        ms, mb = m * n, m * b
        pos, neg = n > 0, n < 0
        group = np.searchsorted(bps, d)  # index of each neuron's breakpoint
        pos_s = np.bincount(group, weights=np.where(pos, ms, 0.0), minlength=k)
        pos_t = np.bincount(group, weights=np.where(pos, mb, 0.0), minlength=k)
        neg_s = np.bincount(group, weights=np.where(neg, ms, 0.0), minlength=k)
        neg_t = np.bincount(group, weights=np.where(neg, mb, 0.0), minlength=k)
        # segment i (0..k): right-active neurons with breakpoint index < i, left-active with index >= i
        slopes = np.concatenate([[0.0], np.cumsum(pos_s)]) + np.concatenate([np.cumsum(neg_s[::-1])[::-1], [0.0]])
        intercepts = np.concatenate([[0.0], np.cumsum(pos_t)]) + np.concatenate([np.cumsum(neg_t[::-1])[::-1], [0.0]])
        return bps, slopes + skip, intercepts + const

    @classmethod
    def from_table(cls, table: Table, *, rtol: float = 1e-9) -> ReluNetwork:
        """The network of ``table`` with one unit-weight neuron per breakpoint."""
        if not table.is_continuous(rtol):
            raise NNLUTError("only a continuous table is a ReLU network; this table jumps at a breakpoint")
        d, s, t = table.breakpoints, table.slopes, table.intercepts
        delta = np.diff(s)
        if s[0] == 0.0 or s[-1] != 0.0:
            # right-active neurons: f = s0 x + t0 + sum delta_j relu(x - d_j)
            return cls(n=np.ones_like(d), b=-d, m=delta, bias=float(t[0]), skip=float(s[0]))
        # left-active neurons: f = s_last x + t_last + sum delta_j relu(d_j - x)
        return cls(n=-np.ones_like(d), b=d.copy(), m=delta, bias=float(t[-1]), skip=float(s[-1]))

    def to_dict(self) -> dict[str, Any]:
        return {"n": self.n.tolist(), "b": self.b.tolist(), "m": self.m.tolist(), "bias": self.bias, "skip": self.skip}

    @classmethod
    def from_dict(cls, d: Any) -> ReluNetwork:
        if not isinstance(d, dict) or not {"n", "b", "m"} <= set(d):
            raise NNLUTError("'network' must be an object with lists 'n', 'b', 'm'")
        return cls(d["n"], d["b"], d["m"], d.get("bias", 0.0), d.get("skip", 0.0))
