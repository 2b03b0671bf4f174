"""Transformer ops built from tables (functional forms, kernels and thin modules)."""

from ._kernels import ROLES, Kernel, make_kernel
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

__all__ = ["ROLES", "ApproxActivation", "ApproxLayerNorm", "ApproxOp", "ApproxRMSNorm", "ApproxSoftmax", "Kernel",
           "approx_modules", "lut_activation", "lut_attention_softmax", "lut_layernorm", "lut_rmsnorm", "lut_softmax",
           "make_kernel", "track_errors"]
