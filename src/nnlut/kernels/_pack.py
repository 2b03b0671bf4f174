"""Tables in the C kernels' struct layouts (``csrc/common.h`` ``pwl32_t``, ``csrc/fixed.h``
``fix_t``), and the one mapping from a table's scaling to the kernels' parameters."""

from __future__ import annotations

import ctypes
from typing import Any

import numpy as np


class PWL32(ctypes.Structure):
    """``pwl32_t``: a float table (float32 parameters)."""

    _fields_ = [
        ("nb", ctypes.c_int32), ("clamp_lo", ctypes.c_int32), ("clamp_hi", ctypes.c_int32),
        ("scaling", ctypes.c_int32), ("q", ctypes.c_int32), ("shift", ctypes.c_int32), ("odd", ctypes.c_int32),
        ("pad", ctypes.c_int32),
        ("lo", ctypes.c_float), ("hi", ctypes.c_float), ("lim_lo", ctypes.c_float), ("lim_hi", ctypes.c_float),
        ("bp", ctypes.c_void_p), ("s", ctypes.c_void_p), ("t", ctypes.c_void_p),
    ]


class FIX(ctypes.Structure):
    """``fix_t``: a fixed-point table (int64 parameters, an optional float32 output LUT)."""

    _fields_ = [(n, ctypes.c_int32) for n in ("nb", "scaling", "q", "shift", "odd", "pshift", "oshift", "out_bits")] + [
        ("in_lo", ctypes.c_int64), ("in_hi", ctypes.c_int64),
        ("in_scale", ctypes.c_double), ("out_scale", ctypes.c_double),
        ("lim_lo", ctypes.c_double), ("lim_hi", ctypes.c_double),
        ("bp", ctypes.c_void_p), ("s", ctypes.c_void_p), ("t", ctypes.c_void_p), ("lut", ctypes.c_void_p)]


def scaling_fields(sc: Any) -> tuple[int, int, int, int]:
    """A table's :class:`~nnlut.core._scaling.Scaling` (or None) as the kernels read it:
    (mode: 0 none, 1 paper, 2 full; q with period 2**q; output exponent change per period;
    1 for odd symmetry below zero, 0 for NaN)."""
    if sc is None:
        return 0, 1, 0, 0
    return (1 if sc.mode == "paper" else 2), sc.q, sc.shift_per_period, int(sc.negative == "odd")


class PackedTable:
    """A float table's parameters as a ``pwl32_t`` (float32), kept alive with its buffers.
    ``ref`` is what the C functions take."""

    def __init__(self, table: Any) -> None:
        self._arrays = [np.ascontiguousarray(a, dtype=np.float32) for a in (table.breakpoints, table.slopes, table.intercepts)]
        lo, hi = table.domain if table.domain else (0.0, 0.0)
        s = PWL32()
        s.nb = len(table.breakpoints)
        s.clamp_lo = int(table.tails[0] == "clamp")
        s.clamp_hi = int(table.tails[1] == "clamp")
        s.scaling, s.q, s.shift, s.odd = scaling_fields(table.scaling)
        s.lo, s.hi = lo, hi
        s.lim_lo, s.lim_hi = table.limits
        s.bp, s.s, s.t = (a.ctypes.data for a in self._arrays)
        self.struct = s
        self.ref = ctypes.byref(s)


class PackedFixed:
    """A fixed-point table (:class:`nnlut.fixed.FixedTable`) as a ``fix_t`` (int64 parameters),
    kept alive with its buffers; narrow inputs also get a precomputed output LUT."""

    LUT_MAX_BITS = 18  # a 1 MiB output table per fixed-point table, at most

    def __init__(self, ft: Any, lib: ctypes.CDLL) -> None:
        f = ft.fmt
        # one unused slot keeps the pointers valid for a 1-entry table (no breakpoints)
        self._arrays = [np.ascontiguousarray(np.append(a, 0), dtype=np.int64) for a in (ft.bp, ft.s, ft.t)]
        s = FIX()
        s.nb = len(ft.bp)
        s.scaling, s.q, s.shift, s.odd = scaling_fields(ft.scaling)
        s.pshift, s.oshift, s.out_bits = f.pshift, f.shift, f.out_bits
        s.in_lo, s.in_hi = -(2 ** (f.in_bits - 1)), 2 ** (f.in_bits - 1) - 1
        s.in_scale, s.out_scale = 2.0**f.in_frac, 2.0**-f.out_frac
        s.lim_lo, s.lim_hi = ft.limits
        s.bp, s.s, s.t = (a.ctypes.data for a in self._arrays)
        s.lut = None
        self.struct = s
        self.ref = ctypes.byref(s)
        if f.in_bits <= self.LUT_MAX_BITS and f.out_bits <= 24:
            self._lut = np.empty(2**f.in_bits, dtype=np.float32)
            lib.nnlut_fixed_lut(self.ref, self._lut.ctypes.data)
            s.lut = self._lut.ctypes.data


def default_datapath(ft: Any) -> bool:
    """Whether a fixed-point table uses the datapath the compiled kernels implement: no intercept
    shift and half-up rounding of the output (other formats take the table's own evaluation)."""
    f = ft.fmt
    return getattr(f, "tshift", 0) == 0 and getattr(f, "rounding", "half_up") == "half_up"
