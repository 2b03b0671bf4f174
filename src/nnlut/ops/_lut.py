"""Transformer operations built from tables (functional forms).

Each function takes torch tensors and the tables it uses; half-precision inputs are computed
in float32 and returned in their dtype, as PyTorch's own kernels do.

- ``lut_gelu(x, gelu)`` / ``lut_silu(x, silu)``: one table.
- ``lut_softmax(x, dim, exp, reciprocal)``: subtract the row max, exp table, row sum,
  reciprocal table on the sum, multiply.
- ``lut_layernorm(x, shape, weight, bias, eps, rsqrt)``: mean and variance in ordinary
  arithmetic, rsqrt table on ``var + eps`` (input scaling covers its range), affine.
- ``lut_rmsnorm(x, weight, eps, rsqrt)``: mean square, rsqrt table, scale.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch

Unary = Callable[[torch.Tensor], torch.Tensor]


def _compute_dtype(x: torch.Tensor) -> torch.dtype:
    return x.dtype if x.dtype in (torch.float32, torch.float64) else torch.float32


def lut_activation(x: torch.Tensor, table: Unary) -> torch.Tensor:
    """Elementwise activation through one table (GELU, SiLU, ...)."""
    return table(x)


lut_gelu = lut_activation
lut_silu = lut_activation


def lut_softmax(x: torch.Tensor, dim: int, exp: Unary, reciprocal: Unary) -> torch.Tensor:
    """Softmax along ``dim`` from an exp table and a reciprocal table.

    Masking: entries at -inf or at the dtype's most negative value (HuggingFace's additive
    mask) are at least 2**100 below the row max, where the exp table is exactly 0, so they get
    probability 0. A row with one finite entry never gives NaN (the max entry contributes
    exp(0) ~ 1 to the sum). A fully masked row behaves as ``torch.softmax``: all entries at
    the dtype's minimum give a uniform row, all at -inf give NaN.
    """
    if x.numel() == 0:  # an empty row (or no rows): nothing to normalise, as torch.softmax
        return torch.empty_like(x)
    xf = x.to(_compute_dtype(x))
    if xf.dtype == torch.float32 and _both_tables(exp, reciprocal):
        from ..kernels import _cpu

        if _cpu.usable(xf):
            return _cpu.softmax_f32(exp, reciprocal, xf, dim).to(x.dtype)  # type: ignore[arg-type]
    m = xf.amax(dim=dim, keepdim=True)
    e = exp(xf - m)
    s = e.sum(dim=dim, keepdim=True)
    return (e * reciprocal(s)).to(x.dtype)


def _both_tables(*fns: Any) -> bool:
    from ..core._table import Table

    return all(isinstance(f, Table) for f in fns)


def lut_layernorm(
    x: torch.Tensor,
    normalized_shape: Sequence[int],
    weight: torch.Tensor | None,
    bias: torch.Tensor | None,
    eps: float,
    rsqrt: Unary,
) -> torch.Tensor:
    """LayerNorm over the trailing ``normalized_shape`` dims with an rsqrt table.

    A constant row (zero variance) gives ``bias`` (or 0), as PyTorch does: the centred values
    are exactly 0 and the table's value at ``eps`` is finite. On CPU float32 the fused kernel
    accumulates the mean and variance in float64 (the reference path sums in float32), so the
    two agree to a few float32 ulps of the output.
    """
    dims = tuple(range(-len(normalized_shape), 0))
    xf = x.to(_compute_dtype(x))
    if xf.dtype == torch.float32 and _both_tables(rsqrt) and tuple(xf.shape[len(xf.shape) - len(dims):]) == tuple(
            normalized_shape):
        from ..kernels import _cpu

        if _cpu.usable(xf) and not any(p is not None and p.requires_grad and torch.is_grad_enabled()
                                       for p in (weight, bias)):
            y = _cpu.layernorm_f32(rsqrt, xf, math.prod(normalized_shape), weight, bias, eps)  # type: ignore[arg-type]
            if y is not None:
                return y.to(x.dtype)
    mean = xf.mean(dim=dims, keepdim=True)
    d = xf - mean
    var = (d * d).mean(dim=dims, keepdim=True)
    y = d * rsqrt(var + eps)
    if weight is not None:
        y = y * weight.to(y.dtype)
    if bias is not None:
        y = y + bias.to(y.dtype)
    return y.to(x.dtype)


def lut_rmsnorm(x: torch.Tensor, weight: torch.Tensor | None, eps: float, rsqrt: Unary,
                weight_offset: float = 0.0) -> torch.Tensor:
    """RMSNorm over the last dim, LLaMA style: the normalised value is computed in float32,
    cast back to the input dtype, then scaled by ``weight_offset + weight``."""
    xf = x.to(torch.float32) if x.dtype != torch.float64 else x
    y = (xf * rsqrt((xf * xf).mean(dim=-1, keepdim=True) + eps)).to(x.dtype)
    return y if weight is None else (weight + weight_offset) * y


def exact_softmax(x: torch.Tensor, dim: int) -> torch.Tensor:
    return torch.softmax(x.to(_compute_dtype(x)), dim=dim).to(x.dtype)


def exact_layernorm(x: torch.Tensor, normalized_shape: Sequence[int], weight: Any, bias: Any, eps: float) -> torch.Tensor:
    return torch.nn.functional.layer_norm(x, tuple(normalized_shape), weight, bias, eps)


def exact_rmsnorm(x: torch.Tensor, weight: torch.Tensor | None, eps: float, weight_offset: float = 0.0) -> torch.Tensor:
    return lut_rmsnorm(x, weight, eps, torch.rsqrt, weight_offset)
