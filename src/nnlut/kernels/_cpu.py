"""The fused CPU kernels (``csrc/``) as a backend: thin wrappers over the C entry points.

Each wrapper takes contiguous-or-not CPU tensors and returns a fresh contiguous result with
the reference evaluation's values (bit for bit for table evaluation; row sums accumulated in
float64 for softmax and LayerNorm). The build lives in :mod:`._build`, the struct layouts in
:mod:`._pack`; the packed parameters are this backend's cache, keyed by table.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from . import _backend
from ._build import available, cache_dir, library, unavailable_reason
from ._pack import PackedFixed, PackedTable, default_datapath

__all__ = ["attention_softmax", "available", "cache_dir", "fixed", "layernorm", "pwl", "softmax",
           "unavailable_reason", "usable"]

_PACKED = _backend.ParamCache()
# dtypes each op's kernel reads
_DTYPES: dict[str, tuple[torch.dtype, ...]] = {
    "pwl": (torch.float32, torch.bfloat16),
    "fixed": (torch.float32,),
    "softmax": (torch.float32,),
    "attention_softmax": (torch.float32,),
    "layernorm": (torch.float32,),
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


_backend.register_backend(_backend.Backend(
    "cpu", supports,
    {"pwl": pwl, "fixed": fixed, "softmax": softmax, "attention_softmax": attention_softmax, "layernorm": layernorm},
    priority=20,
))
