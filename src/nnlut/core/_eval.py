"""Reference evaluation of a :class:`Table` on numpy arrays and torch tensors.

Steps: (1) power-of-two range reduction when the table is scaled, (2) saturation at
``clamp`` edges, (3) segment search and one multiply-add, (4) the exact power-of-two output
correction, (5) special values: NaN stays NaN, ±inf give the table's limits.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from .._errors import NNLUTError
from .._plugins import Plugins

# the op that evaluates a float table on a tensor through the fastest backend that takes it
# ("pwl": torch.ops.nnlut.pwl, which nnlut.kernels registers when imported)
TORCH_TABLE_OP = Plugins("torch table op")

if TYPE_CHECKING:
    from ._scaling import Scaling
    from ._table import Table


def _is_torch(x: Any) -> bool:
    return type(x).__module__.startswith("torch")


def evaluate(table: Table, x: Any) -> Any:
    if _is_torch(x):
        return _evaluate_torch(table, x)
    return _evaluate_numpy(table, x)


def evaluate_reference(table: Table, x: Any) -> Any:
    """The reference evaluation (no fused kernel), for numpy arrays and torch tensors."""
    if _is_torch(x):
        return _evaluate_torch(table, x, fused=False)
    return _evaluate_numpy(table, x)


# ---------------------------------------------------------------------------- numpy
def _evaluate_numpy(table: Table, x: Any) -> np.ndarray:
    try:
        arr = np.asarray(x)
    except ValueError:  # a ragged list
        raise NNLUTError("table input must be a number, an array or a list of equal-length lists of numbers") from None
    if arr.dtype.kind not in "fiub":
        raise NNLUTError(f"table input must be numeric, got numpy dtype {arr.dtype}")
    arr = arr.astype(np.float32 if arr.dtype == np.float32 else np.float64, copy=False)
    with np.errstate(all="ignore"):
        y = _evaluate_generic(table, arr, _NUMPY)
    return y


class _NumpyOps:
    def frexp(self, x):  # noqa: ANN001, ANN201
        return np.frexp(x)

    def ldexp(self, x, e):  # noqa: ANN001, ANN201
        return np.ldexp(x, e.astype(np.int32))

    def floor_div(self, a, q):  # noqa: ANN001, ANN201
        return np.floor_divide(a, q)

    def minimum0(self, a):  # noqa: ANN001, ANN201
        return np.minimum(a, 0)

    def clamp(self, x, lo, hi):  # noqa: ANN001, ANN201
        return np.clip(x, -np.inf if lo is None else lo, np.inf if hi is None else hi)

    def where(self, c, a, b):  # noqa: ANN001, ANN201
        return np.where(c, a, b).astype(b.dtype if hasattr(b, "dtype") else a.dtype, copy=False)

    def abs(self, x):  # noqa: ANN001, ANN201
        return np.abs(x)

    def pwl(self, table, u):  # noqa: ANN001, ANN201
        return table._pwl_numpy(u)

    def full_like(self, x, v):  # noqa: ANN001, ANN201
        return np.full_like(x, v)

    def signed_inf(self, x, like):  # noqa: ANN001, ANN201
        return np.copysign(np.full_like(like, np.inf), x).astype(like.dtype, copy=False)


_NUMPY = _NumpyOps()


# ---------------------------------------------------------------------------- torch
class _TorchOps:
    def __init__(self) -> None:
        import torch

        self.torch = torch

    def frexp(self, x):  # noqa: ANN001, ANN201
        m, e = self.torch.frexp(x)
        return m, e

    def ldexp(self, x, e):  # noqa: ANN001, ANN201
        # x * 2**e rounded once, also where 2**e alone is not a float of x's dtype (a subnormal
        # input's reciprocal needs 2**128): float32 and narrower are scaled exactly in float64,
        # float64 in two exact steps
        t = self.torch
        if x.dtype == t.float64:
            h = t.div(e, 2, rounding_mode="floor")
            return x * t.exp2(h.to(x.dtype)) * t.exp2((e - h).to(x.dtype))
        return (x.double() * t.exp2(e.double())).to(x.dtype)

    def floor_div(self, a, q):  # noqa: ANN001, ANN201
        return self.torch.div(a, q, rounding_mode="floor")

    def minimum0(self, a):  # noqa: ANN001, ANN201
        return self.torch.clamp(a, max=0)

    def clamp(self, x, lo, hi):  # noqa: ANN001, ANN201
        return self.torch.clamp(x, lo, hi)

    def where(self, c, a, b):  # noqa: ANN001, ANN201
        return self.torch.where(c, a, b)

    def abs(self, x):  # noqa: ANN001, ANN201
        return x.abs()

    def pwl(self, table, u):  # noqa: ANN001, ANN201
        bp, s, t = table.torch_params(u.dtype, u.device)
        idx = self.torch.searchsorted(bp, u.contiguous(), right=True)
        return s[idx] * u + t[idx]

    def full_like(self, x, v):  # noqa: ANN001, ANN201
        return self.torch.full_like(x, v)

    def signed_inf(self, x, like):  # noqa: ANN001, ANN201
        return self.torch.copysign(self.torch.full_like(like, float("inf")), x.to(like.dtype))


_TORCH: _TorchOps | None = None


def array_ops(torch: bool) -> Any:
    """The elementwise steps of the reference evaluation on torch tensors or numpy arrays (what
    :func:`reduce_input` and :func:`restore_output` take as ``ops``)."""
    global _TORCH
    if not torch:
        return _NUMPY
    if _TORCH is None:
        _TORCH = _TorchOps()
    return _TORCH


def _evaluate_torch(table: Table, x: Any, fused: bool = True) -> Any:
    global _TORCH
    import torch

    if _TORCH is None:
        _TORCH = _TorchOps()
    if not x.is_floating_point():
        raise NNLUTError(f"table input must be a floating-point tensor, got {x.dtype}")
    out_dtype = x.dtype
    if fused:  # the table op (torch.ops.nnlut.pwl): the fastest backend that takes x
        return TORCH_TABLE_OP.get("pwl")(table, x)
    compute = x if x.dtype in (torch.float32, torch.float64) else x.float()
    y = _evaluate_generic(table, compute, _TORCH)
    return y.to(out_dtype)


# ---------------------------------------------------------------------------- shared steps
def reduce_input(sc: Scaling, x: Any, ops: Any = None) -> tuple[Any, Any]:
    """Range reduction: (u, j) with ``u = |x| * P**-j`` (exactly) in [1, P), or ``|x|`` itself
    where paper mode caps ``j`` at 0. ``ops`` defaults to numpy."""
    ops = _NUMPY if ops is None else ops
    ax = ops.abs(x) if sc.negative == "odd" else x
    mant, e = ops.frexp(ax)  # ax = mant * 2**e, mant in [0.5, 1)
    big_e = e - 1  # ax = (2 mant) * 2**big_e
    j = ops.floor_div(big_e, sc.q)
    if sc.mode == "paper":
        j = ops.minimum0(j)
    return ops.ldexp(mant * 2, big_e - sc.q * j), j


def restore_output(sc: Scaling, x: Any, y: Any, j: Any, ops: Any = None) -> Any:
    """The exact power-of-two output correction of :func:`reduce_input`, with the scaled
    functions' values at 0 (inf with the sign of the zero, as IEEE's 1/x and rsqrt(x):
    1/-0.0 = rsqrt(-0.0) = -inf) and below 0 (odd symmetry or NaN)."""
    ops = _NUMPY if ops is None else ops
    y = ops.ldexp(y, j * sc.shift_per_period)
    y = ops.where(x == 0, ops.signed_inf(x, y), y)
    if sc.negative == "odd":
        return ops.where(x < 0, -y, y)
    return ops.where(x < 0, ops.full_like(y, float("nan")), y)


def _evaluate_generic(table: Table, x: Any, ops: Any) -> Any:
    sc = table.scaling
    if sc is not None:
        u, j = reduce_input(sc, x, ops)
    else:
        u = x
    lo_c = table.tails[0] == "clamp"
    hi_c = table.tails[1] == "clamp"
    if lo_c or hi_c:
        lo, hi = table.domain  # type: ignore[misc]
        u = ops.clamp(u, lo if lo_c else None, hi if hi_c else None)
    y = ops.pwl(table, u)
    if sc is not None:
        y = restore_output(sc, x, y, j, ops)
    lo_lim, hi_lim = table.limits
    y = ops.where(x == float("inf"), ops.full_like(y, hi_lim), y)
    y = ops.where(x == float("-inf"), ops.full_like(y, lo_lim), y)
    return y
