"""Fused table evaluation on CUDA tensors with Triton (optional).

One kernel evaluates a table, scaled or not, in one pass over memory with the reference
evaluation's semantics (:mod:`nnlut.core._eval`): power-of-two range reduction by exponent
arithmetic (subnormal inputs included), saturation at ``clamp`` edges, the segment index
``#{j : u >= bp[j]}`` by compare-and-count, one multiply and one add (rounded separately:
the kernel is compiled without FMA contraction), the exact power-of-two output correction,
then the special values. Half-precision inputs are computed in float32 and rounded once,
as the reference does.

Triton is imported lazily; without it (or without CUDA) :func:`available` is False and CUDA
tensors take the torch reference path. ``TRITON_INTERPRET=1`` runs the same kernel on CPU
tensors, which is how the tests check it on machines without a GPU.
"""

from __future__ import annotations

import functools
import os
from typing import TYPE_CHECKING, Any

from . import _backend
from ._pack import scaling_fields

if TYPE_CHECKING:
    import torch

    from ..core._table import Table

BLOCK = 1024


@functools.lru_cache(maxsize=1)
def _import_error() -> str | None:
    try:
        import triton  # noqa: F401
    except Exception as e:  # any import problem means: no Triton path
        return f"triton unavailable: {e}"
    return None


def interpreting() -> bool:
    """Whether Triton runs kernels in its CPU interpreter."""
    return os.environ.get("TRITON_INTERPRET", "0").strip() not in ("", "0")


_PARAMS = _backend.ParamCache()
_DTYPES = {"pwl": ("float32", "bfloat16", "float16"), "fixed": ("float32",)}


def supports(op: str, x: Any) -> bool:
    """Whether the Triton kernel of ``op`` takes ``x``: a CUDA tensor of a dtype it reads,
    with Triton importable."""
    return x.is_cuda and str(x.dtype).replace("torch.", "") in _DTYPES.get(op, ()) and _import_error() is None


def usable(x: Any) -> bool:
    """Whether table evaluation sends ``x`` to the Triton kernel: a CUDA tensor of float32,
    bfloat16 or float16, no autograd, with Triton importable."""
    import torch

    return supports("pwl", x) and not (x.requires_grad and torch.is_grad_enabled())


def _scaling_args(sc: Any) -> dict[str, Any]:
    """The kernels' compile-time scaling parameters for a Scaling (or None)."""

    mode, q, shift, odd = scaling_fields(sc)
    return {"SCALED": mode != 0, "PAPER": mode == 1, "Q": q, "SHIFT": shift, "ODD": bool(odd)}


def pwl(table: Table, x: torch.Tensor) -> torch.Tensor:
    """Evaluate ``table`` on a float32, bfloat16 or float16 tensor with the Triton kernel: a
    CUDA tensor (see :func:`usable`), or a CPU tensor under ``TRITON_INTERPRET=1``."""
    import torch
    import triton

    from ._triton_kernels import pwl_kernel

    xc = x.contiguous()
    y = torch.empty_like(xc)
    n = xc.numel()
    if n == 0:
        return y
    bp, s, t = _PARAMS.get(table, str(xc.device), lambda: tuple(
        torch.tensor(a.copy(), dtype=torch.float32, device=xc.device)
        for a in (table.breakpoints, table.slopes, table.intercepts)))
    lo, hi = table.domain if table.domain else (0.0, 0.0)
    grid = (triton.cdiv(n, BLOCK),)
    kwargs = {} if interpreting() else {"enable_fp_fusion": False}  # s*u and +t rounded separately
    bf16 = xc.dtype == torch.bfloat16
    xa, ya = (xc.view(torch.int16), y.view(torch.int16)) if bf16 else (xc, y)
    pwl_kernel[grid](xa, ya, n, bp, s, t, len(table.breakpoints), float(lo), float(hi), float(table.limits[0]),
                    float(table.limits[1]), CLAMP_LO=table.tails[0] == "clamp", CLAMP_HI=table.tails[1] == "clamp",
                    BF16=bf16, BLOCK=BLOCK, **_scaling_args(table.scaling), **kwargs)
    return y


def fixed(ft: Any, x: torch.Tensor) -> torch.Tensor | None:
    """Evaluate a fixed-point table (:class:`nnlut.fixed.FixedTable`) on a float32 tensor with
    the Triton kernel: a CUDA tensor, or a CPU tensor under ``TRITON_INTERPRET=1``; None
    (declined) for a datapath the kernel does not implement."""
    from ._pack import default_datapath

    if not default_datapath(ft):
        return None
    import torch
    import triton

    from ._triton_kernels import fixed_kernel

    f = ft.fmt
    xc = x.contiguous()
    y = torch.empty_like(xc)
    n = xc.numel()
    if n == 0:
        return y
    # one unused slot keeps the pointers valid for a 1-entry table
    bp, s, t = _PARAMS.get(ft, str(xc.device), lambda: tuple(
        torch.tensor([*a.tolist(), 0], dtype=torch.int64, device=xc.device) for a in (ft.bp, ft.s, ft.t)))
    grid = (triton.cdiv(n, BLOCK),)
    kwargs = {} if interpreting() else {"enable_fp_fusion": False}
    fixed_kernel[grid](xc, y, n, bp, s, t, len(ft.bp), float(-(2 ** (f.in_bits - 1))), float(2 ** (f.in_bits - 1) - 1),
                       2.0**f.in_frac, 2.0**-f.out_frac, float(ft.limits[0]), float(ft.limits[1]),
                       PSHIFT=f.pshift, OSHIFT=f.shift, OUT_BITS=f.out_bits, BLOCK=BLOCK, **_scaling_args(ft.scaling),
                       **kwargs)
    return y


_backend.register_backend(_backend.Backend("triton", supports, {"pwl": pwl, "fixed": fixed}, priority=30))
