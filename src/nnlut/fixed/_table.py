"""Fixed-point tables: integer breakpoints, slopes and intercepts, evaluated bit-exactly.

The datapath is the table's :class:`~nnlut.fixed.FixedFormat` (see :mod:`nnlut.fixed._format`)::

    idx = #{j : x >= bp[j]}
    acc = ((s[idx] * x) >> pshift) + (t[idx] << tshift)
    y   = saturate_out(round(acc >> shift))

``y`` has ``out_frac`` fractional bits; ``>>`` is an arithmetic (flooring) shift. With
``icpt_frac`` unset the intercept sits at the product's precision (``pshift`` = 0: the exact
INT32 multiply-add). Setting it a few guard bits above ``out_frac`` stores the intercepts at
output precision: the product is truncated to the intercept grid before the add, which costs
at most one guard LSB and makes every intercept register much narrower in hardware. GQA-LUT's
INT8 datapath instead shifts the 6-fractional-bit intercept up onto the product's grid
(``tshift``) and leaves the output unrounded.

Float inputs are quantised to the input grid (round to nearest, saturating); scaled tables
keep their exact power-of-two range reduction around the integer core.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from .._errors import NNLUTError
from ..core._io import register_kind
from ..core._scaling import Scaling
from ._format import FixedFormat, accumulate, format_name


def _sat(v: np.ndarray, bits: int) -> np.ndarray:
    return np.clip(v, -(2 ** (bits - 1)), 2 ** (bits - 1) - 1)


@dataclass(frozen=True)
class FixedTable:
    """An integer table (see module docstring). Callable on numpy arrays and torch tensors of
    real values; :meth:`eval_int` is the bit-exact integer core."""

    fmt: FixedFormat
    bp: np.ndarray  # int64, N-1
    s: np.ndarray  # int64, N
    t: np.ndarray  # int64, N
    function: str | None = None
    scaling: Scaling | None = None
    limits: tuple[float, float] = (float("nan"), float("nan"))
    meta: dict[str, Any] = field(default_factory=dict, compare=False)
    # the float table this one was made from (calibration refits it and quantises again); not
    # part of the table's value: equality compares the integer datapath only
    source: Any = field(default=None, compare=False)

    @property
    def entries(self) -> int:
        return len(self.s)

    @property
    def number_format(self) -> str:
        """The number format it evaluates in, as a spec where it has one (``int8:3``: INT8 at
        input scale 2**-3)."""
        return format_name(self.fmt)

    def __eq__(self, other: object) -> bool:
        # the parameters compare as arrays, the limits with NaN equal to NaN
        if not isinstance(other, FixedTable):
            return NotImplemented
        return (self.fmt == other.fmt and self.function == other.function and self.scaling == other.scaling
                and all(np.array_equal(a, b) for a, b in ((self.bp, other.bp), (self.s, other.s), (self.t, other.t)))
                and np.array_equal(self.limits, other.limits, equal_nan=True))

    __hash__ = None  # type: ignore[assignment]  # mutable arrays inside

    def __getstate__(self) -> dict[str, Any]:
        # meta keys starting with "_" are caches (device tensors, packed kernel parameters):
        # copies and pickles leave them out and rebuild them on first use
        state = dict(self.__dict__)
        state["meta"] = {k: v for k, v in self.meta.items() if not k.startswith("_")}
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)

    def __post_init__(self) -> None:
        for name in ("bp", "s", "t"):  # the table's own read-only copies: frozen in fact, not in name only
            arr = np.array(getattr(self, name), dtype=np.int64)
            arr.setflags(write=False)
            object.__setattr__(self, name, arr)
        f = self.fmt
        checks = ((self.bp, f.in_bits, "breakpoint"), (self.s, f.slope_bits, "slope"), (self.t, f.icpt_bits, "intercept"))
        for arr, bits, what in checks:
            if len(arr) and (arr.min() < -(2 ** (bits - 1)) or arr.max() > 2 ** (bits - 1) - 1):
                raise NNLUTError(f"a {what} does not fit in {bits} signed bits")
        if len(self.bp) != len(self.s) - 1 or len(self.s) != len(self.t):
            raise NNLUTError("a fixed-point table needs N-1 breakpoints, N slopes and N intercepts")
        if len(self.bp) > 1 and np.any(np.diff(self.bp) <= 0):
            raise NNLUTError("fixed-point breakpoints must be strictly increasing")

    # ------------------------------------------------------------------ integer core
    def eval_int(self, x: Any) -> Any:
        """Bit-exact integer evaluation of integer inputs (numpy int array or torch int tensor)."""
        if type(x).__module__.startswith("torch"):
            return self._eval_int_torch(x)
        x = np.asarray(x, dtype=np.int64)
        idx = np.searchsorted(self.bp, x, side="right")
        return _sat(accumulate(self.fmt, self.s[idx], x, self.t[idx]), self.fmt.out_bits)

    def _eval_int_torch(self, x: Any) -> Any:
        import torch

        bp, s, t = (torch.tensor(a, dtype=torch.int64, device=x.device) for a in (self.bp, self.s, self.t))
        xi = x.to(torch.int64)
        idx = torch.searchsorted(bp, xi.contiguous(), right=True)
        acc = accumulate(self.fmt, s[idx], xi, t[idx])
        lo, hi = -(2 ** (self.fmt.out_bits - 1)), 2 ** (self.fmt.out_bits - 1) - 1
        return acc.clamp(lo, hi)

    # ------------------------------------------------------------------ real values
    def quantize_input(self, u: Any) -> Any:
        f = self.fmt
        lo, hi = -(2 ** (f.in_bits - 1)), 2 ** (f.in_bits - 1) - 1
        if type(u).__module__.startswith("torch"):
            import torch

            return torch.clamp(torch.round(torch.nan_to_num(u.double() * 2.0**f.in_frac, nan=0.0)), lo, hi).to(torch.int64)
        return np.clip(np.round(np.nan_to_num(np.asarray(u, dtype=np.float64) * 2.0**f.in_frac)), lo, hi).astype(np.int64)

    def core(self, u: Any) -> Any:
        """Real-valued evaluation of the integer core (input quantised, output dequantised)."""
        y = self.eval_int(self.quantize_input(u))
        scale = 2.0 ** -self.fmt.out_frac
        if type(y).__module__.startswith("torch"):
            import torch

            return y.to(torch.float64) * scale
        return y.astype(np.float64) * scale

    def __call__(self, x: Any) -> Any:
        """Evaluate on real inputs (numpy or torch; returns the input's float dtype). Floating
        tensors go through the ``fixed`` kernel op (``nnlut.kernels``: the best registered
        backend for the tensor, with the values of :meth:`reference`)."""
        if type(x).__module__.startswith("torch") and x.is_floating_point():
            from ..kernels import fixed

            return fixed(self, x)
        return self.reference(x)

    def reference(self, x: Any) -> Any:
        """The bit-exact evaluation on real inputs in numpy or torch arithmetic (no kernel)."""
        is_torch = type(x).__module__.startswith("torch")
        if self.scaling is None:
            y = self.core(x)
        else:
            from ..core._eval import array_ops

            ops = array_ops(is_torch)
            xf = x.double() if is_torch else np.asarray(x, dtype=np.float64)
            y = _scaled(self, xf, ops)
        if is_torch:
            import torch

            y = torch.where(torch.isnan(x), x.double(), y)
            y = torch.where(x == float("inf"), torch.full_like(y, self.limits[1]), y)
            y = torch.where(x == float("-inf"), torch.full_like(y, self.limits[0]), y)
            return y.to(x.dtype if x.is_floating_point() else torch.float32)
        xa = np.asarray(x, dtype=np.float64)
        y = np.where(np.isnan(xa), np.nan, y)
        y = np.where(xa == np.inf, self.limits[1], np.where(xa == -np.inf, self.limits[0], y))
        return y.astype(np.float32) if np.asarray(x).dtype == np.float32 else y

    # ------------------------------------------------------------------ protocol
    def replace(self, **changes: Any) -> FixedTable:
        """A copy with some fields changed (validated again); caches are not carried over."""
        meta = changes.pop("meta", {k: v for k, v in self.meta.items() if not k.startswith("_")})
        return replace(self, meta=dict(meta), **changes)

    def to_dict(self) -> dict[str, Any]:
        from ..core._io import encode_limits

        return {"format": FORMAT, "version": VERSION, "function": self.function, "fmt": self.fmt.to_dict(),
                "entries": self.entries,
                "breakpoints": self.bp.tolist(), "slopes": self.s.tolist(), "intercepts": self.t.tolist(),
                "scaling": self.scaling.to_dict() if self.scaling else None, "limits": encode_limits(self.limits),
                "meta": {k: v for k, v in self.meta.items() if not k.startswith("_")},
                "source": self.source.to_dict() if self.source is not None else None}

    def save(self, path: Any) -> None:
        """Write the table as versioned JSON (``nnlut.load`` reads it back bit-exactly)."""
        from ..core._io import dumps_dict, save_text

        save_text(path, dumps_dict(self.to_dict()))


FORMAT = "nnlut.fixed-table"
VERSION = 1


def _ints(data: Any, key: str) -> np.ndarray:
    v = data.get(key)
    if not isinstance(v, list):
        raise NNLUTError(f"{key!r} must be a list of integers, got {type(v).__name__}")
    for i, e in enumerate(v):
        if isinstance(e, bool) or not isinstance(e, int):
            raise NNLUTError(f"{key!r}[{i}] must be an integer, got {e!r}")
    return np.array(v, dtype=np.int64)


def fixed_table_from_dict(data: Any) -> FixedTable:
    """Validate and build a :class:`FixedTable` from :meth:`FixedTable.to_dict`'s layout."""
    from ..core._io import check_version, decode_limits

    check_version(data, FORMAT, (VERSION,))
    fmt = FixedFormat.from_dict(data.get("fmt"))
    bp, s, t = _ints(data, "breakpoints"), _ints(data, "slopes"), _ints(data, "intercepts")
    entries = data.get("entries")
    if entries is not None and entries != len(s):
        raise NNLUTError(f"'entries' says {entries} but there are {len(s)} slopes")
    function = data.get("function")
    if function is not None and not isinstance(function, str):
        raise NNLUTError(f"'function' must be a string or null, got {function!r}")
    scaling = data.get("scaling")
    meta = data.get("meta") or {}
    if not isinstance(meta, dict):
        raise NNLUTError("'meta' must be an object")
    limits = decode_limits(data.get("limits")) or (float("nan"), float("nan"))
    source = data.get("source")
    if source is not None:
        from ..core._io import table_from_dict

        source = table_from_dict(source)
    return FixedTable(fmt, bp, s, t, function=function, scaling=Scaling.from_dict(scaling) if scaling else None,
                      limits=limits, meta=dict(meta), source=source)


register_kind(FixedTable, FORMAT, fixed_table_from_dict)  # a table kind: is_table knows it, nnlut.load reads its files


def _scaled(ft: FixedTable, x: Any, ops: Any) -> Any:
    from ..core._eval import reduce_input, restore_output

    sc = ft.scaling
    assert sc is not None
    u, j = reduce_input(sc, x, ops)
    return restore_output(sc, x, ft.core(u), j, ops)
