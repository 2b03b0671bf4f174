"""Fused LUT attention as one torch custom op (``torch.ops.nnlut.flash_attention``).

``out = softmax_lut(scores) @ v`` with ``scores = scale * q k^T``, then optionally soft-capped
(``tanh(s / softcap) * softcap``), plus an additive ``bias`` (position biases), then masked
(``mask``: a boolean keep-mask, masked scores become float32's minimum, or an additive float
mask), and limited to the band ``lo <= key - query <= hi`` (causal: ``hi = 0``; a sliding
window of ``w`` keys: ``lo = 1 - w``; keys outside the band are left out). The softmax is the
LUT softmax (row maximum, exp table, row sum, reciprocal table), computed in float32 whatever
the input dtype; the result is rounded once to the input dtype and laid out as
(batch, queries, heads, head_dim_v), the layout transformers' attention functions return.

Shapes: q (batch, heads, queries, dim); k (batch, kv_heads, keys, dim) and v (batch, kv_heads,
keys, dim_v) with kv_heads dividing heads (grouped-query and multi-query attention read the
shared heads in place); mask and bias broadcastable to (batch, heads, queries, keys), their key
dim at least ``keys`` long (the first ``keys`` are read).

The CPU backend (``csrc/flash.h``) never stores the score matrix: it walks the keys in tiles,
finds each row's exact maximum in a first sweep and accumulates the probabilities times the
values in a second, so its values are those of the unfused LUT attention up to the summation
order (see the C source for why not a running maximum). Where no backend takes the call (other
devices, layouts the kernel does not read) the composite form below runs, which is also the
op's reference and its differentiable form.

Schema (each table as four arguments, as the other ops: :mod:`._ops`):

    flash_attention(Tensor q, Tensor k, Tensor v, Tensor? mask, Tensor? bias, float scale,
                    float softcap, int lo, int hi, T(exp), T(reciprocal)) -> Tensor
"""

from __future__ import annotations

from typing import Any

import torch

from .._errors import NNLUTError
from . import _backend, _reference
from . import _ops as _ops  # noqa: F401  (registers the backends and the library)
from ._args import table_args, table_from_args

NO_BAND = 1 << 62  # lo = -NO_BAND, hi = NO_BAND: every key
_ZERO_FLOOR = _backend.ParamCache()
_LIB = torch.library.Library("nnlut", "FRAGMENT")
_LIB.define("flash_attention(Tensor q, Tensor k, Tensor v, Tensor? mask, Tensor? bias, float scale, float softcap, "
            f"int lo, int hi, {_ops._t('exp')}, {_ops._t('reciprocal')}) -> Tensor")


def zero_floor(exp: Any) -> bool:
    """Whether the exp table is exactly 0 at -inf and far below zero (float32's minimum, -1e30):
    then masked scores contribute exactly 0, and the kernels may leave them out."""
    from ..core._eval import evaluate_reference

    def make() -> bool:
        z = torch.tensor([-float("inf"), torch.finfo(torch.float32).min, -1e30], dtype=torch.float32)
        return bool((evaluate_reference(exp, z) == 0).all())

    return _ZERO_FLOOR.get(exp, "zero_floor", make)


def _check(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> None:
    if q.dim() != 4 or k.dim() != 4 or v.dim() != 4:
        raise NNLUTError(f"flash attention takes 4-D q, k, v (batch, heads, tokens, dim), got {q.dim()}-D, {k.dim()}-D, "
                         f"{v.dim()}-D")
    if not q.is_floating_point() or q.dtype != k.dtype or q.dtype != v.dtype:
        raise NNLUTError(f"flash attention takes q, k, v of one floating dtype, got {q.dtype}, {k.dtype}, {v.dtype}")
    h, hk = q.shape[1], k.shape[1]
    if (k.shape[0] != q.shape[0] or v.shape[:3] != k.shape[:3] or k.shape[3] != q.shape[3] or hk == 0
            or h % hk):
        raise NNLUTError(f"flash attention shapes do not fit: q {tuple(q.shape)}, k {tuple(k.shape)}, v {tuple(v.shape)} "
                         "(k and v: same batch, kv heads dividing the query heads, same keys; k: q's head dim)")


def composite(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None, bias: torch.Tensor | None,
              scale: float, softcap: float, lo: int, hi: int, exp: _reference.Unary,
              reciprocal: _reference.Unary) -> torch.Tensor:
    """The op in torch operations (differentiable), with the tables as callables."""
    dt = _reference.compute_dtype(q)
    groups = q.shape[1] // k.shape[1]
    kf, vf = k.to(dt), v.to(dt)
    if groups > 1:
        kf, vf = kf.repeat_interleave(groups, dim=1), vf.repeat_interleave(groups, dim=1)
    lq, lk = q.shape[2], k.shape[2]
    s = torch.matmul(q.to(dt), kf.transpose(2, 3)) * scale
    if softcap:
        s = torch.tanh(s / softcap) * softcap
    if bias is not None:
        s = s + bias[..., :lk].to(dt)
    if mask is not None:
        m = mask[..., :lk]
        s = s.masked_fill(~m, torch.finfo(dt).min) if m.dtype == torch.bool else s + m.to(dt)
    if lo > -lk or hi < lk:  # keys outside the band are left out (-inf: the exp table's value at -inf)
        d = torch.arange(lk, device=q.device)[None, :] - torch.arange(lq, device=q.device)[:, None]
        s = s.masked_fill((d < lo) | (d > hi), -float("inf"))
    p = _reference.softmax(s, -1, exp, reciprocal)
    return torch.matmul(p, vf).transpose(1, 2).contiguous().to(q.dtype)


def _impl(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None, bias: torch.Tensor | None,
          scale: float, softcap: float, lo: int, hi: int, *tables: Any) -> torch.Tensor:
    _check(q, k, v)
    e, r = table_from_args(*tables[:4]), table_from_args(*tables[4:])
    if q.shape[2] == 0 or k.shape[2] == 0 or q.shape[0] == 0 or q.shape[1] == 0:
        return composite(q, k, v, mask, bias, scale, softcap, lo, hi, _reference.table_fn(e), _reference.table_fn(r))
    # the kernels leave out keys outside the band, past the keys and masked far below zero: the
    # composite's values exactly when the exp table is 0 there (every fitted exp table is)
    if zero_floor(e):
        for b in _backend.backends():
            fn = b.impls.get("flash_attention")
            if fn is not None and b.supports("flash_attention", q):
                out = fn(e, r, q, k, v, mask, bias, scale, softcap, lo, hi, True)
                if out is not None:
                    return out
    return composite(q, k, v, mask, bias, scale, softcap, lo, hi, _reference.table_fn(e), _reference.table_fn(r))


def _fake(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None, bias: torch.Tensor | None,
          scale: float, softcap: float, lo: int, hi: int, *tables: Any) -> torch.Tensor:
    return q.new_empty((q.shape[0], q.shape[2], q.shape[1], v.shape[3]))


_LIB.impl("flash_attention", _impl, "CompositeExplicitAutograd")
torch.library.register_fake("nnlut::flash_attention", _fake, lib=_LIB)
# the backward: the composite's gradient with the op's own table tensors, as the other ops (see _ops)
_ops.register_composite_autograd("flash_attention", 9, composite, _LIB)
_FLASH = torch.ops.nnlut.flash_attention.default


def band(causal: bool, window: int | None, keys: int, queries: int) -> tuple[int, int]:
    """(lo, hi) of the band for a causal and/or sliding-window attention whose queries are the
    last ``queries`` of ``keys`` positions (the keys' offset is ``keys - queries``)."""
    off = keys - queries
    hi = off if causal else NO_BAND
    lo = off - (window - 1) if window is not None else -NO_BAND
    return lo, hi


def flash_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, exp: Any, reciprocal: Any, *,
                    mask: torch.Tensor | None = None, bias: torch.Tensor | None = None, scale: float | None = None,
                    softcap: float | None = None, lo: int = -NO_BAND, hi: int = NO_BAND) -> torch.Tensor:
    """LUT attention of q (batch, heads, queries, dim) over k, v (batch, kv_heads, keys, dim):
    one op; returns (batch, queries, heads, dim_v). ``scale`` defaults to ``dim ** -0.5``;
    ``lo``/``hi``: the band of keys each query sees (see :func:`band`). Inputs that need a
    gradient get the composite form's gradient (the op's registered backward)."""
    _check(q, k, v)
    scale = q.shape[-1] ** -0.5 if scale is None else float(scale)
    cap = float(softcap or 0.0)
    return _FLASH(q, k, v, mask, bias, scale, cap, int(lo), int(hi), *table_args(exp), *table_args(reciprocal))


__all__ = ["NO_BAND", "band", "composite", "flash_attention", "zero_floor"]
