"""Build and call the fused CPU kernels (``nnlut_kernels.c``) through ctypes.

The C source is compiled once per machine with the system C compiler into nnlut's cache
folder (``$NNLUT_CACHE`` or ``~/.cache/nnlut``), keyed by the source, the compiler and the
CPU's instruction set. Without a working compiler, or with ``NNLUT_KERNELS=0``, ``available()``
is False and callers use the reference evaluation.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._logging import logger

if TYPE_CHECKING:
    import torch

    from ..core._table import Table

_SRC = Path(__file__).with_name("nnlut_kernels.c")
_LOCK = threading.Lock()
_LIB: ctypes.CDLL | None = None
_FAILED: str | None = None


class _PWL32(ctypes.Structure):
    _fields_ = [
        ("nb", ctypes.c_int32), ("clamp_lo", ctypes.c_int32), ("clamp_hi", ctypes.c_int32),
        ("scaling", ctypes.c_int32), ("q", ctypes.c_int32), ("shift", ctypes.c_int32), ("odd", ctypes.c_int32),
        ("pad", ctypes.c_int32),
        ("lo", ctypes.c_float), ("hi", ctypes.c_float), ("lim_lo", ctypes.c_float), ("lim_hi", ctypes.c_float),
        ("bp", ctypes.c_void_p), ("s", ctypes.c_void_p), ("t", ctypes.c_void_p),
    ]


def cache_dir() -> Path:
    return Path(os.environ.get("NNLUT_CACHE") or Path.home() / ".cache" / "nnlut")


def _cpu_flags() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "Features")):
                return line
    except OSError:
        pass
    return platform.processor()


def _build() -> ctypes.CDLL:
    cc = os.environ.get("CC") or shutil.which("gcc") or shutil.which("cc")
    if cc is None:
        raise RuntimeError("no C compiler (gcc/cc) found")
    flags = ["-O3", "-march=native", "-ffp-contract=off", "-fno-math-errno", "-fopenmp", "-shared", "-fPIC", "-std=c99"]
    # extra flags, e.g. -mno-avx512f to build (and test) the portable path on an AVX-512 machine
    flags += os.environ.get("NNLUT_KERNELS_FLAGS", "").split()
    key = hashlib.sha256(_SRC.read_bytes() + " ".join([cc, *flags, platform.machine(), _cpu_flags()]).encode()).hexdigest()[:16]
    out_dir = cache_dir() / "kernels"
    lib_path = out_dir / f"nnlut_kernels_{key}.so"
    if not lib_path.exists():
        out_dir.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(suffix=".so", dir=out_dir)
        os.close(fd)
        try:
            res = subprocess.run([cc, *flags, str(_SRC), "-o", tmp, "-lm"], capture_output=True, text=True)
            if res.returncode != 0:
                raise RuntimeError(f"compiling the nnlut kernels failed: {res.stderr.strip()[:500]}")
            os.replace(tmp, lib_path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    lib = ctypes.CDLL(str(lib_path))
    lib.nnlut_pwl_f32.argtypes = [ctypes.POINTER(_PWL32), ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64, ctypes.c_int]
    lib.nnlut_pwl_f32.restype = None
    lib.nnlut_pwl_bf16.argtypes = [ctypes.POINTER(_PWL32), ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64, ctypes.c_int]
    lib.nnlut_pwl_bf16.restype = None
    lib.nnlut_softmax_f32.argtypes = [ctypes.POINTER(_PWL32), ctypes.POINTER(_PWL32), ctypes.c_void_p, ctypes.c_void_p,
                                      ctypes.c_int64, ctypes.c_int64, ctypes.c_int]
    lib.nnlut_softmax_f32.restype = None
    lib.nnlut_attn_softmax_f32.argtypes = [ctypes.POINTER(_PWL32), ctypes.POINTER(_PWL32), ctypes.c_void_p,
                                           ctypes.c_void_p] + [ctypes.c_int64] * 4 + [ctypes.c_float, ctypes.c_void_p] \
        + [ctypes.c_int64] * 4 + [ctypes.c_int]
    lib.nnlut_attn_softmax_f32.restype = None
    lib.nnlut_layernorm_f32.argtypes = [ctypes.POINTER(_PWL32), ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p,
                                        ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64, ctypes.c_float, ctypes.c_int]
    lib.nnlut_layernorm_f32.restype = None
    lib.nnlut_fixed_f32.argtypes = [ctypes.POINTER(_FIX), ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64, ctypes.c_int]
    lib.nnlut_fixed_f32.restype = None
    lib.nnlut_fixed_lut.argtypes = [ctypes.POINTER(_FIX), ctypes.c_void_p]
    lib.nnlut_fixed_lut.restype = None
    if lib.nnlut_kernels_abi() != 2:
        raise RuntimeError("nnlut kernels ABI mismatch")
    return lib


def library() -> ctypes.CDLL | None:
    """The compiled kernels, or None (with the reason logged once) when unavailable."""
    global _LIB, _FAILED
    if _LIB is not None or _FAILED is not None:
        return _LIB
    with _LOCK:
        if _LIB is None and _FAILED is None:
            if os.environ.get("NNLUT_KERNELS", "1").strip() in ("0", "false", "off", "no"):
                _FAILED = "disabled by NNLUT_KERNELS=0"
            else:
                try:
                    _LIB = _build()
                except Exception as e:  # any build/load problem means: use the reference path
                    _FAILED = str(e)
                    logger.warning("nnlut fused CPU kernels unavailable, using the reference evaluation: %s", e)
    return _LIB


def available() -> bool:
    return library() is not None


def unavailable_reason() -> str | None:
    library()
    return _FAILED


def scaling_fields(sc: Any) -> tuple[int, int, int, int]:
    """A table's :class:`~nnlut.core._scaling.Scaling` (or None) as the kernels read it:
    (mode: 0 none, 1 paper, 2 full; q with period 2**q; output exponent change per period;
    1 for odd symmetry below zero, 0 for NaN)."""
    if sc is None:
        return 0, 1, 0, 0
    return (1 if sc.mode == "paper" else 2), sc.q, sc.shift_per_period, int(sc.negative == "odd")


class PackedTable:
    """A table's parameters in the C struct layout (float32), kept alive with their buffers."""

    def __init__(self, table: Table) -> None:
        import numpy as np

        self._arrays = [np.ascontiguousarray(a, dtype=np.float32) for a in (table.breakpoints, table.slopes, table.intercepts)]
        lo, hi = table.domain if table.domain else (0.0, 0.0)
        s = _PWL32()
        s.nb = len(table.breakpoints)
        s.clamp_lo = int(table.tails[0] == "clamp")
        s.clamp_hi = int(table.tails[1] == "clamp")
        s.scaling, s.q, s.shift, s.odd = scaling_fields(table.scaling)
        s.lo, s.hi = lo, hi
        s.lim_lo, s.lim_hi = table.limits
        s.bp, s.s, s.t = (a.ctypes.data for a in self._arrays)
        self.struct = s
        self.ref = ctypes.byref(s)


class _FIX(ctypes.Structure):
    _fields_ = [(n, ctypes.c_int32) for n in ("nb", "scaling", "q", "shift", "odd", "pshift", "oshift", "out_bits")] + [
        ("in_lo", ctypes.c_int64), ("in_hi", ctypes.c_int64),
        ("in_scale", ctypes.c_double), ("out_scale", ctypes.c_double),
        ("lim_lo", ctypes.c_double), ("lim_hi", ctypes.c_double),
        ("bp", ctypes.c_void_p), ("s", ctypes.c_void_p), ("t", ctypes.c_void_p), ("lut", ctypes.c_void_p)]


class PackedFixed:
    """A fixed-point table in the C struct layout (int64 parameters), kept alive with its buffers."""

    LUT_MAX_BITS = 18  # a 1 MiB output table per fixed-point table, at most

    def __init__(self, ft: Any, lib: ctypes.CDLL) -> None:
        import numpy as np

        f = ft.fmt
        # one unused slot keeps the pointers valid for a 1-entry table (no breakpoints)
        self._arrays = [np.ascontiguousarray(np.append(a, 0), dtype=np.int64) for a in (ft.bp, ft.s, ft.t)]
        s = _FIX()
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


def fixed(ft: Any, x: torch.Tensor) -> torch.Tensor:
    """Evaluate a fixed-point table (:class:`nnlut.fixed.FixedTable`) on a float32 CPU tensor in
    one pass (the values of its reference evaluation)."""
    import torch

    lib = library()
    assert lib is not None
    packed = ft.meta.get("_packed_c")
    if packed is None:
        packed = ft.meta["_packed_c"] = PackedFixed(ft, lib)
    xc = x.contiguous()
    y = torch.empty_like(xc)
    lib.nnlut_fixed_f32(packed.ref, xc.data_ptr(), y.data_ptr(), xc.numel(), _threads())
    return y


def _packed(table: Table) -> PackedTable:
    cache = table._torch_cache
    hit = cache.get("packed32")
    if hit is None:
        hit = cache["packed32"] = PackedTable(table)
    return hit  # type: ignore[return-value]


def _threads() -> int:
    import torch

    return max(1, torch.get_num_threads())


def pwl(table: Table, x: torch.Tensor) -> torch.Tensor:
    """Evaluate ``table`` on a float32 or bfloat16 CPU tensor in one pass (the reference's
    values: bfloat16 is computed in float32 and rounded once)."""
    import torch

    lib = library()
    assert lib is not None
    xc = x.contiguous()
    y = torch.empty_like(xc)
    fn = lib.nnlut_pwl_f32 if xc.dtype == torch.float32 else lib.nnlut_pwl_bf16
    fn(_packed(table).ref, xc.data_ptr(), y.data_ptr(), xc.numel(), _threads())
    return y


def softmax_f32(exp: Table, reciprocal: Table, x: torch.Tensor, dim: int) -> torch.Tensor:
    """Fused LUT softmax along ``dim`` of a float32 CPU tensor."""
    import torch

    lib = library()
    assert lib is not None
    moved = dim not in (-1, x.dim() - 1)
    xt = x.movedim(dim, -1) if moved else x
    xc = xt.contiguous()
    y = torch.empty_like(xc)
    cols = xc.shape[-1] if xc.dim() else 1
    rows = xc.numel() // cols if cols else 0
    if rows and cols:
        lib.nnlut_softmax_f32(_packed(exp).ref, _packed(reciprocal).ref, xc.data_ptr(), y.data_ptr(), rows, cols,
                              _threads())
    return y.movedim(-1, dim) if moved else y


def attention_softmax_f32(exp: Table, reciprocal: Table, scores: torch.Tensor, scale: float,
                          mask: torch.Tensor | None, inplace: bool = False) -> torch.Tensor | None:
    """Fused ``softmax_lut(scores * scale + mask)`` over the last dim of (batch, heads, queries,
    keys) float32 scores; None when the mask's layout is not one it reads directly.
    ``inplace``: write the result over ``scores`` when it is contiguous (it saves a fresh
    allocation, whose page faults cost as much as the softmax itself)."""
    import torch

    lib = library()
    assert lib is not None
    if scores.dim() != 4:
        return None
    b, h, q, k = scores.shape
    xc = scores.contiguous()
    mptr, strides = None, (0, 0, 0, 0)
    if mask is not None:
        if mask.dtype != torch.float32 or mask.dim() != 4 or mask.device.type != "cpu":
            return None
        m = mask[..., :k]
        if any(ms not in (1, s) for ms, s in zip(m.shape, (b, h, q, k), strict=False)):
            return None
        strides = tuple(st if size > 1 else 0 for st, size in zip(m.stride(), m.shape, strict=False))
        mptr = m.data_ptr()
        keep = m
    y = xc if inplace and xc.data_ptr() == scores.data_ptr() else torch.empty_like(xc)
    lib.nnlut_attn_softmax_f32(_packed(exp).ref, _packed(reciprocal).ref, xc.data_ptr(), y.data_ptr(), b, h, q, k,
                               float(scale), mptr, *strides, _threads())
    if mask is not None:
        del keep
    return y


def layernorm_f32(rsqrt: Table, x: torch.Tensor, cols: int, weight: torch.Tensor | None, bias: torch.Tensor | None,
                  eps: float) -> torch.Tensor | None:
    """Fused LUT LayerNorm over the trailing ``cols`` values of a float32 CPU tensor; None when
    the weight or bias is not a float32 CPU tensor of ``cols`` values."""
    import torch

    lib = library()
    assert lib is not None
    params = []
    for p in (weight, bias):
        if p is None:
            params.append(None)
            continue
        if p.dtype != torch.float32 or p.device.type != "cpu" or p.numel() != cols:
            return None
        params.append(p.detach().contiguous())
    xc = x.contiguous()
    y = torch.empty_like(xc)
    rows = xc.numel() // cols if cols else 0
    if rows and cols:
        lib.nnlut_layernorm_f32(_packed(rsqrt).ref, xc.data_ptr(), *(0 if p is None else p.data_ptr() for p in params),
                                y.data_ptr(), rows, cols, float(eps), _threads())
    return y


def usable(x: Any, dtypes: tuple[str, ...] = ("float32",)) -> bool:
    """Whether the fused kernels can take this tensor (a CPU tensor of one of ``dtypes``,
    no autograd)."""
    import torch

    return (x.device.type == "cpu" and str(x.dtype).replace("torch.", "") in dtypes
            and not (x.requires_grad and torch.is_grad_enabled()) and available())
