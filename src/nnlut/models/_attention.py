"""nnlut's attention function: eager attention whose softmax is the module's ``softmax`` child.

Computes what transformers' eager attention computes, feature for feature, so that with the
``exact`` method an approximated model gives the original's outputs:

- grouped-query and multi-query heads (keys and values repeated to the query heads),
- additive position biases (``position_bias``: T5, ALiBi-style), added before the mask,
- logit soft-capping (``softcap``: ``tanh(s / c) * c``, Gemma2), before the mask,
- attention sinks (a ``sinks`` parameter of shape ``(heads,)`` on the module, GPT-OSS): one
  extra logit column per head that takes probability mass and is dropped,
- sliding windows, cross-attention and KV caches, all of which arrive in the mask and the
  key length (``sliding_window`` itself is only a hint for kernels that build no mask).

When the softmax has float exp and reciprocal tables and a kernel backend takes the tensors
(the C kernels on the CPU: float32 and bfloat16; Triton on CUDA), attention runs as one fused
op (:func:`nnlut.kernels.flash_attention`) that never stores the score matrix: masks
(boolean or additive), causal attention without a mask (the model ran SDPA, whose masks are
``None`` for plain causal attention), grouped-query heads, position biases and soft-capping are
handled inside it, with the values of the unfused LUT attention up to the summation order.
Otherwise (attention sinks, ``output_attentions``, dropout in training, gradients, fixed-point
or observed tables) the unfused path below runs: on the CPU, float32 tensors without biases,
caps or sinks go one batch element at a time through a scratch buffer and the fused LUT softmax
kernel.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..core._table import Table
from ..kernels import _backend as _kernel_backends
from ..kernels import _flash
from ..ops._modules import ApproxSoftmax
from . import _calls

# keyword arguments of transformers' eager attention functions that nnlut implements; any other
# named parameter of a model's eager attention function makes ``approximate_`` refuse its softmax
SUPPORTED_PARAMETERS = frozenset({"module", "query", "key", "value", "attention_mask", "scaling", "dropout",
                                  "position_bias", "softcap", "sliding_window", "kwargs"})


def nnlut_attention(module: nn.Module, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                    attention_mask: torch.Tensor | None, scaling: float | None = None, dropout: float = 0.0,
                    position_bias: torch.Tensor | None = None, softcap: float | None = None,
                    **kwargs: Any) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Attention of ``module`` with its ``softmax`` child (exact softmax when it has none).

    Args:
        query: (batch, heads, queries, head_dim); key, value: (batch, kv_heads, keys, head_dim),
            kv_heads dividing heads.
        attention_mask: additive float mask or boolean keep-mask, broadcastable to
            (batch, heads, queries, keys); None = attend everywhere.
        scaling: factor on the logits (default ``head_dim ** -0.5``).
        position_bias: additive (batch or 1, heads, queries, keys) bias.
        softcap: logit soft-capping value, or None.

    Returns:
        (output (batch, queries, heads, head_dim) contiguous, probabilities or None). A query
        whose keys are all masked gets what the model's own attention gave it: eager's even
        spread, or zeros when the model ran SDPA before the swap (its ``softmax`` child's
        ``empty_rows`` is ``"zero"``).
    """
    softmax = module._modules.get("softmax")
    if attention_mask is None and getattr(softmax, "empty_rows", None) == "zero":
        # the model ran SDPA, whose masks are None for plain causal attention (SDPA's is_causal)
        causal = kwargs.get("is_causal")
        causal = getattr(module, "is_causal", True) if causal is None else causal
        if causal and query.shape[2] > 1:
            if key.shape[2] > query.shape[2]:  # as transformers' SDPA path: an empty cache's future keys
                key, value = key[:, :, : query.shape[2]], value[:, :, : query.shape[2]]
                position_bias = None if position_bias is None else position_bias[..., : query.shape[2]]
            out = _fused(module, softmax, query, key, value, None, scaling, dropout, position_bias, softcap, True,
                         **kwargs)
            if out is not None:
                return out, None
            attention_mask = torch.ones(query.shape[2], key.shape[2], dtype=torch.bool, device=query.device).tril()
            attention_mask = attention_mask[None, None]
    out = _fused(module, softmax, query, key, value, attention_mask, scaling, dropout, position_bias, softcap, False,
                 **kwargs)
    if out is not None:
        probs = None
    else:
        out, probs = _attend(module, query, key, value, attention_mask, scaling, dropout, position_bias, softcap,
                             **kwargs)
    if attention_mask is not None and getattr(softmax, "empty_rows", None) == "zero":
        out, probs = _zero_empty_rows(out, probs, attention_mask, key.shape[-2])
    return out, probs


def _fused(module: nn.Module, softmax: Any, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
           mask: torch.Tensor | None, scaling: float | None, dropout: float, position_bias: torch.Tensor | None,
           softcap: float | None, causal: bool, **kwargs: Any) -> torch.Tensor | None:
    """Attention as the fused LUT op, or None where it does not apply (the unfused path then
    runs): float tables without observers or error tracking, a backend that takes the tensors,
    no attention sinks, attention weights or dropout in training. Gradients are the op's
    registered backward (the unfused composite's)."""
    if not isinstance(softmax, ApproxSoftmax) or softmax.observers or softmax.track:
        return None
    if softcap and _calls.active() is not None and "tanh" in _calls.active().tables:  # type: ignore[union-attr]
        return None  # the fused op caps with an exact tanh: the unfused path caps on the tanh table
    exp, rec = softmax.kernel.tables.get("exp"), softmax.kernel.tables.get("reciprocal")
    if not (isinstance(exp, Table) and isinstance(rec, Table)) or isinstance(getattr(module, "sinks", None), torch.Tensor):
        return None
    if kwargs.get("output_attentions") or (dropout > 0.0 and module.training):
        return None
    if not (query.dtype == key.dtype == value.dtype) or query.dtype not in (torch.float32, torch.bfloat16):
        return None
    for t in (mask, position_bias):
        if t is not None and (t.dim() != 4 or not (t.dtype == torch.bool or t.is_floating_point())):
            return None
    if not any("flash_attention" in b.impls and b.supports("flash_attention", query)
               for b in _kernel_backends.backends()):
        return None
    lo, hi = _flash.band(causal, None, key.shape[2], query.shape[2])
    with softmax.tables_bound():
        return _flash.flash_attention(query, key, value, exp, rec, mask=mask, bias=position_bias, scale=scaling,
                                      softcap=softcap, lo=lo, hi=hi)


def _zero_empty_rows(out: torch.Tensor, probs: torch.Tensor | None, mask: torch.Tensor,
                     keys: int) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Zero the output (and probabilities) of every query whose keys are all masked, as SDPA
    does (eager attention spreads such a row evenly over the masked keys instead).

    ``out``: (batch, queries, heads, head_dim); ``mask``: boolean keep-mask or additive float
    mask broadcastable to (batch, heads, queries, keys). No data-dependent branch (compiles).
    """
    m = mask[..., :keys]
    empty = ~m.any(dim=-1) if m.dtype == torch.bool else (m <= torch.finfo(m.dtype).min / 2).all(dim=-1)
    keep = (~empty).to(out.dtype)  # (batch or 1, heads or 1, queries)
    out = out * keep.transpose(1, 2).unsqueeze(-1)
    if probs is not None:
        probs = probs * keep.unsqueeze(-1).to(probs.dtype)
    return out, probs


def _attend(module: nn.Module, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
            attention_mask: torch.Tensor | None, scaling: float | None, dropout: float,
            position_bias: torch.Tensor | None, softcap: float | None,
            **kwargs: Any) -> tuple[torch.Tensor, torch.Tensor | None]:
    if scaling is None:
        scaling = query.size(-1) ** -0.5
    if key.shape[1] != query.shape[1]:
        groups = query.shape[1] // key.shape[1]
        key = key.repeat_interleave(groups, dim=1)
        value = value.repeat_interleave(groups, dim=1)
    softmax = module._modules.get("softmax")
    sinks = getattr(module, "sinks", None)
    plain = position_bias is None and softcap is None and not isinstance(sinks, torch.Tensor)
    if (plain and isinstance(softmax, ApproxSoftmax) and not kwargs.get("output_attentions")
            and not (dropout > 0.0 and module.training)):
        out = _streamed(softmax, query, key, value, scaling, attention_mask)
        if out is not None:
            return out, None  # as SDPA: no weights unless output_attentions asks for them
    raw = _scores(query, key)
    probs = None
    if plain and isinstance(softmax, ApproxSoftmax) and (attention_mask is None or attention_mask.dtype != torch.bool):
        # one pass over the (temporary) scores: scale, mask, softmax
        probs = softmax.fused_attention(raw, scaling, attention_mask, inplace=True)
    if probs is None:
        scores = raw * scaling
        if softcap is not None:
            scores = torch.tanh(scores / softcap) * softcap
        if position_bias is not None:
            scores = scores + position_bias
        if attention_mask is not None:
            if attention_mask.dtype == torch.bool:
                scores = scores.masked_fill(~attention_mask, torch.finfo(scores.dtype).min)
            else:
                scores = scores + attention_mask[..., : key.shape[-2]]
        if isinstance(sinks, torch.Tensor):
            column = sinks.reshape(1, -1, 1, 1).expand(scores.shape[0], -1, scores.shape[2], 1).to(scores.dtype)
            scores = torch.cat([scores, column], dim=-1)
            scores = scores - scores.max(dim=-1, keepdim=True).values
        if isinstance(softmax, ApproxSoftmax):
            probs = softmax(scores, dim=-1)
        else:
            probs = torch.softmax(scores, dim=-1, dtype=torch.float32).to(scores.dtype)
        if isinstance(sinks, torch.Tensor):
            probs = probs[..., :-1]
    probs = nn.functional.dropout(probs, p=dropout, training=module.training)
    return _context(probs.to(value.dtype), value), probs


def _streamed(softmax: ApproxSoftmax, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, scaling: float,
              mask: torch.Tensor | None) -> torch.Tensor | None:
    """Attention one batch element at a time: its scores go into a scratch buffer small enough
    to stay in cache, the fused LUT softmax overwrites them, and the context is taken from
    there, so the (batch, heads, queries, keys) probabilities are never stored as a whole.
    The values are those of the batched path (the same products and rows). None when the
    fused kernel cannot take these tensors (nothing has been computed then)."""
    if not _per_batch(query, key, value) or not (query.dtype == key.dtype == value.dtype == torch.float32):
        return None
    b, h, q, _ = query.shape
    if value.shape[1] != h or (mask is not None and (mask.dtype == torch.bool or mask.dim() != 4
                                                     or mask.shape[0] not in (1, b))):
        return None
    scratch = torch.empty(1, h, q, key.shape[2], dtype=query.dtype)
    tmp = torch.empty(h, q, value.shape[-1], dtype=value.dtype)
    out = torch.empty(b, q, h, value.shape[-1], dtype=value.dtype)
    for i in range(b):
        torch.bmm(query[i], key[i].transpose(1, 2), out=scratch[0])
        m = mask[i : i + 1] if mask is not None and mask.shape[0] > 1 else mask
        if softmax.fused_attention(scratch, scaling, m, inplace=True) is None:
            return None  # decided by the tables and the mask's layout: at i = 0, before any output
        torch.bmm(scratch[0], value[i], out=tmp)
        out[i].copy_(tmp.transpose(0, 1))
    return out


def _per_batch(*ts: torch.Tensor) -> bool:
    """Whether batched matmuls over dim 0 read these (batch, heads, rows, cols) views in place:
    HuggingFace's heads-split projections are not foldable into one batch dim, so
    ``torch.matmul`` would copy them first."""
    return (not torch.is_grad_enabled() and all(t.dim() == 4 and t.device.type == "cpu" for t in ts)
            and ts[0].shape[0] > 1 and not torch.compiler.is_compiling())


def _scores(query: torch.Tensor, key: torch.Tensor) -> torch.Tensor:
    """query @ key^T as a contiguous (batch, heads, queries, keys) tensor."""
    if not _per_batch(query, key) or query.dtype != key.dtype:
        return torch.matmul(query, key.transpose(2, 3)).contiguous()
    b, h, q, _ = query.shape
    out = torch.empty(b, h, q, key.shape[2], dtype=query.dtype)
    for i in range(b):
        torch.bmm(query[i], key[i].transpose(1, 2), out=out[i])
    return out


def _context(probs: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
    """(probs @ value) laid out as (batch, queries, heads, head_dim), contiguous."""
    if not _per_batch(probs, value) or probs.shape[1] != value.shape[1]:
        return torch.matmul(probs, value).transpose(1, 2).contiguous()
    b, h, q, _ = probs.shape
    out = torch.empty(b, q, h, value.shape[-1], dtype=value.dtype)
    tmp = torch.empty(h, q, value.shape[-1], dtype=value.dtype)
    for i in range(b):
        torch.bmm(probs[i], value[i], out=tmp)
        out[i].copy_(tmp.transpose(0, 1))
    return out
