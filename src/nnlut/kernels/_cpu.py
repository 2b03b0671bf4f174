"""The fused CPU kernels (``csrc/``) as a backend: thin wrappers over the C entry points.

Each wrapper takes contiguous-or-not CPU tensors and returns a fresh contiguous result with
the reference evaluation's values (bit for bit for table evaluation; row sums accumulated in
float64 for softmax and LayerNorm). The build lives in :mod:`._build`, the struct layouts in
:mod:`._pack`; the packed parameters are this backend's cache, keyed by table.
"""

from __future__ import annotations

import ctypes
import math
import weakref
from typing import Any

import torch

from . import _backend
from ._build import available, cache_dir, library, unavailable_reason
from ._pack import PackedFixed, PackedTable, default_datapath

__all__ = ["attention_softmax", "available", "cache_dir", "fixed", "flash_attention", "layernorm", "pwl", "softmax",
           "unavailable_reason", "usable"]

_PACKED = _backend.ParamCache()
# dtypes each op's kernel reads
_DTYPES: dict[str, tuple[torch.dtype, ...]] = {
    "pwl": (torch.float32, torch.bfloat16),
    "fixed": (torch.float32,),
    "softmax": (torch.float32,),
    "attention_softmax": (torch.float32,),
    "layernorm": (torch.float32,),
    "rmsnorm": (torch.float32,),
    "flash_attention": (torch.float32, torch.bfloat16),
}


def supports(op: str, x: Any) -> bool:
    """Whether the C kernel of ``op`` takes ``x``: a CPU tensor of a dtype it reads, with the
    library built."""
    return x.device.type == "cpu" and x.dtype in _DTYPES.get(op, ()) and available()


def usable(x: Any, dtypes: tuple[str, ...] = ("float32",)) -> bool:
    """Whether the fused kernels can take this tensor: a CPU tensor of one of ``dtypes``
    (names), outside autograd, with the library built."""
    return (x.device.type == "cpu" and str(x.dtype).replace("torch.", "") in dtypes
            and not (x.requires_grad and torch.is_grad_enabled()) and available())


def _threads() -> int:
    return max(1, torch.get_num_threads())


def _packed(table: Any) -> PackedTable:
    return _PACKED.get(table, "pwl32", lambda: PackedTable(table))


def pwl(table: Any, x: torch.Tensor) -> torch.Tensor:
    """``table`` on a float32 or bfloat16 CPU tensor in one pass (the reference's values:
    bfloat16 is computed in float32 and rounded once)."""
    lib = library()
    xc = x.contiguous()
    y = torch.empty_like(xc, memory_format=torch.contiguous_format)
    fn = lib.nnlut_pwl_f32 if xc.dtype == torch.float32 else lib.nnlut_pwl_bf16
    fn(_packed(table).ref, xc.data_ptr(), y.data_ptr(), xc.numel(), _threads())
    return y


# ---------------------------------------------------------------------------- eager fast path
# In plain eager calls the custom op's dispatch (schema parsing, the backend choice, key lookups)
# costs more than the kernel on small tensors. Where nothing can observe the call (no tracing,
# compiling, torch-function or dispatch mode, a plain CPU tensor), the table goes straight to
# the C entry point; every other call takes the op, which gives the same values. (The compiling
# check comes first: dynamo folds it to True and never traces the rest.)
_FAST: dict[int, tuple[Any, Any]] = {}
_LEN_DISPATCH = torch._C._len_torch_dispatch_stack
_FUNCTION_MODE = torch._C._is_torch_function_mode_enabled
_IS_COMPILING = torch.compiler.is_compiling
_IS_TRACING = torch._C._is_tracing


# the eager entry points with every argument a plain integer (a ctypes call converts those
# fastest): the parameter struct's address, x, y, n, threads
_RAW = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64, ctypes.c_int)
_RAW_FNS: dict[tuple[int, str], tuple[Any, Any]] = {}


def _raw(lib: Any, name: str) -> Any:
    """``lib``'s entry point ``name`` as a :data:`_RAW` function (cached; the library is kept)."""
    hit = _RAW_FNS.get((id(lib), name))
    if hit is None or hit[0] is not lib:
        hit = _RAW_FNS[(id(lib), name)] = (lib, _RAW(ctypes.cast(getattr(lib, name), ctypes.c_void_p).value))
    return hit[1]


def _fast_entry(table: Any, kind: str) -> int:
    """The address of ``table``'s packed parameters (packed on first use, kept alive as long as
    the table)."""
    hit = _FAST.get(id(table))
    if hit is not None and hit[0]() is table:
        return hit[2]
    lib = library()
    packed = _packed(table) if kind == "pwl" else _PACKED.get(table, "fix", lambda: PackedFixed(table, lib))
    ident = id(table)
    addr = ctypes.addressof(packed.struct)
    _FAST[ident] = (weakref.ref(table, lambda _, i=ident: _FAST.pop(i, None)), packed, addr)  # keeps its buffers alive
    return addr


def eager_pwl(table: Any, x: torch.Tensor) -> torch.Tensor | None:
    """``table(x)`` by the C kernel without the op's dispatch, or None where the op must run (see
    above; also non-contiguous tensors, other dtypes, no library)."""
    if (_IS_COMPILING() or type(x) is not torch.Tensor or not x.is_cpu or not x.is_contiguous() or _LEN_DISPATCH()
            or _FUNCTION_MODE() or _IS_TRACING()):
        return None
    name = _PWL_FAST.get(x.dtype)
    lib = library()
    if name is None or lib is None:
        return None
    addr = _fast_entry(table, "pwl")
    y = torch.empty_like(x)
    _raw(lib, name)(addr, x.data_ptr(), y.data_ptr(), x.numel(), _threads())
    return y


def eager_fixed(ft: Any, x: torch.Tensor) -> torch.Tensor | None:
    """A fixed-point table's kernel without the op's dispatch, as :func:`eager_pwl`."""
    if (_IS_COMPILING() or type(x) is not torch.Tensor or x.dtype != torch.float32 or not x.is_cpu
            or not x.is_contiguous() or _LEN_DISPATCH() or _FUNCTION_MODE() or _IS_TRACING() or not default_datapath(ft)):
        return None
    lib = library()
    if lib is None:
        return None
    addr = _fast_entry(ft, "fixed")
    y = torch.empty_like(x)
    _raw(lib, "nnlut_fixed_f32")(addr, x.data_ptr(), y.data_ptr(), x.numel(), _threads())
    return y


_PWL_FAST = {torch.float32: "nnlut_pwl_f32", torch.bfloat16: "nnlut_pwl_bf16"}


def fixed(ft: Any, x: torch.Tensor) -> torch.Tensor | None:
    """A fixed-point table (:class:`nnlut.fixed.FixedTable`) on a float32 CPU tensor in one
    pass (the values of its reference evaluation); None (declined) for a datapath the kernel
    does not implement."""
    if not default_datapath(ft):
        return None
    lib = library()
    packed = _PACKED.get(ft, "fix", lambda: PackedFixed(ft, lib))
    xc = x.contiguous()
    y = torch.empty_like(xc, memory_format=torch.contiguous_format)
    lib.nnlut_fixed_f32(packed.ref, xc.data_ptr(), y.data_ptr(), xc.numel(), _threads())
    return y


def softmax(exp: Any, reciprocal: Any, x: torch.Tensor, dim: int) -> torch.Tensor:
    """Fused LUT softmax along ``dim`` of a float32 CPU tensor (a contiguous result)."""
    lib = library()
    moved = dim not in (-1, x.dim() - 1)
    xc = (x.movedim(dim, -1) if moved else x).contiguous()
    y = torch.empty_like(xc, memory_format=torch.contiguous_format)
    cols = xc.shape[-1] if xc.dim() else 1
    rows = xc.numel() // cols if cols else 0
    if rows and cols:
        lib.nnlut_softmax_f32(_packed(exp).ref, _packed(reciprocal).ref, xc.data_ptr(), y.data_ptr(), rows, cols,
                              _threads())
    return y.movedim(-1, dim).contiguous() if moved else y


def _mask_strides(mask: torch.Tensor | None, shape: tuple[int, ...]) -> tuple[Any, tuple[int, ...]] | None:
    """The mask's pointer and broadcast strides as the kernel reads them, or None when its
    layout is not one the kernel reads (a float32 CPU 4-D mask broadcastable to ``shape``)."""
    if mask is None:
        return (None, (0, 0, 0, 0))
    if mask.dtype != torch.float32 or mask.dim() != 4 or mask.device.type != "cpu":
        return None
    m = mask[..., : shape[-1]]
    if any(ms not in (1, s) for ms, s in zip(m.shape, shape, strict=True)):
        return None
    return m.data_ptr(), tuple(st if size > 1 else 0 for st, size in zip(m.stride(), m.shape, strict=True))


def attention_softmax(exp: Any, reciprocal: Any, scores: torch.Tensor, scale: float, mask: torch.Tensor | None,
                      out: torch.Tensor | None = None) -> torch.Tensor | None:
    """``softmax_lut(scores * scale + mask[..., :keys])`` over the last dim of (batch, heads,
    queries, keys) float32 scores, written to ``out`` (a contiguous float32 tensor of that
    shape, which may be ``scores`` itself) or a fresh tensor; None when the kernel does not
    read this mask's layout."""
    lib = library()
    if scores.dim() != 4:
        return None
    ms = _mask_strides(mask, tuple(scores.shape))
    if ms is None:
        return None
    xc = scores.contiguous()
    y = torch.empty_like(xc, memory_format=torch.contiguous_format) if out is None or not out.is_contiguous() else out
    if xc.numel():
        lib.nnlut_attn_softmax_f32(_packed(exp).ref, _packed(reciprocal).ref, xc.data_ptr(), y.data_ptr(),
                                   *scores.shape, float(scale), ms[0], *ms[1], _threads())
    if out is not None and y is not out:
        out.copy_(y)
        return out
    return y


def layernorm(rsqrt: Any, x: torch.Tensor, normalized_shape: tuple[int, ...], weight: torch.Tensor | None,
              bias: torch.Tensor | None, eps: float) -> torch.Tensor | None:
    """Fused LUT LayerNorm over the trailing ``normalized_shape`` dims of a float32 CPU tensor;
    None when the weight or bias is not a float32 CPU tensor of that many values."""
    lib = library()
    cols = math.prod(normalized_shape)
    if tuple(x.shape[x.dim() - len(normalized_shape):]) != tuple(normalized_shape):
        return None
    params = []
    for p in (weight, bias):
        if p is not None and (p.dtype != torch.float32 or p.device.type != "cpu" or p.numel() != cols):
            return None
        params.append(None if p is None else p.detach().contiguous())
    xc = x.contiguous()
    y = torch.empty_like(xc, memory_format=torch.contiguous_format)
    rows = xc.numel() // cols if cols else 0
    if rows and cols:
        lib.nnlut_layernorm_f32(_packed(rsqrt).ref, xc.data_ptr(), *(0 if p is None else p.data_ptr() for p in params),
                                y.data_ptr(), rows, cols, float(eps), _threads())
    return y


def rmsnorm(rsqrt: Any, x: torch.Tensor, weight: torch.Tensor | None, eps: float,
            weight_offset: float) -> torch.Tensor | None:
    """Fused LUT RMSNorm over the last dim of a float32 CPU tensor (LLaMA style, the values of
    :func:`._reference.rmsnorm` up to the row sum's order); None when the weight is not a float32
    CPU tensor of the row's length."""
    cols = x.shape[-1] if x.dim() else 1
    if weight is not None and (weight.dtype != torch.float32 or weight.device.type != "cpu" or weight.numel() != cols
                               or weight.dim() != 1):
        return None
    lib = library()
    w = None if weight is None else weight.detach().contiguous()
    xc = x.contiguous()
    y = torch.empty_like(xc, memory_format=torch.contiguous_format)
    rows = xc.numel() // cols if cols else 0
    if rows and cols:
        lib.nnlut_rmsnorm_f32(_packed(rsqrt).ref, xc.data_ptr(), 0 if w is None else w.data_ptr(), float(weight_offset),
                              y.data_ptr(), rows, cols, float(eps), _threads())
    return y


class FlashArgs(ctypes.Structure):
    """``flash_args_t`` (``csrc/flash.h``): the tensors, shapes, strides and score options of
    one fused attention call."""

    _i64x3, _i64x4 = ctypes.c_int64 * 3, ctypes.c_int64 * 4
    _fields_ = [
        ("q", ctypes.c_void_p), ("k", ctypes.c_void_p), ("v", ctypes.c_void_p), ("o", ctypes.c_void_p),
        ("bf16", ctypes.c_int32), ("mkind", ctypes.c_int32), ("bkind", ctypes.c_int32), ("skip_ok", ctypes.c_int32),
        ("B", ctypes.c_int64), ("H", ctypes.c_int64), ("Hkv", ctypes.c_int64), ("Lq", ctypes.c_int64),
        ("Lk", ctypes.c_int64), ("D", ctypes.c_int64), ("Dv", ctypes.c_int64),
        ("qs", _i64x3), ("ks", _i64x3), ("vs", _i64x3), ("os", _i64x3), ("ms", _i64x4), ("bs", _i64x4),
        ("scale", ctypes.c_float), ("softcap", ctypes.c_float), ("lo", ctypes.c_int64), ("hi", ctypes.c_int64),
        ("mask", ctypes.c_void_p), ("bias", ctypes.c_void_p),
    ]


# the kernel reads masks as float32 / bfloat16 values or bytes (bool), biases as float32 / bfloat16
_MASK_KINDS = {torch.float32: 1, torch.bool: 2, torch.bfloat16: 3}
_BIAS_KINDS = {torch.float32: 1, torch.bfloat16: 3}


def _bcast_strides(t: torch.Tensor, shape: tuple[int, int, int, int]) -> tuple[int, ...] | None:
    """Strides of a 4-D tensor broadcast to ``shape`` (0 on broadcast dims), or None when it does
    not broadcast (its key dim may be longer: only the first ``shape[-1]`` keys are read)."""
    if t.dim() != 4:
        return None
    sizes = (*t.shape[:3], min(t.shape[3], shape[3]))
    if any(s not in (1, n) for s, n in zip(sizes, shape, strict=True)) or t.shape[3] < shape[3] and t.shape[3] != 1:
        return None
    return tuple(st if size > 1 else 0 for st, size in zip(t.stride(), sizes, strict=True))


def flash_attention(exp: Any, reciprocal: Any, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                    mask: torch.Tensor | None, bias: torch.Tensor | None, scale: float, softcap: float, lo: int, hi: int,
                    skip_ok: bool) -> torch.Tensor | None:
    """Fused LUT attention of (batch, heads, queries, dim) CPU tensors (float32 or bfloat16, one
    dtype) into a fresh (batch, queries, heads, dim_v) tensor; None (declined) for layouts the
    kernel does not read (see :mod:`nnlut.kernels._flash` for the arguments)."""
    if not (q.dtype == k.dtype == v.dtype) or q.dim() != 4 or k.dim() != 4 or v.dim() != 4:
        return None
    B, H, Lq, D = q.shape
    Hkv, Lk, Dv = k.shape[1], k.shape[2], v.shape[3]
    if k.shape[0] != B or v.shape[:3] != k.shape[:3] or k.shape[3] != D or Hkv == 0 or H % Hkv:
        return None
    shape = (B, H, Lq, Lk)
    a = FlashArgs()
    for name, t in (("mask", mask), ("bias", bias)):
        if t is None:
            continue
        kinds = _MASK_KINDS if name == "mask" else _BIAS_KINDS
        strides = _bcast_strides(t, shape) if t.device.type == "cpu" else None
        if t.dtype not in kinds or strides is None:
            return None
        setattr(a, name, t.data_ptr())
        setattr(a, "mkind" if name == "mask" else "bkind", kinds[t.dtype])
        getattr(a, "ms" if name == "mask" else "bs")[:] = strides
    q, k, v = (t if t.stride(-1) == 1 else t.contiguous() for t in (q, k, v))
    out = torch.empty(B, Lq, H, Dv, dtype=q.dtype)
    if out.numel() == 0:
        return out
    a.q, a.k, a.v, a.o = q.data_ptr(), k.data_ptr(), v.data_ptr(), out.data_ptr()
    a.bf16 = int(q.dtype == torch.bfloat16)
    a.skip_ok = int(skip_ok)
    a.B, a.H, a.Hkv, a.Lq, a.Lk, a.D, a.Dv = B, H, Hkv, Lq, Lk, D, Dv
    a.qs[:], a.ks[:], a.vs[:] = q.stride()[:3], k.stride()[:3], v.stride()[:3]
    a.os[:] = (out.stride(0), out.stride(2), out.stride(1))
    a.scale, a.softcap, a.lo, a.hi = float(scale), float(softcap), int(lo), int(hi)
    library().nnlut_flash_attn(_packed(exp).ref, _packed(reciprocal).ref, ctypes.addressof(a), _threads())
    return out


_backend.register_backend(_backend.Backend(
    "cpu", supports,
    {"pwl": pwl, "fixed": fixed, "softmax": softmax, "attention_softmax": attention_softmax, "layernorm": layernorm,
     "rmsnorm": rmsnorm, "flash_attention": flash_attention},
    priority=20,
))
