"""Fused kernels behind the LUT ops: compiled CPU kernels, Triton on CUDA (both optional) and
the pure-torch reference, as backends of one interface (:mod:`._backend`); the ops they serve
are torch custom ops (``torch.ops.nnlut.*``, :mod:`._ops`)."""

from ._backend import Backend, backends, register_backend, unregister_backend
from ._build import available, cache_dir, unavailable_reason
from ._flash import flash_attention
from ._ops import attention_softmax, fixed, half, is_fixed_table, is_half_table, layernorm, pwl, rmsnorm, softmax

__all__ = ["Backend", "attention_softmax", "available", "backends", "cache_dir", "fixed", "flash_attention",
           "half", "is_fixed_table", "is_half_table", "layernorm", "pwl", "register_backend", "rmsnorm", "softmax",
           "unavailable_reason", "unregister_backend"]

from ..core._eval import TORCH_TABLE_OP as _TORCH_TABLE_OP  # noqa: E402

_TORCH_TABLE_OP.register("pwl", pwl)  # the core's evaluation of float tables on tensors runs through this op
