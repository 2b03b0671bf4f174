"""Tables in a number format: quantisation-aware fixed-point tables and half-precision ones.

:func:`fit_quantized` turns a float table into a fixed-point table fitted with the format in
the loop (:mod:`nnlut.fixed._qat`); :func:`fit_in_format` fits a function straight into any
format spec (``int16``, ``int8``, ``int8:P``, ``fp16``, ``bf16``).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .._errors import NNLUTError
from ..core._functions import get_function
from ..core._table import Table
from ._format import FixedFormat, FixedSpec, FloatFormat, format_name, gqa_format, parse_format
from ._half import to_half
from ._qat import Problem, fit_codes
from ._quantize import _core_problem, _frac_for, choose_format, code_range_core, fixed_errors, saturates_at_codes
from ._table import FixedTable


def _codes(fmt: FixedFormat, lo: float, hi: float) -> np.ndarray:
    c_lo, c_hi = fmt.codes
    a = max(math.ceil(lo * 2.0**fmt.in_frac), c_lo)
    b = min(math.floor(hi * 2.0**fmt.in_frac), c_hi)
    if b <= a:
        raise NNLUTError(f"the range [{lo:g}, {hi:g}] holds {max(b - a + 1, 0)} input code(s) at scale 2**-{fmt.in_frac}; "
                         "at least 2 are needed")
    return np.arange(a, b + 1, dtype=np.int64)


def fit_quantized(table: Table, fmt: FixedFormat | None = None, *,
                  input_range: tuple[float, float] | None = None) -> FixedTable:
    """A fixed-point version of ``table`` fitted with the format in the loop.

    Args:
        table: a float :class:`~nnlut.Table` of a registered function (its breakpoints start
            the search; its domain, scaling and limits carry over).
        fmt: the datapath; default :func:`choose_format` (the ``int16`` preset).
        input_range: codes fitted for an unscaled table; default
            :data:`~nnlut.fixed.DEFAULT_INPUT_RANGE` or the table's domain.

    Returns:
        A :class:`FixedTable` minimising the max error (relative for relative-error tables)
        over every input code; ``meta["errors"]`` has the exhaustive errors (as
        :func:`quantize_table`'s), ``meta["fit"] = "quantization-aware"``.
    """
    if not isinstance(table, Table):
        raise NNLUTError(f"fit_quantized takes a float nnlut.Table, got {type(table).__name__}")
    core = _core_problem(table, input_range)
    fmt = fmt or choose_format(table, input_range)
    if saturates_at_codes(table):
        core = code_range_core(core, fmt)
    codes = _codes(fmt, core.lo, core.hi)
    with np.errstate(all="ignore"):
        fx = core.f(codes * 2.0**-fmt.in_frac)
    w = 1.0 / np.maximum(np.abs(fx), 1e-300) if core.rel else None
    bp, s, t = fit_codes(Problem(fmt, codes, fx, w), table.entries, table.breakpoints)
    ft = FixedTable(fmt, bp, s, t, function=table.function, scaling=table.scaling, limits=table.limits,
                    meta={"fit": "quantization-aware"}, source=table)
    ft.meta["errors"] = fixed_errors(ft, table, core, codes, fx)
    return ft


def fit_fixed(func: Any, entries: int, fmt: FixedFormat, domain: tuple[float, float] | None = None) -> FixedTable:
    """Fit ``func`` straight into the integer datapath ``fmt`` over every input code in
    ``domain`` (default: the function's), absolute error. ``meta["errors"]`` has the max and
    mean absolute error over those codes."""
    spec = get_function(func)
    lo, hi = domain or spec.domain
    codes = _codes(fmt, lo, hi)
    xr = codes * 2.0**-fmt.in_frac
    with np.errstate(all="ignore"):
        fx = spec(xr)
    bp, s, t = fit_codes(Problem(fmt, codes, fx), entries)
    limits = spec.limits if spec.limits is not None else (math.nan, math.nan)  # what +-inf inputs give
    ft = FixedTable(fmt, bp, s, t, function=spec.name, limits=limits, meta={"fit": "quantization-aware", "domain": [lo, hi]})
    err = np.abs(ft.eval_int(codes) * 2.0**-fmt.out_frac - fx)
    ft.meta["errors"] = {"format": format_name(fmt), "input_codes": int(len(codes)),
                         "max_abs": float(err.max()), "mean_abs": float(err.mean())}
    return ft


def requantize(old: FixedTable, table: Table) -> FixedTable:
    """``table`` in ``old``'s kind of fixed point: the same widths and guard bits, fractional
    bits chosen again for ``table``'s ranges, made the same way (rounded, without the minimax
    refit, or quantisation-aware, which minimises the max error over every code again)."""
    spec = old.meta.get("number_format")
    if isinstance(spec, str) and not isinstance(parse_format(spec), FixedSpec) or (
            isinstance(spec, str) and parse_format(spec).gqa):  # type: ignore[union-attr]
        return in_format(table, spec)  # INT8: fitted again on the grid of the calibrated domain
    f = old.fmt
    guard = None if f.icpt_frac is None else f.t_frac - f.out_frac
    fmt = choose_format(table, in_bits=f.in_bits, slope_bits=f.slope_bits, out_bits=f.out_bits, icpt_guard=guard)
    if old.meta.get("fit") == "quantization-aware":
        return fit_quantized(table, fmt)
    from ._quantize import quantize_table

    # the calibrated values are kept: a minimax refit over the domain would undo their weighting
    out = quantize_table(table, fmt, refit=False)
    if isinstance(spec, str):
        out.meta["number_format"] = spec
    return out


def input_frac_for(lo: float, hi: float, in_bits: int = 8) -> int:
    """The input's fractional bits P (scale ``2**-P``) that fit ``[lo, hi]`` in ``in_bits``
    signed bits with the finest grid, limited to ``0..in_bits-1``."""
    return max(0, min(_frac_for(lo, hi, in_bits), in_bits - 1))


def fit_in_format(func: Any, entries: int = 16, format: Any = "int16", *,
                  domain: tuple[float, float] | None = None, **fit_kwargs: Any) -> Any:
    """Fit ``func`` with ``entries`` entries in ``format`` (a spec string such as ``"int16"``,
    ``"int8:4"``, ``"bf16"``, or a format object). ``fit_kwargs`` go to :func:`nnlut.fit`
    for the float table that starts ``int16`` and ``fp16``/``bf16`` tables. ``int8`` without
    ``:P`` takes the finest input scale that holds the domain. ``meta["errors"]["full_domain"]``
    has the errors over every finite FP16/BF16 input and an FP32 sweep."""
    from ..fitting import full_domain_errors

    out = _fit_in_format(func, entries, format, domain, fit_kwargs)
    out.meta.setdefault("errors", {})["full_domain"] = full_domain_errors(out)
    return out


def _fit_in_format(func: Any, entries: int, format: Any, domain: tuple[float, float] | None,
                   fit_kwargs: dict[str, Any]) -> Any:
    from ..fitting import fit

    fmt = parse_format(format)
    if isinstance(fmt, FloatFormat):
        return to_half(fit(func, entries, domain=domain, **fit_kwargs), fmt.name)
    if isinstance(fmt, FixedSpec) and fmt.gqa:
        lo, hi = domain or get_function(func).domain
        fmt = gqa_format(input_frac_for(lo, hi, fmt.in_bits), fmt.in_bits)
    if isinstance(fmt, FixedFormat):
        if fit_kwargs:
            raise NNLUTError(f"a fixed-point format fits on its input grid; {sorted(fit_kwargs)} do not apply")
        return fit_fixed(func, entries, fmt, domain)
    table = fit(func, entries, domain=domain, **fit_kwargs)
    return fit_quantized(table, choose_format(table, in_bits=fmt.in_bits, slope_bits=fmt.slope_bits,
                                              out_bits=fmt.out_bits, icpt_guard=fmt.icpt_guard))


def fit(func: Any, entries: int = 16, *, format: Any = None, **kwargs: Any) -> Any:
    """Fit an ``entries``-entry table to ``func``, in float or in a number format.

    ``format`` None (default): :func:`nnlut.fitting.fit`'s float :class:`~nnlut.Table` (every
    keyword as there: ``domain``, ``method``, ``range_reduction``, ``error``, ``seed``,
    ``restarts``, ``ratio``). Otherwise a spec string (``"int16"``, ``"int8"``, ``"int8:P"``,
    ``"fp16"``, ``"bf16"``) or a format object: the table is fitted with the format in the
    loop (:func:`fit_in_format`) and evaluates through that format's datapath, bit-exactly.
    """
    if "seed" in kwargs:
        from ..core._validate import check_seed

        check_seed(kwargs["seed"])
    if format is None:
        from ..fitting import fit as fit_float

        return fit_float(func, entries, **kwargs)
    return fit_in_format(func, entries, format, **kwargs)


# input ranges of unscaled functions in INT8 when no calibration data sets them: GQA-LUT's for
# exp (inputs below -8 saturate there, where exp is below 3.4e-4); the table's domain otherwise
INT8_RANGE = {"exp": (-8.0, 0.0), "silu": (-8.0, 8.0)}  # SiLU's table spans [-16, 16] for its tail starts


def in_format(table: Table, format: Any) -> Any:
    """``table`` made in ``format`` (spec string or format object), the way models use it:
    ``int16``: rounded after the float fit (:func:`quantize_table`, today's unit); ``int8``:
    fitted quantisation-aware on the INT8 grid whose power-of-two scale holds the table's
    domain (:func:`nnlut.calibrate` later chooses the scale from the data, see
    :mod:`nnlut.calibration._scale`); ``int8:P`` or a
    :class:`FixedFormat`: fitted quantisation-aware on that grid; ``fp16``/``bf16``:
    :func:`to_half`. The result's ``meta["number_format"]`` records ``format``."""
    from ._quantize import quantize_table

    if not isinstance(table, Table):
        raise NNLUTError(f"in_format takes a float nnlut.Table, got {type(table).__name__}")
    fmt = parse_format(format)
    if isinstance(fmt, FloatFormat):
        out = to_half(table, fmt.name)
    elif isinstance(fmt, FixedSpec) and not fmt.gqa:
        out = quantize_table(table, choose_format(table, in_bits=fmt.in_bits, slope_bits=fmt.slope_bits,
                                                  out_bits=fmt.out_bits, icpt_guard=fmt.icpt_guard))
    else:
        if table.domain is None:
            raise NNLUTError("an INT8 table needs a float table with a domain")
        rng = table.domain if table.scaling is not None else INT8_RANGE.get(table.function or "", table.domain)
        if isinstance(fmt, FixedSpec):
            fmt = gqa_format(input_frac_for(*rng, fmt.in_bits), fmt.in_bits)
        out = fit_quantized(table, fmt, input_range=None if table.scaling is not None else rng)
    out.meta["number_format"] = format if isinstance(format, str) else format_name(fmt)
    return out
