"""nnlut's tables against the continuous limit: for each built-in function and entry count N,
the table's full-domain max error over every finite FP16 input (absolute; relative for 1/x
and 1/sqrt x, which are fitted with range reduction) divided by that of the best continuous
N-piece approximation with the same tails, found here by an optimiser of its own.

The reference has the table's structure: asymptote tails are the asymptote lines and count as
entries, clamped tails hold a constant beyond the inner region (free value, no entry), an end of
the function's input set (exp at 0, one period of a range-reduced table) is a fixed end. Inside,
a continuous piecewise-linear function on knots a = k_0 < ... < k_m = b. For fixed knots the
best node values are a linear programme (minimax over the FP16 inputs, a working set of points
refined by exchange: the worst inputs of each segment are added until none is violated); the
knots, and where the inner region ends, are moved by error equidistribution (each segment's
error density sqrt(e_k) / h_k spread evenly, each end moved to where the tail's own error meets
the inner level), the best of ``--iterations`` rounds kept. Any feasible reference only bounds
the optimum from above, so a ratio below 1 means the reference is the weaker, not the table.

The issue's figure: ratio <= 1.1 at every N from 4 to 64, and the table's error falling with N.

Example (about three minutes on two cores)::

    python benchmarks/limit.py --functions sigmoid tanh exp --entries 4 8 16 32 64
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy.optimize import linprog
from scipy.sparse import csr_matrix

sys.path.insert(0, str(Path(__file__).resolve().parent))

import nnlut  # noqa: E402
from nnlut.fitting._full import REL_FLOOR, fp16_inputs  # noqa: E402

SCALED = ("reciprocal", "rsqrt")
ENTRIES = (4, 5, 6, 8, 10, 12, 16, 20, 24, 32, 40, 48, 64)


@dataclass
class Problem:
    x: np.ndarray  # every counted FP16 input, sorted
    f: np.ndarray
    w: np.ndarray  # error weight: 1 (absolute) or 1 / max(|f|, 2**-14) (relative)
    left: tuple  # ("asym", slope, intercept) | ("const",) | ("fixed", x0)
    right: tuple
    inner: int  # inner segments


def problem(name: str, table: Any, entries: int) -> Problem:
    """The reference's structure and points for ``table`` (see the module docstring)."""
    spec = nnlut.get_function(name)
    lo, hi = spec.inputs
    x = np.unique(fp16_inputs())
    if table.scaling is not None:
        lo, hi = table.domain
    x = x[(x >= lo) & (x <= hi)]
    with np.errstate(all="ignore"):
        f = spec(x)
    ok = np.isfinite(f) & (np.abs(f) <= 65504.0)
    x, f = x[ok], f[ok]
    rel = name in SCALED
    w = 1.0 / np.maximum(np.abs(f), REL_FLOOR) if rel else np.ones_like(f)
    ends = []
    for side in (0, 1):
        if table.scaling is not None or math.isfinite((lo, hi)[side]):
            ends.append(("fixed", float(x[0] if side == 0 else x[-1])))
        elif table.tails[side] == "clamp":
            ends.append(("const",))
        else:
            tail = spec.tails[side]
            ends.append(("asym", float(tail.slope), float(tail.intercept)))
    inner = entries - sum(e[0] == "asym" for e in ends)
    return Problem(x, f, w, ends[0], ends[1], inner)


def _tail_error(p: Problem, a: float, side: int, v: float | None = None) -> float:
    """Max weighted error beyond end ``a`` on ``side`` (0 left, 1 right)."""
    end = (p.left, p.right)[side]
    sel = p.x < a if side == 0 else p.x > a
    if end[0] == "fixed" or not sel.any():
        return 0.0
    if end[0] == "asym":
        return float(np.max(np.abs(end[1] * p.x[sel] + end[2] - p.f[sel]) * p.w[sel]))
    return float(np.max(np.abs(v - p.f[sel]) * p.w[sel]))


def solve_values(p: Problem, knots: np.ndarray, work: np.ndarray) -> tuple[np.ndarray, float]:
    """Minimax node values for ``knots`` over the points ``work`` (indices into p.x) inside."""
    m = len(knots) - 1
    xs, fs, ws = p.x[work], p.f[work], p.w[work]
    seg = np.clip(np.searchsorted(knots, xs, side="right") - 1, 0, m - 1)
    lam = (xs - knots[seg]) / (knots[seg + 1] - knots[seg])
    rows = np.repeat(np.arange(len(xs)), 2)
    cols = np.stack([seg, seg + 1], 1).ravel()
    vals = np.stack([(1 - lam) * ws, lam * ws], 1).ravel()
    a = csr_matrix((vals, (rows, cols)), shape=(len(xs), m + 2))
    a_e = csr_matrix((np.ones(len(xs)), (np.arange(len(xs)), np.full(len(xs), m + 1))), shape=(len(xs), m + 2))
    rows_ub = [a - a_e, -a - a_e]
    b_ub = [fs * ws, -fs * ws]
    bounds: list[tuple[float | None, float | None]] = [(None, None)] * (m + 1) + [(0.0, None)]
    lower_e = 0.0
    for side, end in ((0, p.left), (1, p.right)):
        k = knots[0] if side == 0 else knots[-1]
        j = 0 if side == 0 else m
        if end[0] == "asym":
            val = end[1] * k + end[2]
            bounds[j] = (val, val)
            lower_e = max(lower_e, _tail_error(p, k, side))
        elif end[0] == "const":
            sel = p.x < k if side == 0 else p.x > k
            if sel.any():
                fmax, fmin = float(p.f[sel].max()), float(p.f[sel].min())
                r1 = np.zeros(m + 2)
                r1[j], r1[m + 1] = 1.0, -1.0
                r2 = np.zeros(m + 2)
                r2[j], r2[m + 1] = -1.0, -1.0
                rows_ub.append(csr_matrix(np.stack([r1, r2])))
                b_ub.append(np.array([fmin, -fmax]))
    bounds[m + 1] = (lower_e, None)
    from scipy.sparse import vstack

    c = np.zeros(m + 2)
    c[m + 1] = 1.0
    res = linprog(c, A_ub=vstack(rows_ub).tocsr(), b_ub=np.concatenate(b_ub), bounds=bounds, method="highs")
    if res.status != 0:
        raise RuntimeError(f"linear programme failed: {res.message}")
    return res.x[:m + 1], float(res.x[m + 1])


def evaluate(p: Problem, knots: np.ndarray, v: np.ndarray) -> tuple[float, np.ndarray]:
    """(max weighted error over every input, per inner segment max error)."""
    inside = (p.x >= knots[0]) & (p.x <= knots[-1])
    err = np.abs(np.interp(p.x[inside], knots, v) - p.f[inside]) * p.w[inside]
    seg = np.clip(np.searchsorted(knots, p.x[inside], side="right") - 1, 0, len(knots) - 2)
    per = np.zeros(len(knots) - 1)
    np.maximum.at(per, seg, err)
    tails = [_tail_error(p, knots[0], 0, v[0]), _tail_error(p, knots[-1], 1, v[-1])]
    return float(max(err.max(initial=0.0), *tails)), per


def _work_set(p: Problem, knots: np.ndarray, per_segment: int = 24) -> np.ndarray:
    lo, hi = np.searchsorted(p.x, [knots[0], knots[-1]])
    idx = np.searchsorted(p.x, knots)
    pts = [np.clip(idx, lo, max(hi - 1, lo))]
    for a, b in zip(idx[:-1], idx[1:], strict=True):
        if b > a:
            pts.append(np.unique(np.linspace(a, b - 1, min(per_segment, b - a)).astype(np.int64)))
    return np.unique(np.concatenate(pts))


def best_values(p: Problem, knots: np.ndarray) -> tuple[np.ndarray, float]:
    """Node values minimising the max error over every input, by exchange."""
    work = _work_set(p, knots)
    for _ in range(8):
        v, _e = solve_values(p, knots, work)
        inside = np.flatnonzero((p.x >= knots[0]) & (p.x <= knots[-1]))
        err = np.abs(np.interp(p.x[inside], knots, v) - p.f[inside]) * p.w[inside]
        total, _ = evaluate(p, knots, v)
        if err.size == 0 or err.max() <= _e * (1 + 1e-9) + 1e-15:
            return v, total
        seg = np.clip(np.searchsorted(knots, p.x[inside], side="right") - 1, 0, len(knots) - 2)
        worst = []
        for k in np.unique(seg[err > _e]):
            sel = np.flatnonzero(seg == k)
            worst.append(inside[sel[np.argmax(err[sel])]])
        work = np.union1d(work, worst)
    return v, total


def chord_errors(p: Problem, knots: np.ndarray) -> np.ndarray:
    """Each inner segment's own error: half the max weighted gap between f and its chord (the
    error of the best line through a convex or concave piece), over the inputs in it."""
    lo, hi = np.searchsorted(p.x, [knots[0], knots[-1]], side="left")[0], np.searchsorted(p.x, knots[-1], "right")
    xs, fs, ws = p.x[lo:hi], p.f[lo:hi], p.w[lo:hi]
    fk = np.interp(knots, p.x, p.f)
    err = np.abs(np.interp(xs, knots, fk) - fs) * ws / 2
    seg = np.clip(np.searchsorted(knots, xs, side="right") - 1, 0, len(knots) - 2)
    per = np.zeros(len(knots) - 1)
    np.maximum.at(per, seg, err)
    return per


def polish(p: Problem, a: float, b: float, rounds: int) -> np.ndarray:
    """Inner knots on [a, b] with equal own errors: start from the sqrt(|f''| w) density,
    then equidistribute the measured density sqrt(e_k) / h_k, damped."""
    sel = (p.x >= a) & (p.x <= b)
    g = p.x[sel]
    if len(g) > 8000:
        g = g[np.linspace(0, len(g) - 1, 8000).astype(np.int64)]
    g = np.unique(np.concatenate([[a], g, [b]]))
    fg = np.interp(g, p.x, p.f)
    d2 = np.abs(np.gradient(np.gradient(fg, g), g))
    dens = np.sqrt(d2 * np.interp(g, p.x, p.w))
    dens = dens + 1e-3 * dens.max() + 1e-300
    cum = np.concatenate([[0.0], np.cumsum((dens[1:] + dens[:-1]) / 2 * np.diff(g))])
    knots = np.interp(np.linspace(0, cum[-1], p.inner + 1), cum, g)
    for _ in range(rounds):
        e = chord_errors(p, knots)
        h = np.diff(knots)
        rho = np.sqrt(np.maximum(e, 1e-30 * max(e.max(), 1e-300))) / h
        cum = np.concatenate([[0.0], np.cumsum(rho * h)])
        new = np.interp(np.linspace(0, cum[-1], len(knots)), cum, knots)
        cand = knots + 0.5 * (new - knots)
        if np.any(np.diff(cand) <= 0):
            break
        knots = cand
    return knots


def _tail_proxy(p: Problem, side: int, k: float) -> float:
    end = (p.left, p.right)[side]
    if end[0] == "fixed":
        return 0.0
    sel = p.x < k if side == 0 else p.x > k
    if not sel.any():
        return 0.0
    if end[0] == "asym":
        return float(np.max(np.abs(end[1] * p.x[sel] + end[2] - p.f[sel]) * p.w[sel]))
    fk = float(np.interp(k, p.x, p.f))
    return float(np.max(np.abs(p.f[sel] - fk) * p.w[sel])) / 2


def _proxy(p: Problem, a: float, b: float, rounds: int = 8) -> float:
    knots = polish(p, a, b, rounds)
    return max(float(chord_errors(p, knots).max()), _tail_proxy(p, 0, a), _tail_proxy(p, 1, b))


def _search_end(p: Problem, side: int, a: float, b: float, centre: float) -> float:
    """The end on ``side`` minimising the proxy error, the other end held: a scan of
    centre -/+ 2**t, then golden-section refinement around the best."""
    def at(t: float) -> float:
        return centre - 2.0**t if side == 0 else centre + 2.0**t

    def cost(t: float) -> float:
        e = at(t)
        return _proxy(p, e, b) if side == 0 else _proxy(p, a, e)

    seen: dict[float, float] = {}

    def cost_memo(t: float) -> float:
        seen[t] = cost(t)
        return seen[t]

    ts = np.linspace(-3.0, 8.0, 23)
    cs = [cost_memo(t) for t in ts]
    i = int(np.argmin(cs))
    lo, hi = ts[max(i - 1, 0)], ts[min(i + 1, len(ts) - 1)]
    g = (math.sqrt(5) - 1) / 2
    x1, x2 = hi - g * (hi - lo), lo + g * (hi - lo)
    c1, c2 = cost_memo(x1), cost_memo(x2)
    for _ in range(12):
        if c1 < c2:
            hi, x2, c2 = x2, x1, c1
            x1 = hi - g * (hi - lo)
            c1 = cost_memo(x1)
        else:
            lo, x1, c1 = x1, x2, c2
            x2 = lo + g * (hi - lo)
            c2 = cost_memo(x2)
    # the proxy ranks; the linear programme decides among the best few
    top = sorted(seen, key=seen.get)[:3]

    def exact(t: float) -> float:
        e = at(t)
        lo_e, hi_e = (e, b) if side == 0 else (a, e)
        return best_values(p, polish(p, lo_e, hi_e, 30))[1]

    return at(min(top, key=exact))


def _residuals(p: Problem, knots: np.ndarray, v: np.ndarray, grad: bool = False) -> Any:
    """Weighted residuals over every input (tails included) and, with ``grad``, their
    derivatives by knot and by value (two nonzeros each)."""
    m = len(knots) - 1
    r = np.zeros_like(p.x)
    inside = (p.x >= knots[0]) & (p.x <= knots[-1])
    xs = p.x[inside]
    seg = np.clip(np.searchsorted(knots, xs, side="right") - 1, 0, m - 1)
    h = knots[seg + 1] - knots[seg]
    lam = (xs - knots[seg]) / h
    dv = v[seg + 1] - v[seg]
    r[inside] = ((1 - lam) * v[seg] + lam * v[seg + 1] - p.f[inside]) * p.w[inside]
    for side, end in ((0, p.left), (1, p.right)):
        sel = p.x < knots[0] if side == 0 else p.x > knots[-1]
        if end[0] == "asym":
            r[sel] = (end[1] * p.x[sel] + end[2] - p.f[sel]) * p.w[sel]
        elif end[0] == "const":
            r[sel] = ((v[0] if side == 0 else v[-1]) - p.f[sel]) * p.w[sel]
    if not grad:
        return r
    wi = p.w[inside]
    return r, inside, seg, wi * (1 - lam), wi * lam, -wi * dv * (1 - lam) / h, -wi * dv * lam / h


def refine(p: Problem, knots: np.ndarray, v: np.ndarray, powers: tuple[int, ...] = (8, 32, 128)) -> np.ndarray:
    """Knots moved to lower a smooth L^q stand-in for the max error (q rising), knots and
    values together, by L-BFGS; the values are solved again exactly afterwards."""
    from scipy.optimize import minimize

    m = len(knots) - 1
    free_k = np.ones(m + 1, bool)
    free_v = np.ones(m + 1, bool)
    for j, end in ((0, p.left), (m, p.right)):
        if end[0] == "fixed":
            free_k[j] = False
        if end[0] == "asym":
            free_v[j] = False
    k0, v0 = knots.copy(), v.copy()

    def unpack(z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        k, vv = k0.copy(), v0.copy()
        nk = int(free_k.sum())
        k[free_k] = z[:nk]
        vv[free_v] = z[nk:]
        for j, end in ((0, p.left), (m, p.right)):
            if end[0] == "asym":
                vv[j] = end[1] * k[j] + end[2]
        return k, vv

    def objective(z: np.ndarray, q: int) -> tuple[float, np.ndarray]:
        k, vv = unpack(z)
        if np.any(np.diff(k) <= 1e-12 * max(1.0, float(np.abs(k).max()))):
            return 1e30, np.zeros_like(z)
        r, inside, seg, dv_a, dv_b, dk_a, dk_b = _residuals(p, k, vv, grad=True)
        u = np.abs(r)
        top = max(float(u.max()), 1e-300)
        t = float(np.mean((u / top) ** q))
        val = top * t ** (1.0 / q)
        coef = (u / top) ** (q - 1) * np.sign(r) * t ** ((1.0 - q) / q) / len(u)  # d val / d r
        gk = np.zeros(m + 1)
        gv = np.zeros(m + 1)
        ci = coef[inside]
        np.add.at(gv, seg, ci * dv_a)
        np.add.at(gv, seg + 1, ci * dv_b)
        np.add.at(gk, seg, ci * dk_a)
        np.add.at(gk, seg + 1, ci * dk_b)
        for j, side, end in ((0, 0, p.left), (m, 1, p.right)):
            sel = p.x < k[0] if side == 0 else p.x > k[-1]
            if end[0] == "const":
                gv[j] += float(np.sum(coef[sel] * p.w[sel]))
            elif end[0] == "asym":
                gk[j] += gv[j] * end[1]  # the junction value rides on the asymptote
        return val, np.concatenate([gk[free_k], gv[free_v]])

    z = np.concatenate([k0[free_k], v0[free_v]])
    for q in powers:
        res = minimize(objective, z, args=(q,), jac=True, method="L-BFGS-B", options={"maxiter": 300})
        if res.fun < 1e29:
            z = res.x
    return unpack(z)[0]


def reference(p: Problem, window: tuple[float, float], rounds: int = 30) -> dict[str, Any]:
    """The best continuous approximation found (see the module docstring)."""
    a = p.left[1] if p.left[0] == "fixed" else window[0]
    b = p.right[1] if p.right[0] == "fixed" else window[1]
    centre = 0.0
    if p.left[0] == "fixed" and p.right[0] != "fixed":
        centre = a
    elif p.right[0] == "fixed" and p.left[0] != "fixed":
        centre = b
    for _ in range(2):
        if p.left[0] != "fixed":
            a = _search_end(p, 0, a, b, centre)
        if p.right[0] != "fixed":
            b = _search_end(p, 1, a, b, centre)
    return from_start(p, polish(p, a, b, rounds))


def table_knots(p: Problem, table: Any) -> np.ndarray:
    """The table's own inner knots in the reference's structure (a second starting point)."""
    bp = np.asarray(table.breakpoints, dtype=np.float64)
    lo, hi = table.domain
    left = [] if p.left[0] == "asym" else [p.left[1] if p.left[0] == "fixed" else lo]
    right = [] if p.right[0] == "asym" else [p.right[1] if p.right[0] == "fixed" else hi]
    return np.concatenate([left, bp, right])


def from_start(p: Problem, knots: np.ndarray) -> dict[str, Any]:
    """The refined approximation from ``knots``."""
    v, total = best_values(p, knots)
    try:
        k2 = refine(p, knots, v)
        v2, total2 = best_values(p, k2)
        if total2 < total:
            knots, v, total = k2, v2, total2
    except RuntimeError:
        pass
    return {"max_error": total, "knots": knots.tolist(), "values": v.tolist()}


def check(name: str, n: int, iterations: int) -> dict[str, Any]:
    t0 = time.perf_counter()
    table = nnlut.fit(name, n, range_reduction=True) if name in SCALED else nnlut.fit(name, n)
    fit_s = time.perf_counter() - t0
    metric = "max_rel" if name in SCALED else "max_abs"
    ours = nnlut.full_domain_errors(table, formats=("fp16",))["fp16"][metric]
    p = problem(name, table, n)
    if p.inner < 1:
        return {"skipped": f"{n} entries leave no inner segment"}
    window = table.domain if table.domain is not None else nnlut.get_function(name).domain
    t1 = time.perf_counter()
    own = reference(p, window, iterations)
    start = table_knots(p, table)
    near = from_start(p, start) if len(start) == p.inner + 1 else {"max_error": math.inf}
    ref = own if own["max_error"] <= near["max_error"] else near
    return {"metric": metric, "table": ours, "reference": ref["max_error"], "ratio": ours / ref["max_error"],
            "reference_independent_start": own["max_error"], "reference_from_table_knots": near["max_error"],
            "fit_seconds": fit_s, "reference_seconds": time.perf_counter() - t1,
            "reference_region": [ref["knots"][0], ref["knots"][-1]], "table_domain": list(table.domain)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--functions", nargs="+", default=nnlut.list_functions())
    ap.add_argument("--entries", nargs="+", type=int, default=list(ENTRIES))
    ap.add_argument("--iterations", type=int, default=30, help="equidistribution rounds for the final knots")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "limit.json")
    args = ap.parse_args(argv)
    data = json.loads(args.out.read_text()) if args.out.exists() else {}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    for name in args.functions:
        for n in args.entries:
            r = check(name, n, args.iterations)
            data[f"{name}|{n}"] = r
            args.out.write_text(json.dumps(data, indent=1) + "\n")
            if "skipped" in r:
                print(f"{name:10s} N={n:<3d} {r['skipped']}", flush=True)
                continue
            print(f"{name:10s} N={n:<3d} table {r['table']:.4g}  reference {r['reference']:.4g} (own start "
                  f"{r['reference_independent_start']:.4g}, table's knots {r['reference_from_table_knots']:.4g})  "
                  f"ratio {r['ratio']:.3f}  "
                  f"(fit {r['fit_seconds']:.1f} s, reference {r['reference_seconds']:.1f} s; region "
                  f"[{r['reference_region'][0]:.4g}, {r['reference_region'][1]:.4g}] vs table domain "
                  f"[{r['table_domain'][0]:.4g}, {r['table_domain'][1]:.4g}])", flush=True)
    print("\n| function | N | metric | table | reference | ratio |\n|---|---|---|---|---|---|")
    for key, r in sorted(data.items(), key=lambda kv: (kv[0].split("|")[0], int(kv[0].split("|")[1]))):
        if "skipped" not in r:
            name, n = key.split("|")
            print(f"| {name} | {n} | {r['metric']} | {r['table']:.3g} | {r['reference']:.3g} | {r['ratio']:.3f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
