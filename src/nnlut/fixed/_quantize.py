"""Turning a float table into a fixed-point (INT16/INT32) or FP16-parameter table.

Steps for the integer table: choose Q formats from the input range and the output and
parameter magnitudes; round the breakpoints to the input grid; optionally refit the values
exactly for those breakpoints (minimax LP, tails kept); round each segment's slope and
intercept up or down, whichever pair gives the smallest max error over that segment's input
grid; nudge each breakpoint by up to two input LSBs where that lowers the max error. Errors
are then measured exhaustively over every input code in the table's domain.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from .._errors import NNLUTError
from ..core._functions import get_function
from ..core._table import Table
from ._format import FixedFormat, accumulate
from ._table import FixedTable, _sat

# input ranges of the unscaled functions in fixed point: wide enough for real activations on
# the asymptote segments; exp below -32 is exactly 0 in the table
DEFAULT_INPUT_RANGE = {"gelu": (-16.0, 16.0), "gelu_tanh": (-16.0, 16.0), "silu": (-16.0, 16.0), "exp": (-32.0, 0.0)}


def fit_tails(table: Table, spec: Any) -> tuple[Any, Any]:
    """The tails a refit of ``table`` keeps: clamped for fully range-reduced tables and for
    tables clamped where the function has an asymptote, the function's own otherwise."""
    from ..core._functions import Tail

    if table.scaling is not None and table.scaling.mode == "full":
        return Tail("clamp"), Tail("clamp")
    if table.tails == ("clamp", "clamp") and spec.tails[0].kind != "clamp":
        return Tail("clamp"), Tail("clamp")
    return spec.tails


def _frac_for(lo: float, hi: float, bits: int) -> int:
    """Largest fractional bit count such that [lo, hi] fits in signed ``bits``."""
    for f in range(bits + 24, -64, -1):
        if lo >= -(2 ** (bits - 1)) / 2**f and hi <= (2 ** (bits - 1) - 1) / 2**f:
            return f
    raise NNLUTError(f"range [{lo:g}, {hi:g}] does not fit in {bits} bits")


@dataclass
class _Core:
    f: Any
    lo: float
    hi: float
    rel: bool


def _core_problem(table: Table, input_range: tuple[float, float] | None) -> _Core:
    if table.function is None or table.domain is None:
        raise NNLUTError("fixed-point conversion needs a table of a registered function with a domain")
    spec = get_function(table.function)
    lo, hi = table.domain
    if table.scaling is None:
        lo, hi = input_range or DEFAULT_INPUT_RANGE.get(spec.name, (lo, hi))
    elif input_range is not None:
        raise NNLUTError("a scaled table's fixed-point core covers its table domain; input_range does not apply")
    rel = table.meta.get("error_measure") == "rel"
    return _Core(spec.__call__, float(lo), float(hi), rel)


def saturates_at_codes(table: Table) -> bool:
    """Whether ``table`` is clamped at its domain where its function saturates (finite limits
    on both sides: sigmoid, tanh, erf): in fixed point the input quantiser saturates at the
    code range instead, so the end segments serve every input code out to it and are fitted
    there (not only on the table's domain)."""
    if table.scaling is not None or table.tails != ("clamp", "clamp") or table.function is None:
        return False
    limits = get_function(table.function).limits
    return limits is not None and all(math.isfinite(v) for v in limits)


def code_range_core(core: _Core, fmt: FixedFormat) -> _Core:
    """``core`` over every input code of ``fmt``."""
    c_lo, c_hi = -(2 ** (fmt.in_bits - 1)), 2 ** (fmt.in_bits - 1) - 1
    return _Core(core.f, c_lo / 2.0**fmt.in_frac, c_hi / 2.0**fmt.in_frac, core.rel)


def choose_format(table: Table, input_range: tuple[float, float] | None = None, *, in_bits: int = 16,
                  slope_bits: int = 16, out_bits: int = 16, icpt_bits: int | None = None,
                  icpt_guard: int | None = 2) -> FixedFormat:
    """Q formats for ``table`` so that inputs, outputs, slopes, intercepts and the accumulator
    fit. ``icpt_guard``: the intercepts sit that many bits below the output LSB (the product is
    truncated onto that grid before the add; see :mod:`nnlut.fixed`); None puts them at the
    product's precision (an exact INT32 multiply-add). ``icpt_bits``: the intercepts' width;
    None picks the smallest that holds them (32 for ``icpt_guard=None``)."""
    core = _core_problem(table, input_range)
    fin = _frac_for(core.lo, core.hi, in_bits)
    grid = np.arange(math.ceil(core.lo * 2**fin), math.floor(core.hi * 2**fin) + 1) / 2**fin
    plain = table.replace(scaling=None)
    y = plain(grid)
    fout = _frac_for(float(min(y.min(), 0.0)), float(max(y.max(), 0.0)), out_bits)
    smax = float(np.max(np.abs(table.slopes))) or 1.0
    fs = _frac_for(-smax, smax, slope_bits)
    if icpt_guard is not None and not (isinstance(icpt_guard, int) and 0 <= icpt_guard <= 16):
        raise NNLUTError(f"icpt_guard must be an integer in [0, 16] or None, got {icpt_guard!r}")
    if icpt_bits is not None and not (isinstance(icpt_bits, int) and 2 <= icpt_bits <= 32):
        raise NNLUTError(f"icpt_bits must be an integer in [2, 32] or None, got {icpt_bits!r}")
    auto_bits = icpt_bits is None
    icpt_bits = 32 if icpt_bits is None else icpt_bits
    tmax = float(np.max(np.abs(table.intercepts)))
    # keep the intercepts and the accumulator inside their widths
    while fs > -8:
        scale = 2.0 ** (fin + fs)
        acc = np.max(np.abs(y)) * scale + smax * 2.0 ** fs  # |s x + t| ~ |y|; one slope LSB of slack
        # guard-bit intercepts do not depend on the slope format (their width is checked below)
        if (icpt_guard is not None or tmax * scale < 2 ** (icpt_bits - 1) - 1) and acc < 2**31 - 1:
            break
        fs -= 1
    fout = min(fout, fin + fs)
    icpt_frac = None if icpt_guard is None else min(fout + icpt_guard, fin + fs)
    if icpt_frac is not None:
        need = int(math.ceil(tmax * 2.0**icpt_frac) + 2).bit_length() + 1  # two LSBs of rounding slack
        if auto_bits:
            icpt_bits = need
        if need > icpt_bits or need > 32:
            raise NNLUTError(f"intercepts up to {tmax:g} need {need} bits with {icpt_guard} guard bits; "
                             f"icpt_bits is {icpt_bits}")
    return FixedFormat(in_bits=in_bits, in_frac=fin, slope_bits=slope_bits, slope_frac=fs, icpt_bits=icpt_bits,
                       out_bits=out_bits, out_frac=fout, icpt_frac=icpt_frac)


def quantize_table(table: Table, fmt: FixedFormat | None = None, *, input_range: tuple[float, float] | None = None,
                   refit: bool = True) -> FixedTable:
    """A bit-exact integer version of ``table`` (see module docstring); ``meta`` has the errors."""
    from ..fitting._layout import Layout
    from ..fitting._values import refit_minimax, values_to_table_arrays

    core = _core_problem(table, input_range)
    fmt = fmt or choose_format(table, input_range)
    fin = fmt.in_frac
    code_lo, code_hi = -(2 ** (fmt.in_bits - 1)), 2 ** (fmt.in_bits - 1) - 1
    clamped = saturates_at_codes(table)
    if clamped:
        core = code_range_core(core, fmt)
    codes = np.arange(max(math.ceil(core.lo * 2**fin), code_lo), min(math.floor(core.hi * 2**fin), code_hi) + 1,
                      dtype=np.int64)
    xr = codes / 2.0**fin
    with np.errstate(all="ignore"):
        fx = core.f(xr)
    weight = 1.0 / np.maximum(np.abs(fx), 1e-300) if core.rel else np.ones_like(fx)

    # 1. breakpoints on the input grid (duplicates merged)
    clipped = np.clip(np.round(table.breakpoints * 2**fin), codes[0] + 1, codes[-1]).astype(np.int64)
    bp = np.unique(clipped)
    s_f, t_f = table.slopes, table.intercepts
    notes = []
    if len(bp) < len(table.breakpoints):
        notes.append(f"{len(table.breakpoints) - len(bp)} breakpoint(s) merged on the input grid")
    # 2. exact values for the rounded breakpoints
    if refit and len(bp) == len(table.breakpoints):
        spec = get_function(table.function)  # type: ignore[arg-type]
        dlo, dhi = (core.lo, core.hi) if clamped else table.domain  # type: ignore[misc]
        nodes = np.concatenate([[dlo], bp / 2.0**fin, [dhi]])
        if np.all(np.diff(nodes) > 0):
            layout = Layout(table.entries, fit_tails(table, spec))
            w = (lambda x: 1.0 / np.maximum(np.abs(spec(x)), 1e-300)) if core.rel else None
            v, _ = refit_minimax(spec.__call__, nodes, layout, w)
            _, s_f, t_f = values_to_table_arrays(nodes, v)
            for side, tail in ((0, layout.source[0][1]), (-1, layout.source[-1][1])):
                if getattr(tail, "kind", None) == "asymptote":
                    s_f[side], t_f[side] = tail.slope, tail.intercept
    elif len(bp) < len(table.breakpoints):
        # segment 0, then for each distinct breakpoint the segment right of its last copy
        keep = np.concatenate([[0], 1 + np.flatnonzero(np.append(np.diff(clipped) > 0, True))])
        s_f, t_f = s_f[keep], t_f[keep]
    # 3. integer slopes and intercepts, rounded the way that minimises each segment's max error
    scale_t = 2.0**fmt.t_frac
    out_lsb = 2.0 ** -fmt.out_frac
    seg = np.searchsorted(bp, codes, side="right")
    s_i = np.zeros(len(s_f), dtype=np.int64)
    t_i = np.zeros(len(t_f), dtype=np.int64)

    def seg_err(si: int, ti: int, xs: np.ndarray, ys: np.ndarray, ws: np.ndarray) -> float:
        y = _sat(accumulate(fmt, si, xs, ti), fmt.out_bits)
        return float(np.max(np.abs(y * out_lsb - ys) * ws)) if len(xs) else 0.0

    # a truncated product sits up to one intercept LSB low: the intercept may round one higher
    t_extra = (1,) if fmt.pshift > 0 else ()
    for k in range(len(s_f)):
        sel = seg == k
        xs, ys, ws = codes[sel], fx[sel], weight[sel]
        s_exact, t_exact = s_f[k] * 2.0**fmt.slope_frac, t_f[k] * scale_t
        t_cands = (math.floor(t_exact), math.ceil(t_exact), *(math.ceil(t_exact) + d for d in t_extra))
        cands = [(int(a), int(b)) for a in (math.floor(s_exact), math.ceil(s_exact)) for b in t_cands]
        s_i[k], t_i[k] = min(cands, key=lambda c: seg_err(c[0], c[1], xs, ys, ws))
    s_i = np.clip(s_i, -(2 ** (fmt.slope_bits - 1)), 2 ** (fmt.slope_bits - 1) - 1)
    t_i = np.clip(t_i, -(2 ** (fmt.icpt_bits - 1)), 2 ** (fmt.icpt_bits - 1) - 1)
    # 4. nudge breakpoints by up to two LSBs
    for j in range(len(bp)):
        lo_b = bp[j - 1] + 1 if j > 0 else codes[0] + 1
        hi_b = bp[j + 1] - 1 if j + 1 < len(bp) else codes[-1]
        best = None
        for d in (-2, -1, 0, 1, 2):
            cand = bp[j] + d
            if not lo_b <= cand <= hi_b:
                continue
            win = (codes >= bp[j] - 3) & (codes <= bp[j] + 3)
            xs = codes[win]
            trial = bp.copy()
            trial[j] = cand
            idx = np.searchsorted(trial, xs, side="right")
            y = accumulate(fmt, s_i[idx], xs, t_i[idx])
            err = float(np.max(np.abs(y * out_lsb - fx[win]) * weight[win]))
            if best is None or err < best[0] - 1e-15:
                best = (err, cand)
        if best is not None:
            bp[j] = best[1]
    ft = FixedTable(fmt, bp, s_i, t_i, function=table.function, scaling=table.scaling, limits=table.limits,
                    meta={"notes": notes, "refit": refit, "fit": "rounded"}, source=table)
    ft.meta["errors"] = fixed_errors(ft, table, core, codes, fx)
    return ft


def fixed_errors(ft: FixedTable, table: Table, core: _Core, codes: np.ndarray, fx: np.ndarray) -> dict[str, Any]:
    """Exhaustive errors over the input codes of the table domain, in real units and output LSBs."""
    fin = ft.fmt.in_frac
    dlo, dhi = table.domain  # type: ignore[misc]
    inside = (codes >= dlo * 2**fin) & (codes <= dhi * 2**fin)
    xr = codes / 2.0**fin
    y = ft.eval_int(codes) * 2.0**-ft.fmt.out_frac
    plain = table.replace(scaling=None)
    yf = plain(xr)
    lsb = 2.0**-ft.fmt.out_frac
    err = np.abs(y - fx)
    extra = np.abs(y - yf)
    d = inside if inside.any() else np.ones_like(inside)
    return {
        "format": ft.fmt.to_dict(),
        "input_codes": int(len(codes)),
        "max_abs": float(np.max(err[d])), "max_abs_lsb": float(np.max(err[d]) / lsb),
        "float_table_max_abs": float(np.max(np.abs(yf - fx)[d])),
        "extra_over_float_max_lsb": float(np.max(extra[d]) / lsb),
        "extra_over_float_mean_lsb": float(np.mean(extra[d]) / lsb),
        "max_abs_full_input_range": float(np.max(err)),
    }
