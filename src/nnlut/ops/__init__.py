"""Transformer ops built from tables (functional forms, kernels and thin modules)."""

from ._kernels import ANY_OP, ROLES, TABLES, Kernel, make_kernel, register_kernel, register_roles
from ._lut import lut_activation, lut_attention_softmax, lut_layernorm, lut_rmsnorm, lut_softmax
from ._modules import (
           ApproxActivation,
           ApproxLayerNorm,
           ApproxOp,
           ApproxRMSNorm,
           ApproxSoftmax,
           approx_modules,
           track_errors,
)

__all__ = ["ANY_OP", "ROLES", "TABLES", "ApproxActivation", "ApproxLayerNorm", "ApproxOp", "ApproxRMSNorm",
           "ApproxSoftmax", "Kernel", "approx_modules", "lut_activation", "lut_attention_softmax", "lut_layernorm",
           "lut_rmsnorm", "lut_softmax", "make_kernel", "register_kernel", "register_roles", "track_errors"]
