"""Transformer operations built from tables (functional forms).

Each function takes torch tensors and the tables it uses; half-precision inputs are computed
in float32 and returned in their dtype, as PyTorch's own kernels do. With float tables
(:class:`~nnlut.core.Table`) each call is one custom op (``torch.ops.nnlut.*``, see
:mod:`nnlut.kernels`), which ``torch.compile``, ``torch.export`` and ``torch.jit.trace`` see
as one node. Other tables (fixed point, FP16/BF16 parameters) are evaluated by their own op
inside the composite form; any other callable (a reference evaluation, ``torch.exp``) is
called as it is.

- ``lut_activation(x, table)``: one table (GELU, SiLU, ...).
- ``lut_softmax(x, dim, exp, reciprocal)``: subtract the row max, exp table, row sum,
  reciprocal table on the sum, multiply.
- ``lut_attention_softmax(scores, scale, mask, exp, reciprocal)``: the same on
  ``scores * scale + mask`` in one pass.
- ``lut_layernorm(x, shape, weight, bias, eps, rsqrt)``: mean and variance in ordinary
  arithmetic, rsqrt table on ``var + eps`` (input scaling covers its range), affine.
- ``lut_rmsnorm(x, weight, eps, rsqrt)``: mean square, rsqrt table, scale.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

from .. import kernels
from ..core._table import Table
from ..kernels import _reference

Unary = Callable[[torch.Tensor], torch.Tensor]


def _as_fn(table: Any) -> Unary:
    """``table`` as a callable on tensors: float tables and fixed-point tables through their
    op, anything else as it is."""
    if isinstance(table, Table):
        return lambda x: kernels.pwl(table, x)
    if kernels.is_fixed_table(table):
        return lambda x: kernels.fixed(table, x)
    if kernels.is_half_table(table):
        return lambda x: kernels.half(table, x)
    return table


def _all_tables(*tables: Any) -> bool:
    return all(isinstance(t, Table) for t in tables)


def lut_activation(x: torch.Tensor, table: Unary) -> torch.Tensor:
    """Elementwise activation through one table (GELU, SiLU, ...): a tensor of ``x``'s shape
    and dtype."""
    return _as_fn(table)(x)


def lut_softmax(x: torch.Tensor, dim: int, exp: Unary, reciprocal: Unary) -> torch.Tensor:
    """Softmax along ``dim`` from an exp table and a reciprocal table.

    Masking: entries at -inf or at the dtype's most negative value (HuggingFace's additive
    mask) are at least 2**100 below the row max, where the exp table is exactly 0, so they get
    probability 0. A row with one finite entry never gives NaN (the max entry contributes
    exp(0) ~ 1 to the sum). A fully masked row behaves as ``torch.softmax``: all entries at
    the dtype's minimum give a uniform row, all at -inf give NaN. On CPU float32 the fused
    kernel sums the row in float64 (float32 in the composite form): the two agree to rounding.
    """
    if _all_tables(exp, reciprocal):
        return kernels.softmax(x, dim, exp, reciprocal)
    return _reference.softmax(x, dim, _as_fn(exp), _as_fn(reciprocal))


def lut_attention_softmax(scores: torch.Tensor, scale: float, mask: torch.Tensor | None, exp: Unary,
                          reciprocal: Unary, inplace: bool = False) -> torch.Tensor:
    """``lut_softmax(scores * scale + mask[..., :keys], -1, exp, reciprocal)`` for (batch,
    heads, queries, keys) scores and an additive float mask broadcastable to them (or None).
    ``inplace``: overwrite ``scores`` (a contiguous temporary) with the result, which saves an
    allocation; ``scores`` is returned then."""
    if _all_tables(exp, reciprocal):
        return kernels.attention_softmax(scores, scale, mask, exp, reciprocal, inplace=inplace)
    return _reference.attention_softmax(scores, scale, mask, _as_fn(exp), _as_fn(reciprocal))


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
    accumulates the mean and variance in float64 (the composite form sums in float32), so the
    two agree to a few float32 ulps of the output.
    """
    if _all_tables(rsqrt):
        return kernels.layernorm(x, normalized_shape, weight, bias, eps, rsqrt)
    return _reference.layernorm(x, normalized_shape, weight, bias, eps, _as_fn(rsqrt))


def lut_rmsnorm(x: torch.Tensor, weight: torch.Tensor | None, eps: float, rsqrt: Unary,
                weight_offset: float = 0.0) -> torch.Tensor:
    """RMSNorm over the last dim, LLaMA style: the normalised value is computed in float32,
    cast back to the input dtype, then scaled by ``weight_offset + weight``."""
    if _all_tables(rsqrt):
        return kernels.rmsnorm(x, weight, eps, rsqrt, weight_offset)
    return _reference.rmsnorm(x, weight, eps, _as_fn(rsqrt), weight_offset)


def exact_softmax(x: torch.Tensor, dim: int) -> torch.Tensor:
    """``torch.softmax`` computed in float32 (or float64) and returned in ``x``'s dtype."""
    return torch.softmax(x.to(_reference.compute_dtype(x)), dim=dim).to(x.dtype)


def exact_layernorm(x: torch.Tensor, normalized_shape: Sequence[int], weight: Any, bias: Any, eps: float) -> torch.Tensor:
    """``torch.nn.functional.layer_norm``."""
    return torch.nn.functional.layer_norm(x, tuple(normalized_shape), weight, bias, eps)


def exact_rmsnorm(x: torch.Tensor, weight: torch.Tensor | None, eps: float, weight_offset: float = 0.0) -> torch.Tensor:
    """RMSNorm as :func:`lut_rmsnorm` with ``torch.rsqrt``."""
    return _reference.rmsnorm(x, weight, eps, torch.rsqrt, weight_offset)
