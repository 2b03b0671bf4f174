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
from ._attention import SUPPORTED_PARAMETERS, nnlut_attention

ATTN_NAME = "nnlut"
# the same attention function with the masks SDPA gets (None for plain causal attention, boolean
# otherwise), for models that ran SDPA: eager's float masks hold (queries x keys) floats
ATTN_NAME_SDPA_MASKS = "nnlut_lazy_masks"
_REGISTERED = False


def register() -> None:
    """Make ``"nnlut"`` a transformers attention implementation (idempotent). Called by
    ``approximate_`` and when an approximated model is unpickled."""
    global _REGISTERED
    if _REGISTERED:
        return
    from transformers import AttentionInterface
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, eager_mask, sdpa_mask

    AttentionInterface.register(ATTN_NAME, nnlut_attention)
    ALL_MASK_ATTENTION_FUNCTIONS.register(ATTN_NAME, eager_mask)
    AttentionInterface.register(ATTN_NAME_SDPA_MASKS, nnlut_attention)
    ALL_MASK_ATTENTION_FUNCTIONS.register(ATTN_NAME_SDPA_MASKS, sdpa_mask)
    _REGISTERED = True


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


def unsupported_attention_features(module: nn.Module) -> list[str]:
    """Named parameters of ``module``'s eager attention function (transformers' reference for
    what its attention computes) that nnlut's attention function does not implement."""
    mod = sys.modules.get(type(module).__module__)
    eager = getattr(mod, "eager_attention_forward", None)
    if eager is None:
        return []
    try:
        params = inspect.signature(eager).parameters
    except (TypeError, ValueError):
        return []
    return [n for n, p in params.items() if n not in SUPPORTED_PARAMETERS
            and p.kind not in (inspect.Parameter.VAR_KEYWORD, inspect.Parameter.VAR_POSITIONAL)]


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
    register()
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
