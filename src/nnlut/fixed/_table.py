"""Fixed-point tables: integer breakpoints, slopes and intercepts, evaluated bit-exactly.

Datapath (NN-LUT's INT32 unit): a signed ``in_bits`` input ``x`` with ``in_frac`` fractional
bits; breakpoints on the same grid; signed ``slope_bits`` slopes with ``slope_frac``
fractional bits; signed ``icpt_bits`` intercepts with ``icpt_frac`` fractional bits.

    idx = #{j : x >= bp[j]}
    acc = ((s[idx] * x) >> pshift) + t[idx]             (pshift = in_frac + slope_frac - icpt_frac)
    y   = saturate_out((acc + 2**(shift-1)) >> shift)   (round half up; shift = icpt_frac - out_frac)

``y`` has ``out_frac`` fractional bits; ``>>`` is an arithmetic (flooring) shift. With
``icpt_frac`` unset the intercept sits at the product's precision (``pshift`` = 0: the exact
INT32 multiply-add). Setting it a few guard bits above ``out_frac`` stores the intercepts at
output precision: the product is truncated to the intercept grid before the add, which costs
at most one guard LSB and makes every intercept register much narrower in hardware.

Float inputs are quantised to the input grid (round to nearest, saturating); scaled tables
keep their exact power-of-two range reduction around the integer core.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .._errors import NNLUTError
from ..core._scaling import Scaling


def _sat(v: np.ndarray, bits: int) -> np.ndarray:
    return np.clip(v, -(2 ** (bits - 1)), 2 ** (bits - 1) - 1)


@dataclass(frozen=True)
class FixedFormat:
    in_bits: int = 16
    in_frac: int = 8
    slope_bits: int = 16
    slope_frac: int = 12
    icpt_bits: int = 32
    out_bits: int = 16
    out_frac: int = 12
    icpt_frac: int | None = None  # None: in_frac + slope_frac

    def __post_init__(self) -> None:
        for f in ("in_bits", "slope_bits", "icpt_bits", "out_bits"):
            v = getattr(self, f)
            if not isinstance(v, int) or not 2 <= v <= 32:
                raise NNLUTError(f"{f} must be an integer in [2, 32], got {v!r}")
        if self.icpt_frac is not None and not isinstance(self.icpt_frac, int):
            raise NNLUTError(f"icpt_frac must be an integer or None, got {self.icpt_frac!r}")
        if self.t_frac > self.in_frac + self.slope_frac:
            raise NNLUTError(f"icpt_frac ({self.t_frac}) must be <= in_frac + slope_frac ({self.in_frac + self.slope_frac})")
        if self.shift < 0:
            raise NNLUTError(f"the intercept's fractional bits ({self.t_frac}) must be >= out_frac ({self.out_frac})")

    @property
    def t_frac(self) -> int:
        """Fractional bits of the intercepts (and of the accumulator)."""
        return self.in_frac + self.slope_frac if self.icpt_frac is None else self.icpt_frac

    @property
    def pshift(self) -> int:
        """Right shift of the product onto the intercept grid (0: exact multiply-add)."""
        return self.in_frac + self.slope_frac - self.t_frac

    @property
    def shift(self) -> int:
        """Final rounding shift from the accumulator to the output grid."""
        return self.t_frac - self.out_frac

    @property
    def in_range(self) -> tuple[float, float]:
        return -(2 ** (self.in_bits - 1)) / 2**self.in_frac, (2 ** (self.in_bits - 1) - 1) / 2**self.in_frac

    def to_dict(self) -> dict[str, int | None]:
        return dict(self.__dict__)


def accumulate(fmt: FixedFormat, s: Any, x: Any, t: Any) -> Any:
    """The unit's multiply-add and rounding shift, before saturation (numpy or torch int64)."""
    prod = s * x
    if fmt.pshift > 0:
        prod = prod >> fmt.pshift
    acc = prod + t
    if fmt.shift > 0:
        acc = (acc + (1 << (fmt.shift - 1))) >> fmt.shift
    return acc


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

    @property
    def entries(self) -> int:
        return len(self.s)

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

        key = str(x.device)
        cache = self.meta.setdefault("_torch", {})
        if key not in cache:
            cache[key] = tuple(torch.tensor(a, dtype=torch.int64, device=x.device) for a in (self.bp, self.s, self.t))
        bp, s, t = cache[key]
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
        """Evaluate on real inputs (numpy or torch; returns the input's float dtype)."""
        is_torch = type(x).__module__.startswith("torch")
        if is_torch:
            import torch

            from ..kernels import _cpu

            if _cpu.usable(x, ("float32",)):
                return _cpu.fixed(self, x)  # one fused pass, the same values as below
            if x.is_cuda and x.dtype == torch.float32:
                from ..kernels import _triton

                if _triton.usable(x):
                    return _triton.fixed(self, x)
        if self.scaling is None:
            y = self.core(x)
        else:
            from ..core._eval import _NUMPY, _TorchOps

            ops = _TorchOps() if is_torch else _NUMPY
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

    def to_dict(self) -> dict[str, Any]:
        return {"format": "nnlut.fixed-table", "version": 1, "function": self.function, "fmt": self.fmt.to_dict(),
                "breakpoints": self.bp.tolist(), "slopes": self.s.tolist(), "intercepts": self.t.tolist(),
                "scaling": self.scaling.to_dict() if self.scaling else None,
                "meta": {k: v for k, v in self.meta.items() if not k.startswith("_")}}


def _scaled(ft: FixedTable, x: Any, ops: Any) -> Any:
    from ..core._eval import reduce_input, restore_output

    sc = ft.scaling
    assert sc is not None
    u, j = reduce_input(sc, x, ops)
    return restore_output(sc, x, ft.core(u), j, ops)
