"""HuggingFace transformers integration through its supported extension points.

- Attention softmax of models that dispatch attention through transformers' attention
  registry (BERT, RoBERTa, DistilBERT, LLaMA, Qwen2, ...): nnlut registers an attention
  function named ``"nnlut"`` (``AttentionInterface``, with the eager mask builder in
  ``AttentionMaskInterface``) and switches the model to it with
  ``set_attn_implementation``. The function is eager attention whose softmax is the
  attention module's ``softmax`` child (an :class:`~nnlut.ops.ApproxSoftmax`); modules
  without one run the exact softmax. ``restore_`` switches back to the implementation the
  model was loaded with (``sdpa``, ``eager``, ...).
- Models that compute their attention softmax inline (MPNet) get their self-attention
  module swapped for an adapter that holds the same projection layers and calls an
  ``ApproxSoftmax``; the adapter is checked against the original at swap time.

transformers is imported only when a model needs it.
"""

from __future__ import annotations

import inspect
import math
import sys
from typing import Any

import torch
from torch import nn

from .._errors import NNLUTError
from ..ops._modules import ApproxSoftmax

ATTN_NAME = "nnlut"
_REGISTERED = False


def _register() -> None:
    global _REGISTERED
    if _REGISTERED:
        return
    from transformers import AttentionInterface
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, eager_mask

    AttentionInterface.register(ATTN_NAME, nnlut_attention)
    ALL_MASK_ATTENTION_FUNCTIONS.register(ATTN_NAME, eager_mask)
    _REGISTERED = True


def nnlut_attention(module: nn.Module, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                    attention_mask: torch.Tensor | None, scaling: float | None = None, dropout: float = 0.0,
                    **kwargs: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """Eager attention whose softmax is ``module.softmax`` when that is an ApproxSoftmax."""
    if kwargs.get("softcap") is not None or kwargs.get("sliding_window") is not None:
        raise NNLUTError("nnlut attention does not support soft-capping or sliding windows")
    if scaling is None:
        scaling = query.size(-1) ** -0.5
    groups = getattr(module, "num_key_value_groups", 1) or 1
    if groups > 1:
        key = key.repeat_interleave(groups, dim=1)
        value = value.repeat_interleave(groups, dim=1)
    softmax = module._modules.get("softmax")
    if (isinstance(softmax, ApproxSoftmax) and not kwargs.get("output_attentions")
            and not (dropout > 0.0 and module.training)):
        out = _streamed(softmax, query, key, value, scaling, attention_mask)
        if out is not None:
            return out, None  # as SDPA: no weights unless output_attentions asks for them
    raw = _scores(query, key)
    probs = None
    if isinstance(softmax, ApproxSoftmax) and (attention_mask is None or attention_mask.dtype != torch.bool):
        # one pass over the (temporary) scores: scale, mask, softmax
        probs = softmax.fused_attention(raw, scaling, attention_mask, inplace=True)
    if probs is None:
        scores = raw * scaling
        if attention_mask is not None:
            if attention_mask.dtype == torch.bool:
                scores = scores.masked_fill(~attention_mask, torch.finfo(scores.dtype).min)
            else:
                scores = scores + attention_mask[..., : key.shape[-2]]
        if isinstance(softmax, ApproxSoftmax):
            probs = softmax(scores, dim=-1)
        else:
            probs = torch.softmax(scores, dim=-1, dtype=torch.float32).to(scores.dtype)
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
            and ts[0].shape[0] > 1)


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


def uses_attention_registry(module: nn.Module) -> bool:
    """Whether ``module``'s class dispatches through transformers' attention registry."""
    cls = type(module)
    mod = sys.modules.get(cls.__module__)
    if mod is None or not hasattr(mod, "ALL_ATTENTION_FUNCTIONS") or not hasattr(cls, "forward"):
        return False
    try:
        src = inspect.getsource(cls.forward)
    except (OSError, TypeError):
        return False
    return "ALL_ATTENTION_FUNCTIONS" in src


def owning_pretrained_models(model: nn.Module) -> list[nn.Module]:
    """The outermost transformers ``PreTrainedModel``s inside ``model`` (or ``model`` itself)."""
    try:
        from transformers import PreTrainedModel
    except ImportError:
        return []
    found: list[tuple[str, nn.Module]] = []
    for name, m in model.named_modules():
        if isinstance(m, PreTrainedModel) and not any(name.startswith(p + ".") or p == "" for p, _ in found):
            found.append((name, m))
    return [m for _, m in found]


def switch_attention(pretrained: nn.Module, implementation: str) -> None:
    _register()
    try:
        pretrained.set_attn_implementation(implementation)  # type: ignore[operator]
    except Exception as e:  # transformers raises several types here
        raise NNLUTError(f"could not switch {type(pretrained).__name__} to attention {implementation!r}: {e}") from None
    if pretrained.config._attn_implementation != implementation:  # type: ignore[union-attr]
        raise NNLUTError(
            f"{type(pretrained).__name__} does not support switching its attention implementation to {implementation!r}"
        )


# ------------------------------------------------------------------------------ MPNet
class MPNetSelfAttentionApprox(nn.Module):
    """MPNet self-attention with its softmax as a child ``softmax`` module.

    Holds the original's ``q``, ``k``, ``v``, ``o`` and ``dropout`` (so ``state_dict`` keys are
    unchanged) and computes what ``MPNetSelfAttention.forward`` computes.
    """

    def __init__(self, original: nn.Module, softmax: ApproxSoftmax) -> None:
        super().__init__()
        self.num_attention_heads = original.num_attention_heads
        self.attention_head_size = original.attention_head_size
        self.all_head_size = original.all_head_size
        self.q, self.k, self.v, self.o = original.q, original.k, original.v, original.o
        self.dropout = original.dropout
        self.softmax = softmax
        self.__dict__["original"] = original

    def forward(self, hidden_states: torch.Tensor, attention_mask: torch.Tensor | None = None,
                position_bias: torch.Tensor | None = None, output_attentions: bool = False, **kwargs: Any) -> tuple:
        shape = (*hidden_states.shape[:-1], -1, self.attention_head_size)
        q = self.q(hidden_states).view(shape).transpose(1, 2)
        k = self.k(hidden_states).view(shape).transpose(1, 2)
        v = self.v(hidden_states).view(shape).transpose(1, 2)
        scores = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(self.attention_head_size)
        if position_bias is not None:
            scores = scores + position_bias
        if attention_mask is not None:
            scores = scores + attention_mask
        probs = self.dropout(self.softmax(scores, dim=-1))
        c = torch.matmul(probs, v).permute(0, 2, 1, 3).contiguous()
        c = c.view(*c.shape[:-2], self.all_head_size)
        o = self.o(c)
        return (o, probs) if output_attentions else (o,)


ADAPTERS: dict[str, type[nn.Module]] = {"MPNetSelfAttention": MPNetSelfAttentionApprox}


def check_adapter(original: nn.Module, adapter: nn.Module) -> None:
    """Run both on a random input and require the same output (exact softmax kernel)."""
    from ..ops._kernels import make_kernel

    probe = ApproxSoftmax(make_kernel("softmax", "exact"))  # type: ignore[arg-type]
    test = type(adapter)(original, probe)
    hidden = original.q.in_features
    gen = torch.Generator().manual_seed(0)
    p = next(original.parameters())
    x = torch.randn(2, 5, hidden, generator=gen).to(device=p.device, dtype=p.dtype)
    mask = torch.zeros(2, 1, 1, 5, dtype=p.dtype, device=p.device)
    mask[1, ..., -2:] = torch.finfo(p.dtype).min
    was = original.training
    original.eval()
    with torch.no_grad():
        ref = original(x, attention_mask=mask)[0]
        got = test(x, attention_mask=mask)[0]
    original.train(was)
    if not torch.allclose(ref, got, rtol=1e-4, atol=1e-5):
        raise NNLUTError(f"the nnlut adapter for {type(original).__name__} does not reproduce it with this "
                         f"transformers version (max difference {float((ref - got).abs().max()):.3g})")
