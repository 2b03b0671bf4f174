"""GQA-LUT (DAC 2024): its genetic breakpoint search, written here from the paper's
description, and its published INT8 tables, read as data.

The search: a population of breakpoint vectors inside the breakpoint range evolves by
tournament selection, crossover, Gaussian mutation and GQA-LUT's *rounding mutation* (a
breakpoint snapped to the input grid ``2**-P``, the quantisation-aware step that keeps the
table right once the input is INT8 at that scale); the best few are kept each generation. An
individual's slopes and intercepts are each segment's least-squares line over the samples of
the fitting range in it (an empty segment takes its neighbour's), rounded to GQA-LUT's 8-bit
parameters with 6 fractional bits; its fitness is the mean squared error over those samples of the rounded table. The ranges, the
500 generations and the 6 fractional bits are GQA-LUT's published settings; sigmoid and tanh
(not among them) use nnlut's default domain.

The published tables (``pretrained/*.json`` in github.com/PingchengDong/GQA-LUT, commit
a5be4ea): GELU and exp with 8 and 16 segments, one table per input scale ``2**-P``; the rows
for the INT8 scale nnlut uses for those functions (P = 4: inputs [-8, 7.9375]) are below.
Equal breakpoints (the published exp tables have them) leave empty segments; they are merged.
"""

from __future__ import annotations

import numpy as np

import nnlut
from nnlut.fixed import FixedTable, gqa_format

GQA_FRAC = 6  # GQA-LUT's slopes and intercepts: 6 fractional bits

# function -> (fitting range, breakpoint range) per segment count, GQA-LUT's published settings
RANGES: dict[str, dict[int, tuple[tuple[float, float], tuple[float, float]]]] = {
    "gelu": {0: ((-4.0, 4.0), (-4.0, 4.0))},
    "silu": {0: ((-4.0, 4.0), (-4.0, 4.0))},
    "exp": {0: ((-8.0, 0.0), (-8.0, 0.0)), 16: ((-8.0, 0.0), (-6.5, 0.0))},
    "reciprocal": {0: ((0.5, 4.0), (0.625, 3.875))},
    "rsqrt": {0: ((0.25, 4.0), (0.25, 3.875))},
}


def ranges(name: str, entries: int) -> tuple[tuple[float, float], tuple[float, float]]:
    """(fitting range, breakpoint range) for ``name`` at ``entries`` segments."""
    by_n = RANGES.get(name)
    if by_n is None:
        dom = nnlut.get_function(name).domain
        return dom, dom
    return by_n.get(entries, by_n[0])


def _params(bp: np.ndarray, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each segment's least-squares line over the samples in it, rounded to 2**-6."""
    n = len(bp) + 1
    seg = np.searchsorted(bp, x, side="right")
    cnt = np.bincount(seg, minlength=n).astype(np.float64)
    sx = np.bincount(seg, x, n)
    sy = np.bincount(seg, y, n)
    sxx = np.bincount(seg, x * x, n)
    sxy = np.bincount(seg, x * y, n)
    den = cnt * sxx - sx * sx
    with np.errstate(all="ignore"):
        s = np.where(den > 1e-12 * np.maximum(cnt * sxx, 1e-300), (cnt * sxy - sx * sy) / den, 0.0)
        t = np.where(cnt > 0, (sy - s * sx) / np.maximum(cnt, 1), 0.0)
    # an empty segment (no sample falls in it) takes the line of the nearest segment with samples
    full = np.flatnonzero(cnt > 0)
    if 0 < len(full) < n:
        near = full[np.clip(np.searchsorted(full, np.arange(n)), 0, len(full) - 1)]
        s, t = s[near], t[near]
    q = 2.0**GQA_FRAC
    s = np.clip(np.round(s * q), -128, 127) / q
    t = np.clip(np.round(t * q), -128, 127) / q
    return s, t


def _mse(bp: np.ndarray, x: np.ndarray, y: np.ndarray) -> float:
    s, t = _params(bp, x, y)
    seg = np.searchsorted(bp, x, side="right")
    return float(np.mean((s[seg] * x + t[seg] - y) ** 2))


def gqa_search(name: str, entries: int, p: int, *, generations: int = 500, population: int = 40,
               seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The genetic search; returns (breakpoints, slopes, intercepts) in real units, breakpoints
    on the 2**-p grid (duplicates possible), parameters on the 2**-6 grid."""
    spec = nnlut.get_function(name)
    (xlo, xhi), (blo, bhi) = ranges(name, entries)
    rng = np.random.default_rng(seed)
    grid = 2.0**-p
    x = np.arange(np.ceil(xlo / grid), np.floor(xhi / grid) + 1) * grid  # the INT8 inputs of the range
    if len(x) < 64:  # a coarse grid: score between the codes too
        x = np.linspace(xlo, xhi, 1024)
    y = spec(x)
    k = entries - 1
    pop = np.sort(rng.uniform(blo, bhi, (population, k)), axis=1)
    pop[0] = np.linspace(blo, bhi, k + 2)[1:-1]  # one evenly spaced individual
    fit = np.array([_mse(b, x, y) for b in pop])
    sigma0 = 0.1 * (bhi - blo)
    for g in range(generations):
        sigma = sigma0 * (1.0 - g / generations) + grid / 4
        order = np.argsort(fit)
        elite = pop[order[:2]]
        children = [elite[0], elite[1]]
        while len(children) < population:
            a, b = (pop[min(rng.integers(0, population, 3), key=lambda i: fit[i])] for _ in range(2))
            mask = rng.random(k) < 0.5
            c = np.where(mask, a, b)
            mut = rng.random(k) < 0.2
            c = c + mut * rng.normal(0.0, sigma, k)
            snap = rng.random(k) < 0.3  # rounding mutation
            c = np.where(snap, np.round(c / grid) * grid, c)
            children.append(np.sort(np.clip(c, blo, bhi)))
        pop = np.array(children)
        fit = np.array([_mse(b, x, y) for b in pop])
    best = np.round(pop[int(np.argmin(fit))] / grid) * grid
    s, t = _params(best, x, y)
    return best, s, t


def merge_equal(bp: np.ndarray, s: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Equal breakpoints merged; the segment right of the last copy is the one evaluated."""
    bp = np.asarray(bp, dtype=np.float64)
    last = np.append(np.diff(bp) > 0, True)
    keep = np.concatenate([[0], 1 + np.flatnonzero(last)])
    return bp[last], np.asarray(s)[keep], np.asarray(t)[keep]


def as_table(name: str, bp: np.ndarray, s: np.ndarray, t: np.ndarray, meta: dict) -> nnlut.Table:
    """The real-valued table (duplicate breakpoints merged, end segments continuing)."""
    bp, s, t = merge_equal(bp, s, t)
    return nnlut.Table(bp, s, t, domain=nnlut.get_function(name).domain, function=name, meta=meta)


def as_int8(name: str, table: nnlut.Table, p: int) -> FixedTable:
    """``table`` (breakpoints on 2**-p, parameters on 2**-6) in GQA-LUT's INT8 datapath, exactly."""
    fmt = gqa_format(p)
    codes = np.round(np.asarray(table.breakpoints) * 2**p).astype(np.int64)
    codes, s, t = merge_equal(codes.astype(np.float64), table.slopes, table.intercepts)
    ok = (codes >= -128) & (codes <= 127)  # breakpoints beyond the INT8 codes never switch
    lo_cut = int(np.sum(codes < -128))
    keep_seg = np.concatenate([[lo_cut], 1 + np.flatnonzero(ok)])
    return FixedTable(fmt, codes[ok].astype(np.int64), np.round(s[keep_seg] * 2**GQA_FRAC).astype(np.int64),
                      np.round(t[keep_seg] * 2**GQA_FRAC).astype(np.int64), function=name,
                      limits=nnlut.get_function(name).limits or (np.nan, np.nan), meta=dict(table.meta))


# GQA-LUT's published tables at P = 4 (breakpoints, slopes, intercepts; real units)
PUBLISHED_P = 4
PUBLISHED: dict[tuple[str, int], tuple[list[float], list[float], list[float]]] = {
    ("gelu", 8): ([-3.0, -2.1875, -0.875, -0.4375, 0.0625, 0.625, 2.8125],
                  [-0.0, -0.03125, -0.109375, 0.046875, 0.359375, 0.75, 1.078125, 1.0],
                  [-0.0, -0.09375, -0.265625, -0.125, 0.0, -0.015625, -0.21875, -0.0]),
    ("gelu", 16): ([-4.0, -3.375, -3.3125, -2.1875, -0.875, -0.5, -0.125, 0.0, 0.1875, 0.5, 1.0, 1.8125, 2.4375,
                    2.4375, 3.6875],
                   [-0.0, -0.0, -0.0, -0.03125, -0.109375, 0.03125, 0.265625, 0.453125, 0.578125, 0.78125, 0.984375,
                    1.109375, 1.078125, 1.046875, 1.015625, 1.0],
                   [-0.0, -0.0, -0.015625, -0.09375, -0.265625, -0.140625, -0.03125, 0.0, 0.0, -0.046875, -0.15625,
                    -0.265625, -0.203125, -0.125, -0.046875, -0.0]),
    ("exp", 8): ([-5.25, -3.4375, -2.3125, -2.0, -1.25, -0.6875, -0.3125],
                 [0.0, 0.015625, 0.0625, 0.109375, 0.203125, 0.390625, 0.625, 0.875],
                 [0.0, 0.078125, 0.234375, 0.359375, 0.53125, 0.765625, 0.921875, 1.0]),
    ("exp", 16): ([-5.8125, -5.75, -5.6875, -5.6875, -5.625, -3.5, -3.375, -2.375, -1.625, -1.25, -1.1875, -0.8125,
                   -0.375, -0.3125, -0.0625],
                  [0.0, 0.0, 0.0, 0.0, 0.0, 0.015625, 0.03125, 0.0625, 0.140625, 0.234375, 0.296875, 0.375, 0.5625,
                   0.703125, 0.8125, 0.953125],
                  [0.0, 0.015625, 0.015625, 0.0, 0.015625, 0.078125, 0.140625, 0.234375, 0.421875, 0.578125, 0.65625,
                   0.75, 0.890625, 0.953125, 0.984375, 1.0]),
}
