"""Tables with FP16 or BF16 parameters and a multiply-add in that format.

The breakpoints, slopes and intercepts are rounded to the format (round to nearest even); the
input is rounded to it (finite values beyond the format's range saturate at its largest
finite value); the product and the sum are each rounded to the format, as a half-precision
MAC would. The source float table supplies the domain, tails, limits and range reduction.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from .._errors import NNLUTError
from ..core._io import register_kind
from ..core._table import Table

# precision -> (significand bits with the hidden one, smallest normal exponent, largest finite value)
_FORMATS = {"fp16": (11, -14, 65504.0), "bf16": (8, -126, float(np.ldexp(2.0 - 2.0**-7, 127)))}


def round_to(x: Any, precision: str) -> np.ndarray:
    """Round float64 values to ``precision`` (``fp16`` or ``bf16``), nearest even, returned as
    float64; overflow gives +-inf and NaN stays NaN."""
    if precision not in _FORMATS:
        raise NNLUTError(f"precision {precision!r} is unknown; allowed: {', '.join(_FORMATS)}")
    x = np.asarray(x, dtype=np.float64)
    if precision == "fp16":
        with np.errstate(over="ignore"):
            return x.astype(np.float16).astype(np.float64)
    bits, emin, big = _FORMATS[precision]
    with np.errstate(all="ignore"):
        _, e = np.frexp(x)
        e = np.maximum(e - 1, emin)  # exponent of the leading bit; subnormals keep emin's grid
        q = np.ldexp(np.round(np.ldexp(x, bits - 1 - e)), e - (bits - 1))
        q = np.where(np.abs(q) > big, np.copysign(np.inf, x), q)
    return np.where(np.isfinite(x), q, x)


@dataclass(frozen=True, eq=False)
class HalfTable:
    """A table with ``precision`` (``"fp16"`` or ``"bf16"``) parameters and arithmetic.
    ``bp``, ``s``, ``t``: float64 arrays holding values exact in that precision (N-1, N, N)."""

    bp: np.ndarray
    s: np.ndarray
    t: np.ndarray
    source: Table
    precision: str = "fp16"
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.precision not in _FORMATS:
            raise NNLUTError(f"precision {self.precision!r} is unknown; allowed: {', '.join(_FORMATS)}")
        for name in ("bp", "s", "t"):
            arr = np.asarray(getattr(self, name), dtype=np.float64)
            if not np.array_equal(arr, round_to(arr, self.precision), equal_nan=True):
                raise NNLUTError(f"{name} holds values that are not exact in {self.precision}")
            object.__setattr__(self, name, arr)
        if len(self.bp) != len(self.s) - 1 or len(self.s) != len(self.t):
            raise NNLUTError("a half-precision table needs N-1 breakpoints, N slopes and N intercepts")
        if len(self.bp) > 1 and np.any(np.diff(self.bp) <= 0):
            raise NNLUTError("breakpoints must be strictly increasing")

    @property
    def entries(self) -> int:
        return len(self.s)

    @property
    def number_format(self) -> str:
        """The number format it evaluates in (``fp16`` or ``bf16``)."""
        return self.precision

    @property
    def function(self) -> str | None:
        return self.source.function

    @property
    def scaling(self) -> Any:
        """The source table's input range reduction (None: unscaled)."""
        return self.source.scaling

    @property
    def limits(self) -> tuple[float, float]:
        return self.source.limits

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, HalfTable):
            return NotImplemented
        return (self.precision == other.precision and self.source == other.source
                and all(np.array_equal(a, b) for a, b in ((self.bp, other.bp), (self.s, other.s), (self.t, other.t))))

    __hash__ = None  # type: ignore[assignment]  # arrays inside

    def core(self, u: Any) -> np.ndarray:
        """The half-precision datapath on real inputs (float64 in, float64 values exact in the format out)."""
        big = _FORMATS[self.precision][2]
        x = round_to(np.clip(np.asarray(u, dtype=np.float64), -big, big), self.precision)
        idx = np.searchsorted(self.bp, x, side="right")
        return round_to(round_to(self.s[idx] * x, self.precision) + self.t[idx], self.precision)

    def __call__(self, x: Any) -> Any:
        """Evaluate on numpy arrays or torch tensors (returns the input's float dtype)."""
        tab = self.source
        is_torch = type(x).__module__.startswith("torch")
        arr = x.detach().cpu().double().numpy() if is_torch else np.asarray(x, dtype=np.float64)
        if tab.scaling is None:
            clamped = arr
            if tab.domain is not None:
                lo, hi = tab.domain
                clamped = np.clip(arr, lo if tab.tails[0] == "clamp" else -np.inf, hi if tab.tails[1] == "clamp" else np.inf)
            y = self.core(clamped)
        else:
            from ..core._eval import reduce_input, restore_output

            lo, hi = tab.domain  # type: ignore[misc]
            with np.errstate(all="ignore"):
                u, j = reduce_input(tab.scaling, arr)
                y = restore_output(tab.scaling, arr, self.core(np.clip(u, lo, hi)), j)
        y = np.where(np.isnan(arr), np.nan, y)
        y = np.where(arr == np.inf, tab.limits[1], np.where(arr == -np.inf, tab.limits[0], y))
        if is_torch:
            import torch

            return torch.from_numpy(y).to(device=x.device, dtype=x.dtype if x.is_floating_point() else torch.float32)
        return y.astype(np.float32) if np.asarray(x).dtype == np.float32 else y

    # ------------------------------------------------------------------ protocol
    def replace(self, **changes: Any) -> HalfTable:
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return {"format": FORMAT, "version": VERSION, "precision": self.precision, "entries": self.entries,
                "breakpoints": self.bp.tolist(), "slopes": self.s.tolist(), "intercepts": self.t.tolist(),
                "source": self.source.to_dict(), "meta": dict(self.meta)}

    def save(self, path: Any) -> None:
        """Write the table as versioned JSON (``nnlut.load`` reads it back bit-exactly)."""
        from ..core._io import dumps_dict, save_text

        save_text(path, dumps_dict(self.to_dict()))


FORMAT = "nnlut.half-table"
VERSION = 1


def half_table_from_dict(data: Any) -> HalfTable:
    """Validate and build a :class:`HalfTable` from :meth:`HalfTable.to_dict`'s layout."""
    from ..core._io import check_version, table_from_dict

    check_version(data, FORMAT, (VERSION,))
    arrays = []
    for key in ("breakpoints", "slopes", "intercepts"):
        v = data.get(key)
        if not isinstance(v, list) or not all(isinstance(e, (int, float)) and not isinstance(e, bool) for e in v):
            raise NNLUTError(f"{key!r} must be a list of numbers")
        arrays.append(np.array(v, dtype=np.float64))
    meta = data.get("meta") or {}
    if not isinstance(meta, dict):
        raise NNLUTError("'meta' must be an object")
    return HalfTable(*arrays, source=table_from_dict(data.get("source")), precision=data.get("precision", "fp16"),
                     meta=dict(meta))


def to_half(table: Table, precision: str = "fp16") -> HalfTable:
    """Round a float table's parameters to ``precision`` (``"fp16"`` or ``"bf16"``);
    breakpoints that collide are merged."""
    if not isinstance(table, Table):
        raise NNLUTError(f"to_half takes a float nnlut.Table, got {type(table).__name__}")
    bp = round_to(table.breakpoints, precision)
    keep = np.diff(bp, append=np.inf) > 0  # of equal breakpoints the last one stays: the segments between are empty
    seg_keep = np.concatenate([[0], 1 + np.flatnonzero(keep)])
    return HalfTable(bp[keep], round_to(table.slopes[seg_keep], precision), round_to(table.intercepts[seg_keep], precision),
                     table, precision)


def to_fp16(table: Table) -> HalfTable:
    """Round a table's parameters to FP16 (breakpoints that collide are merged)."""
    return to_half(table, "fp16")


register_kind(HalfTable, FORMAT, half_table_from_dict)  # a table kind: is_table knows it, nnlut.load reads its files
