"""Quantisation-aware fitting: breakpoints on the input grid and integer slopes and intercepts
chosen together, minimising the max error over every input code.

Per segment (a run of consecutive input codes) the best integer line is found exactly: the
max error of the best real intercept is convex in the slope, so an integer search finds the
real-optimal slope and a scan outwards from it, stopped once that convex bound (less the
datapath's rounding slack) exceeds the best integer pair found, covers every slope that can
win; for each slope the intercepts around the real optimum are tried through the exact
integer datapath.

Breakpoints: with few input codes (INT8) the partition is optimal over every breakpoint
placement on the grid: the best max error is bisected and, for each candidate, a greedy pass
takes each segment as long as it can be (a segment's error only grows with its length, so
greedy needs the fewest segments). With many codes (INT16) the breakpoints start from a float
table's and each is moved, sweep after sweep, to where its two segments' errors balance.
Last, each segment's pair is re-chosen for the smallest mean error among those within the
table's max error, and breakpoint moves that lower the summed error without raising the max
are kept.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from .._errors import NNLUTError
from ._format import FixedFormat, accumulate

EXACT_CODES = 4096  # at most this many input codes: breakpoints optimal over the whole grid
# slopes tried on each side of the real optimum, at most: an unrounded datapath's stop rule is
# tight and stops within a few; a rounded one's is loose by the rounding (half an output LSB),
# which on short segments of a fine slope grid spans dozens of slopes of near-equal error
_SCAN = {"unrounded": 64, "rounded": 6}


@dataclass
class Problem:
    """Fit ``fx`` (float64, one per code) at integer input ``codes`` (int64, sorted) in ``fmt``;
    ``w``: per-code error weights (None: absolute error)."""

    fmt: FixedFormat
    codes: np.ndarray
    fx: np.ndarray
    w: np.ndarray | None = None
    _cache: dict[tuple[int, int], tuple[float, int, int]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        f = self.fmt
        self.xr = self.codes * 2.0**-f.in_frac
        self.out_lsb = 2.0**-f.out_frac
        # how far the integer datapath may sit from the real line s*x + t (output units)
        self.slack = 0.5 * self.out_lsb * (f.shift > 0) + 2.0**-f.a_frac * (f.pshift > 0)
        # intercepts to try around the real optimum: one output LSB of them when the output is rounded
        self.t_win = 1 + (2 ** max(f.shift - f.tshift, 0) if f.shift > 0 else 0) + (f.pshift > 0)
        self.srange = (-(2 ** (f.slope_bits - 1)), 2 ** (f.slope_bits - 1) - 1)
        self.trange = (-(2 ** (f.icpt_bits - 1)), 2 ** (f.icpt_bits - 1) - 1)
        self.wmax = 1.0 if self.w is None else float(np.max(self.w))
        self.scan = _SCAN["unrounded" if self.slack == 0 else "rounded"]

    # ------------------------------------------------------------------ one segment
    def _center(self, r: np.ndarray, w: np.ndarray | None) -> tuple[float, float]:
        """The real intercept minimising max w|r - b|, and that max."""
        if w is None:
            hi, lo = float(r.max()), float(r.min())
            return (hi + lo) / 2, (hi - lo) / 2
        # the crossing of the upper envelope max w(r - b) and the lower one max w(b - r): move
        # to the crossing of their lines active at b until b stays (a few steps)
        b = (float(r.min()) + float(r.max())) / 2
        for _ in range(50):
            i, j = int(np.argmax(w * (r - b))), int(np.argmax(w * (b - r)))
            nb = (w[i] * r[i] + w[j] * r[j]) / (w[i] + w[j])
            if nb == b:
                break
            b = nb
        return b, float(np.max(w * np.abs(r - b)))

    def _real(self, s: int, x: np.ndarray, y: np.ndarray, w: np.ndarray | None) -> tuple[float, float]:
        return self._center(y - s * 2.0**-self.fmt.slope_frac * x, w)

    def _values(self, s: np.ndarray, t: np.ndarray, xi: np.ndarray) -> np.ndarray:
        f = self.fmt
        acc = accumulate(f, s[:, None], xi[None, :], t[:, None])
        lo, hi = -(2 ** (f.out_bits - 1)), 2 ** (f.out_bits - 1) - 1
        return np.clip(acc, lo, hi) * self.out_lsb

    def _pairs(self, s: int, b: float) -> tuple[np.ndarray, np.ndarray]:
        t0 = int(round(b * 2.0**self.fmt.t_frac))
        ts = np.clip(np.arange(t0 - self.t_win, t0 + self.t_win + 1), *self.trange)
        return np.full(len(ts), s, dtype=np.int64), ts.astype(np.int64)

    def solve(self, i: int, j: int, bound: float | None = None,
              mean_within: float | None = None) -> tuple[float, int, int]:
        """Best integer (slope, intercept) for codes ``i..j-1``: (max error, s, t). With
        ``bound``: (inf, s, 0) as soon as no pair can be within it. With ``mean_within``: the
        pair of smallest mean error among those with max error <= it."""
        key = (i, j)
        if mean_within is None and key in self._cache:
            return self._cache[key]
        xi, y = self.codes[i:j], self.fx[i:j]
        x = self.xr[i:j]
        w = None if self.w is None else self.w[i:j]
        lo, hi = self.srange
        # integer slope minimising the convex real bound: binary search on its forward difference
        a, b = lo, hi
        while a < b:
            m = (a + b) // 2
            if self._real(m + 1, x, y, w)[1] < self._real(m, x, y, w)[1]:
                a = m + 1
            else:
                b = m
        if lo <= 0 <= hi and self._real(0, x, y, w)[1] <= self._real(a, x, y, w)[1]:
            a = 0  # a flat bound (a single code): start from slope 0
        best = (math.inf, a, 0)
        best_mean = math.inf
        slack = self.slack * (1.0 if w is None else self.wmax)
        if bound is not None and self._real(a, x, y, w)[1] - slack > bound:
            return best  # no pair can be within the bound (not cached: not the exact optimum)
        limit = mean_within
        for direction in (0, 1, -1):
            steps = range(1) if direction == 0 else range(1, self.scan + 1)
            for k in steps:
                s = a + direction * k
                if not lo <= s <= hi:
                    break
                center, e_real = self._real(s, x, y, w)
                if e_real - slack > (best[0] if limit is None else limit):
                    break
                ss, ts = self._pairs(s, center)
                err = np.abs(self._values(ss, ts, xi) - y[None, :])
                if w is not None:
                    err = err * w[None, :]
                mx = err.max(axis=1)
                if limit is None:
                    c = int(np.argmin(mx))
                    if mx[c] < best[0]:
                        best = (float(mx[c]), s, int(ts[c]))
                else:
                    mean = np.where(mx <= limit, err.mean(axis=1), math.inf)
                    c = int(np.argmin(mean))
                    if mean[c] < best_mean:
                        best_mean, best = float(mean[c]), (float(mx[c]), s, int(ts[c]))
        if mean_within is None:
            self._cache[key] = best
        return best

    # ------------------------------------------------------------------ partitions
    def greedy(self, n: int, eps: float) -> list[int] | None:
        """Segment starts of a partition into <= n segments each within ``eps``, or None."""
        m = len(self.codes)
        starts, i = [], 0
        while i < m:
            if len(starts) == n:
                return None
            starts.append(i)
            step, good = 1, i  # codes i..good-1 fit within eps
            while good + step <= m and self.solve(i, good + step, eps)[0] <= eps:
                good += step
                step *= 2
            bad = min(good + step, m + 1)
            while bad - good > 1:
                mid = (good + bad) // 2
                if self.solve(i, mid, eps)[0] <= eps:
                    good = mid
                else:
                    bad = mid
            if good == i:
                return None  # not even one code fits (the intercept's grid is too coarse)
            i = good
        return starts

    def errors(self, starts: list[int]) -> list[float]:
        ends = [*starts[1:], len(self.codes)]
        return [self.solve(a, b)[0] for a, b in zip(starts, ends, strict=True)]

    def optimal(self, n: int, rtol: float = 1e-4) -> list[int]:
        """The partition into <= n segments with the smallest max error (to ``rtol``)."""
        m = len(self.codes)
        starts = [int(round(k * m / n)) for k in range(min(n, m))]
        starts = sorted(set(starts))
        hi = max(self.errors(starts))
        best = starts
        lo = 0.0
        while hi - lo > rtol * max(hi, 1e-300) + 1e-15:
            mid = (lo + hi) / 2
            got = self.greedy(n, mid)
            if got is None:
                lo = mid
            else:
                best, hi = got, max(self.errors(got))
        return best

    def balance(self, starts: list[int], sweeps: int = 3) -> list[int]:
        """Move each interior breakpoint to where its two segments' max errors balance."""
        starts = list(starts)
        m = len(self.codes)
        for _ in range(sweeps):
            moved = False
            for k in range(1, len(starts)):
                a = starts[k - 1]
                b = starts[k + 1] if k + 1 < len(starts) else m
                lo, hi = a + 1, b - 1  # the breakpoint leaves each side at least one code
                while lo < hi:  # smallest split where the left error reaches the right one
                    mid = (lo + hi) // 2
                    if self.solve(a, mid)[0] >= self.solve(mid, b)[0]:
                        hi = mid
                    else:
                        lo = mid + 1
                cands = [c for c in (lo - 1, lo) if a < c < b]
                c = min(cands, key=lambda c: max(self.solve(a, c)[0], self.solve(c, b)[0]))
                if c != starts[k]:
                    starts[k], moved = c, True
            if not moved:
                break
        return starts

    def polish(self, starts: list[int]) -> tuple[list[int], list[tuple[float, int, int]]]:
        """Lower the summed error without raising the max: per-segment mean-optimal pairs and
        breakpoint moves of up to 8 codes."""
        m = len(self.codes)
        cap = max(self.errors(starts))

        def seg(a: int, b: int) -> tuple[float, float, int, int]:
            mx, s, t = self.solve(a, b, mean_within=cap)
            if mx > cap:
                return math.inf, mx, s, t
            y = self._values(np.array([s]), np.array([t]), self.codes[a:b])[0]
            err = np.abs(y - self.fx[a:b]) * (1.0 if self.w is None else self.w[a:b])
            return float(err.sum()), mx, s, t

        starts = list(starts)
        for k in range(1, len(starts)):
            a, b = starts[k - 1], (starts[k + 1] if k + 1 < len(starts) else m)
            best = (seg(a, starts[k])[0] + seg(starts[k], b)[0], starts[k])
            for d in (-8, -4, -2, -1, 1, 2, 4, 8):
                c = starts[k] + d
                if a < c < b:
                    tot = seg(a, c)[0] + seg(c, b)[0]
                    if tot < best[0]:
                        best = (tot, c)
            starts[k] = best[1]
        ends = [*starts[1:], m]
        pairs = []
        for a, b in zip(starts, ends, strict=True):
            _, mx, s, t = seg(a, b)
            pairs.append((mx, s, t) if math.isfinite(mx) else self.solve(a, b))
        return starts, pairs


def fit_codes(prob: Problem, entries: int, init_breakpoints: np.ndarray | None = None,
              progress: Callable[[str], None] | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Integer breakpoints (N-1 codes), slopes and intercepts (N each) for ``prob``."""
    if isinstance(entries, bool) or not isinstance(entries, int) or entries < 1:
        raise NNLUTError(f"entries must be a positive integer, got {entries!r}")
    m = len(prob.codes)
    if m < 2:
        raise NNLUTError(f"the input range holds {m} code(s) in this format; at least 2 are needed")
    if m <= EXACT_CODES or init_breakpoints is None:
        starts = prob.optimal(entries)
    else:
        idx = np.searchsorted(prob.codes, np.ceil(np.asarray(init_breakpoints) * 2.0**prob.fmt.in_frac))
        starts = sorted({0, *(int(i) for i in idx if 0 < i < m)})
        starts = prob.balance(starts)
    while len(starts) < min(entries, m):  # entries to spare: halve the longest segment (no error grows)
        ends = [*starts[1:], m]
        k = max(range(len(starts)), key=lambda k: ends[k] - starts[k])
        starts = sorted([*starts, (starts[k] + ends[k]) // 2])
    if m <= EXACT_CODES:
        starts, pairs = prob.polish(starts)
    else:
        pairs = [prob.solve(a, b) for a, b in zip(starts, [*starts[1:], m], strict=True)]
    bp = [int(prob.codes[i]) for i in starts[1:]]
    s = [p[1] for p in pairs]
    t = [p[2] for p in pairs]
    # unused entries (fewer segments were needed) repeat the last segment past the last code
    top = int(prob.codes[-1])
    for k in range(min(entries - len(s), prob.fmt.codes[1] - top)):
        bp.append(top + 1 + k)
        s.append(s[-1])
        t.append(t[-1])
    return np.array(bp, dtype=np.int64), np.array(s, dtype=np.int64), np.array(t, dtype=np.int64)
