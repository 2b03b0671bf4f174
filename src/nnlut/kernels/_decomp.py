"""Every nnlut op in standard aten operations, from its own arguments: the decompositions a
runtime without nnlut runs (``ExportedProgram.run_decompositions(decompositions())``).

Table evaluation decomposes exactly: a float table into range reduction, ``searchsorted``,
one gather of slope and intercept, a multiply-add and the power-of-two output correction (the
reference evaluation, bit for bit); a fixed-point table into its integer datapath (input
quantisation, ``searchsorted`` on the integer breakpoints, the int64 multiply-add, shifts and
rounding, saturation); a half-precision table into its FP16/BF16 roundings. The row ops
(softmax, attention softmax, LayerNorm, RMSNorm, fused attention) decompose into their
composite forms, whose sums run in the input's compute dtype where the CPU kernels sum in
float64: the same values up to rounding of the summation order.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import torch

from . import _flash, _ops, _reference
from ._args import traced_table


def _float_fn(bp: torch.Tensor, s: torch.Tensor, t: torch.Tensor, layout: str) -> _reference.Unary:
    from ..core._eval import evaluate_reference

    view = traced_table(bp, s, t, layout)
    return lambda u: evaluate_reference(view, u)


def _fixed_fn(bp: torch.Tensor, s: torch.Tensor, t: torch.Tensor, layout: str) -> _reference.Unary:
    """A fixed-point table's integer datapath in torch operations (see nnlut.fixed._table)."""
    from ..core._eval import _TorchOps, reduce_input, restore_output
    from ..core._io import decode_limits
    from ..core._scaling import Scaling

    d = json.loads(layout)
    f = d["fmt"]
    t_frac = f["in_frac"] + f["slope_frac"] if f.get("icpt_frac") is None else f["icpt_frac"]
    a_frac = t_frac if f.get("acc_frac") is None else f["acc_frac"]
    pshift, tshift, shift = f["in_frac"] + f["slope_frac"] - a_frac, a_frac - t_frac, a_frac - f["out_frac"]
    in_lo, in_hi = -(2 ** (f["in_bits"] - 1)), 2 ** (f["in_bits"] - 1) - 1
    out_lo, out_hi = -(2 ** (f["out_bits"] - 1)), 2 ** (f["out_bits"] - 1) - 1
    half_up = f.get("rounding", "half_up") == "half_up"
    scaling = Scaling.from_dict(d["scaling"]) if d.get("scaling") else None
    limits = decode_limits(d.get("limits")) or (float("nan"), float("nan"))

    def core(u: torch.Tensor) -> torch.Tensor:
        q = torch.clamp(torch.round(torch.nan_to_num(u * 2.0 ** f["in_frac"], nan=0.0)), in_lo, in_hi).to(torch.int64)
        idx = torch.searchsorted(bp, q.contiguous(), right=True)
        prod = s[idx] * q
        if pshift > 0:
            prod = prod >> pshift
        acc = prod + (t[idx] << tshift if tshift > 0 else t[idx])
        if shift > 0:
            acc = ((acc + (1 << (shift - 1))) if half_up else acc) >> shift
        return acc.clamp(out_lo, out_hi).to(torch.float64) * 2.0 ** -f["out_frac"]

    def fn(x: torch.Tensor) -> torch.Tensor:
        xf = x.to(torch.float64)
        if scaling is None:
            y = core(xf)
        else:
            ops = _TorchOps()
            u, j = reduce_input(scaling, xf, ops)
            y = restore_output(scaling, xf, core(u), j, ops)
        y = torch.where(torch.isnan(xf), xf, y)
        y = torch.where(xf == float("inf"), torch.full_like(y, limits[1]), y)
        y = torch.where(xf == float("-inf"), torch.full_like(y, limits[0]), y)
        return y.to(x.dtype)

    return fn


_HALF_DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16}


def _half_fn(bp: torch.Tensor, s: torch.Tensor, t: torch.Tensor, layout: str) -> _reference.Unary:
    """A half-precision table's datapath: input, product and sum each rounded to the format."""
    from ..core._eval import _TorchOps, reduce_input, restore_output
    from ..core._io import decode_limits
    from ..core._scaling import Scaling

    d = json.loads(layout)
    src = d["source"]
    hdt = _HALF_DTYPES[d["precision"]]
    big = float(torch.finfo(hdt).max)
    scaling = Scaling.from_dict(src["scaling"]) if src.get("scaling") else None
    domain, tails = src.get("domain"), src.get("tails") or ("extend", "extend")
    limits = decode_limits(src.get("limits")) or (float("nan"), float("nan"))

    def rnd(v: torch.Tensor) -> torch.Tensor:
        return v.to(hdt).to(torch.float64)

    def core(u: torch.Tensor) -> torch.Tensor:
        x = rnd(torch.clamp(u, -big, big))
        idx = torch.searchsorted(bp, x.contiguous(), right=True)
        return rnd(rnd(s[idx] * x) + t[idx])

    def fn(x: torch.Tensor) -> torch.Tensor:
        xf = x.to(torch.float64)
        if scaling is None:
            u = xf
            if domain is not None and "clamp" in tails:
                u = torch.clamp(u, domain[0] if tails[0] == "clamp" else None, domain[1] if tails[1] == "clamp" else None)
            y = core(u)
        else:
            ops = _TorchOps()
            u, j = reduce_input(scaling, xf, ops)
            y = restore_output(scaling, xf, core(torch.clamp(u, domain[0], domain[1])), j, ops)
        y = torch.where(torch.isnan(xf), xf, y)
        y = torch.where(xf == float("inf"), torch.full_like(y, limits[1]), y)
        y = torch.where(xf == float("-inf"), torch.full_like(y, limits[0]), y)
        return y.to(x.dtype)

    return fn


_KINDS: dict[str, Callable[..., _reference.Unary]] = {
    "nnlut.table": _float_fn, "nnlut.fixed-table": _fixed_fn, "nnlut.half-table": _half_fn}


def exact_fn(bp: torch.Tensor, s: torch.Tensor, t: torch.Tensor, layout: str) -> _reference.Unary:
    """The table that op arguments describe, as a function of torch operations on those
    tensors with the table's exact values (every kind)."""
    return _KINDS[json.loads(layout).get("format", "nnlut.table")](bp, s, t, layout)


def _decomposition(n: int, composite: Callable[..., torch.Tensor]) -> Callable[..., torch.Tensor]:
    def decomposed(*args: Any) -> torch.Tensor:
        plain, fns = _ops._split(n, args, exact_fn)
        return composite(*plain, *fns)

    return decomposed


def decompositions() -> dict[Any, Callable[..., Any]]:
    """{op overload: its decomposition into aten operations} for every functional nnlut op
    (see module docstring); pass it to ``ExportedProgram.run_decompositions``, alone or
    merged into ``torch.export.default_decompositions()``."""
    ops = torch.ops.nnlut
    table = {getattr(ops, name).default: _decomposition(_ops._SPECS[name][1], comp)
             for name, comp in _ops._COMPOSITES.items()}
    table[ops.flash_attention.default] = _decomposition(9, _flash.composite)
    return table


__all__ = ["decompositions", "exact_fn"]
