"""The pure-torch reference backend, and the composite forms of the row ops on any callables.

The composites (:func:`softmax`, :func:`attention_softmax`, :func:`layernorm`,
:func:`rmsnorm`) take the tables as plain callables, so they also serve callers that pass
something other than a table (a reference evaluation, ``torch.exp``) and autograd (every
step is differentiable). As a backend, tables are evaluated through the best backend that
takes the tensor (:func:`table_fn`), and everything else is ordinary torch arithmetic.

Half-precision inputs are computed in float32 and returned in their dtype, as PyTorch's own
kernels do.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

from . import _backend

Unary = Callable[[torch.Tensor], torch.Tensor]


def compute_dtype(x: torch.Tensor) -> torch.dtype:
    """float32 and float64 are computed as they are, other floating dtypes in float32."""
    return x.dtype if x.dtype in (torch.float32, torch.float64) else torch.float32


def table_fn(table: Any, op: str = "pwl") -> Unary:
    """``table`` as a callable that evaluates through the best backend for each tensor."""
    return lambda u: _backend.run(op, u, table, u)


def softmax(x: torch.Tensor, dim: int, exp: Unary, reciprocal: Unary) -> torch.Tensor:
    """Softmax along ``dim``: subtract the row max, exp, row sum, reciprocal of the sum,
    multiply. Entries at -inf or the dtype's minimum (additive masks) are far enough below the
    max that the exp table gives exactly 0."""
    if x.numel() == 0:  # an empty row (or no rows): nothing to normalise, as torch.softmax
        return torch.empty_like(x)
    xf = x.to(compute_dtype(x))
    m = xf.amax(dim=dim, keepdim=True)
    e = exp(xf - m)
    s = e.sum(dim=dim, keepdim=True)
    return (e * reciprocal(s)).to(x.dtype)


def attention_softmax(scores: torch.Tensor, scale: float, mask: torch.Tensor | None, exp: Unary,
                      reciprocal: Unary) -> torch.Tensor:
    """``softmax(scores * scale + mask[..., :keys])`` over the last dim."""
    s = scores * scale
    if mask is not None:
        s = s + mask[..., : scores.shape[-1]]
    return softmax(s, -1, exp, reciprocal)


def layernorm(x: torch.Tensor, normalized_shape: Sequence[int], weight: torch.Tensor | None,
              bias: torch.Tensor | None, eps: float, rsqrt: Unary) -> torch.Tensor:
    """LayerNorm over the trailing ``normalized_shape`` dims with an rsqrt table on
    ``var + eps``; a constant row gives ``bias`` (or 0)."""
    dims = tuple(range(-len(normalized_shape), 0))
    xf = x.to(compute_dtype(x))
    mean = xf.mean(dim=dims, keepdim=True)
    d = xf - mean
    var = (d * d).mean(dim=dims, keepdim=True)
    y = d * rsqrt(var + eps)
    if weight is not None:
        y = y * weight.to(y.dtype)
    if bias is not None:
        y = y + bias.to(y.dtype)
    return y.to(x.dtype)


def rmsnorm(x: torch.Tensor, weight: torch.Tensor | None, eps: float, rsqrt: Unary,
            weight_offset: float = 0.0) -> torch.Tensor:
    """RMSNorm over the last dim, LLaMA style: normalised in float32, cast back to the input
    dtype, then scaled by ``weight_offset + weight`` (the result has the promoted dtype)."""
    xf = x.to(torch.float32) if x.dtype != torch.float64 else x
    y = (xf * rsqrt((xf * xf).mean(dim=-1, keepdim=True) + eps)).to(x.dtype)
    return y if weight is None else (weight + weight_offset) * y


# ---------------------------------------------------------------------------- as a backend
_PARAMS = _backend.ParamCache()


class _Cached:
    """A float table whose torch parameter vectors come from this backend's cache."""

    __slots__ = ("_table",)

    def __init__(self, table: Any) -> None:
        self._table = table

    def __getattr__(self, name: str) -> Any:
        return getattr(self._table, name)

    def torch_params(self, dtype: torch.dtype, device: torch.device) -> tuple[Any, Any, Any]:
        table = self._table
        return _PARAMS.get(table, (dtype, str(device)), lambda: table.torch_params(dtype, device))


def _pwl(table: Any, x: torch.Tensor) -> torch.Tensor:
    from torch._subclasses.fake_tensor import is_fake

    from ..core._eval import evaluate_reference

    # tensors made inside a fake-tensor trace live in that trace only: not cached
    return evaluate_reference(table if is_fake(x) else _Cached(table), x)


def _fixed(ft: Any, x: torch.Tensor) -> torch.Tensor:
    return ft.reference(x)  # a fixed-point table's own evaluation (its __call__ comes through this op)


def _attention_softmax(exp: Any, reciprocal: Any, scores: torch.Tensor, scale: float, mask: torch.Tensor | None,
                       out: torch.Tensor | None = None) -> torch.Tensor:
    y = attention_softmax(scores, scale, mask, table_fn(exp), table_fn(reciprocal))
    if out is not None:
        out.copy_(y)
        return out
    return y


_backend.register_backend(_backend.Backend(
    "reference", lambda op, x: True,
    {"pwl": _pwl, "fixed": _fixed, "half": lambda table, x: table(x),
     "softmax": lambda exp, rec, x, dim: softmax(x, dim, table_fn(exp), table_fn(rec)),
     "attention_softmax": _attention_softmax,
     "layernorm": lambda rsqrt, x, shape, w, b, eps: layernorm(x, shape, w, b, eps, table_fn(rsqrt)),
     "rmsnorm": lambda rsqrt, x, w, eps, off: rmsnorm(x, w, eps, table_fn(rsqrt), off)},
    priority=0,
))
