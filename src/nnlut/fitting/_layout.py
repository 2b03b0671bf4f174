"""How the node values of a continuous piecewise-linear function are tied by its tails.

A continuous N-segment function on ``[lo, hi]`` is given by nodes ``x_0 = lo < x_1 < ... <
x_N = hi`` (``x_1..x_{N-1}`` are the table's breakpoints) and values ``v_0..v_N``. Tail
constraints tie some values: an ``asymptote`` tail fixes both values of its end segment to
the asymptote line, a ``flat`` tail makes them equal. :class:`Layout` maps the free values
``vf`` to all values: ``v = M @ vf + c(nodes)``.
"""

from __future__ import annotations

import numpy as np

from ..core._functions import Tail


class Layout:
    def __init__(self, entries: int, tails: tuple[Tail, Tail]) -> None:
        self.N = entries
        left, right = tails
        n_nodes = entries + 1
        source: list[tuple[str, object]] = [("free", None)] * n_nodes
        if left.kind == "asymptote":
            source[0] = source[1] = ("line", left)
        if right.kind == "asymptote":
            # with 2 entries the middle node belongs to both end segments; it keeps the left
            # line and the fit puts it where the two asymptotes meet
            source[n_nodes - 1] = ("line", right)
            if source[n_nodes - 2][0] != "line":
                source[n_nodes - 2] = ("line", right)
        if left.kind == "flat" and source[0][0] == "free":
            source[0] = ("alias", 1)
        if right.kind == "flat" and source[n_nodes - 1][0] == "free":
            source[n_nodes - 1] = ("alias", n_nodes - 2)
        free_index = {}
        for k, (kind, _) in enumerate(source):
            if kind == "free":
                free_index[k] = len(free_index)
        self.source = source
        self.free_index = free_index
        self.n_free = len(free_index)

    def _resolve(self, k: int) -> tuple[str, object]:
        kind, arg = self.source[k]
        if kind == "alias":
            return self._resolve(int(arg))  # type: ignore[arg-type]
        return kind, (self.free_index[k] if kind == "free" else arg)

    def matrix(self, nodes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(M, c, dc) with ``v = M @ vf + c`` and ``dc[k] = d c_k / d x_k``."""
        n_nodes = self.N + 1
        M = np.zeros((n_nodes, self.n_free))
        c = np.zeros(n_nodes)
        dc = np.zeros(n_nodes)
        for k in range(n_nodes):
            kind, arg = self._resolve(k)
            if kind == "free":
                M[k, arg] = 1.0  # type: ignore[index]
            else:
                tail: Tail = arg  # type: ignore[assignment]
                own = self.source[k][0] == "line"
                x = nodes[k] if own else nodes[int(self.source[k][1])]  # type: ignore[arg-type]
                c[k] = tail.slope * x + tail.intercept
                dc[k] = tail.slope if own else 0.0
        return M, c, dc

    def free_from_values(self, v: np.ndarray) -> np.ndarray:
        vf = np.zeros(self.n_free)
        for k, i in self.free_index.items():
            vf[i] = v[k]
        return vf
