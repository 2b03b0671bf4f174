"""NLI's cut-point placement (Non-uniform Linear Interpolation, ICLR 2026), written here from
the paper's description.

NLI stores the function's exact values at K cut-points and interpolates linearly between
neighbours; the cut-points are FP16 values, chosen by dynamic programming to minimise the mean
relative error ``|t - f| / max(|f|, 2**-14)`` over every FP16 input (Bellman's principle: the
best placement of m segments ending at a cut-point extends a best placement of m-1 segments
ending at an earlier one, O(M x C^2) for M segments over C candidates).

The flat layout here has N segments (the same number of entries as an N-entry nnlut table), so
N+1 cut-points: the first and last are the ends of the input set (every finite FP16 input whose
exact value is finite in FP16, so +-65504 for most functions) and N-1 are chosen. Outside the
end cut-points the output is held (only +-inf get there). The result is an nnlut
:class:`~nnlut.Table` with ``clamp`` tails on that domain, so nnlut's quantisers and error
measures apply to it unchanged.

Coarsening, to keep a run to seconds (the paper's DP runs over the whole grid): the candidates
are ``candidates`` FP16 inputs evenly spaced in FP16 order (a log-like spacing in magnitude)
and the DP scores each candidate segment on every ``stride``-th FP16 input; the finished table
is scored on every FP16 input by the caller.
"""

from __future__ import annotations

import numpy as np

import nnlut
from nnlut.fitting._full import REL_FLOOR, fp16_inputs

FP16_MAX = 65504.0


def counted_inputs(name: str) -> tuple[np.ndarray, np.ndarray]:
    """The sorted distinct FP16 inputs of ``name`` whose exact value is finite in FP16, and
    those values (the inputs :func:`nnlut.full_domain_errors` counts)."""
    spec = nnlut.get_function(name)
    lo, hi = spec.inputs
    x = np.unique(fp16_inputs())  # -0 and +0 merge
    x = x[(x >= lo) & (x <= hi)]
    with np.errstate(all="ignore"):
        f = spec(x)
    ok = np.isfinite(f) & (np.abs(f) <= FP16_MAX)
    return x[ok], f[ok]


def _segment_costs(x: np.ndarray, f: np.ndarray, w: np.ndarray, cand: np.ndarray) -> np.ndarray:
    """cost[i, j]: summed weighted |chord - f| over the scoring points strictly between
    candidates i < j (the chord through (x[cand[i]], f[cand[i]]) and (x[cand[j]], f[cand[j]]))."""
    c = len(cand)
    cost = np.full((c, c), np.inf)
    for i in range(c - 1):
        a = cand[i]
        xa, fa = x[a], f[a]
        b_all = cand[i + 1:]
        seg_x, seg_f, seg_w = x[a:b_all[-1] + 1], f[a:b_all[-1] + 1], w[a:b_all[-1] + 1]
        for k, b in enumerate(b_all):
            n = b - a + 1
            slope = (f[b] - fa) / (x[b] - xa)
            cost[i, i + 1 + k] = float(np.sum(np.abs(fa + slope * (seg_x[:n] - xa) - seg_f[:n]) * seg_w[:n]))
    return cost


def nli_cutpoints(name: str, segments: int, candidates: int = 384, stride: int = 8) -> np.ndarray:
    """The ``segments + 1`` cut-points (FP16 values) minimising the summed relative error."""
    x, f = counted_inputs(name)
    keep = np.unique(np.concatenate([np.arange(0, len(x), stride), [len(x) - 1]]))
    xs, fs = x[keep], f[keep]
    ws = 1.0 / np.maximum(np.abs(fs), REL_FLOOR)
    c = max(min(candidates, len(xs)), segments + 1)
    cand = np.unique(np.round(np.linspace(0, len(xs) - 1, c)).astype(np.int64))
    if len(cand) < segments + 1:
        raise ValueError(f"{name}: {len(cand)} candidates cannot hold {segments} segments")
    path = best_path(_segment_costs(xs, fs, ws, cand), segments)
    return xs[cand[path]]


def best_path(cost: np.ndarray, segments: int) -> np.ndarray:
    """The indices 0 = p_0 < p_1 < ... < p_segments = C-1 minimising sum cost[p_k, p_k+1]
    (``cost[i, j]`` finite for i < j): the dynamic programme over segment counts."""
    c = len(cost)
    best = np.full(c, np.inf)
    best[0] = 0.0
    back = np.zeros((segments + 1, c), dtype=np.int64)
    for m in range(1, segments + 1):
        total = best[:, None] + cost  # total[i, j]: m-1 segments to i, one more to j
        back[m] = np.argmin(total, axis=0)
        best = total[back[m], np.arange(c)]
    path = [c - 1]
    for m in range(segments, 0, -1):
        path.append(int(back[m, path[-1]]))
    return np.array(path[::-1])


def nli_table(name: str, entries: int, candidates: int = 384, stride: int = 8) -> nnlut.Table:
    """NLI's flat layout as an ``entries``-entry nnlut table (see the module docstring)."""
    spec = nnlut.get_function(name)
    cut = nli_cutpoints(name, entries, candidates, stride)
    with np.errstate(all="ignore"):
        v = spec(cut)
    slopes = np.diff(v) / np.diff(cut)
    intercepts = v[:-1] - slopes * cut[:-1]
    return nnlut.Table(cut[1:-1], slopes, intercepts, domain=(float(cut[0]), float(cut[-1])),
                       tails=("clamp", "clamp"), function=spec.name,
                       meta={"method": "nli", "candidates": candidates, "stride": stride})
