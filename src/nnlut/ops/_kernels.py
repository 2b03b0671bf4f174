"""Kernels: the computation behind each approximated op, one per (op, method).

A kernel is a small immutable callable. LUT kernels hold their tables (``tables``: role ->
Table) and can be rebuilt with new ones (``with_tables``), which is how calibration swaps
refitted tables in. ``exact`` kernels compute the reference op with PyTorch.

Signatures by op:
    activation (gelu, gelu_tanh, silu): k(x)
    softmax:   k(x, dim)
    layernorm: k(x, normalized_shape, weight, bias, eps)
    rmsnorm:   k(x, weight, eps, weight_offset)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import torch

from .._errors import NNLUTError
from ..core._table import Table
from . import _lut

_EXACT_ACT = {
    "gelu": lambda x: torch.nn.functional.gelu(x),
    "gelu_tanh": lambda x: torch.nn.functional.gelu(x, approximate="tanh"),
    "silu": lambda x: torch.nn.functional.silu(x),
}


@dataclass(frozen=True)
class Kernel:
    """Base: ``method`` names where it comes from; ``tables`` are the LUTs it reads."""

    method: str
    tables: Mapping[str, Table] = field(default_factory=dict)

    def with_tables(self, tables: Mapping[str, Table]) -> Kernel:
        unknown = set(tables) - set(self.tables)
        if unknown:
            raise NNLUTError(f"kernel has no table role(s) {sorted(unknown)}; roles: {sorted(self.tables)}")
        return replace(self, tables={**self.tables, **tables})

    def describe(self) -> str:
        if not self.tables:
            return self.method
        parts = [f"{role}:{t.entries}" + ("" if isinstance(t, Table) else f" {type(t).__name__}")
                 for role, t in self.tables.items()]
        return f"{self.method}({', '.join(parts)})"


@dataclass(frozen=True)
class ActivationKernel(Kernel):
    function: str = "gelu"
    impl: Any = None  # for ibert

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.tables:
            return _lut.lut_activation(x, self.tables["act"])
        if self.impl is not None:
            return self.impl(x)
        return _EXACT_ACT[self.function](x)


@dataclass(frozen=True)
class SoftmaxKernel(Kernel):
    impl: Any = None

    def __call__(self, x: torch.Tensor, dim: int = -1) -> torch.Tensor:
        if self.tables:
            return _lut.lut_softmax(x, dim, self.tables["exp"], self.tables["reciprocal"])
        if self.impl is not None:
            return self.impl(x, dim)
        return _lut.exact_softmax(x, dim)


@dataclass(frozen=True)
class LayerNormKernel(Kernel):
    impl: Any = None

    def __call__(self, x: torch.Tensor, normalized_shape: Sequence[int], weight: Any, bias: Any,
                 eps: float) -> torch.Tensor:
        if self.tables:
            return _lut.lut_layernorm(x, normalized_shape, weight, bias, eps, self.tables["rsqrt"])
        if self.impl is not None:
            return self.impl(x, normalized_shape, weight, bias, eps)
        return _lut.exact_layernorm(x, normalized_shape, weight, bias, eps)


@dataclass(frozen=True)
class RMSNormKernel(Kernel):
    def __call__(self, x: torch.Tensor, weight: Any, eps: float, weight_offset: float = 0.0) -> torch.Tensor:
        if self.tables:
            return _lut.lut_rmsnorm(x, weight, eps, self.tables["rsqrt"], weight_offset)
        return _lut.exact_rmsnorm(x, weight, eps, weight_offset)


# table roles of each op and the function each role approximates
ROLES: dict[str, dict[str, str]] = {
    "gelu": {"act": "gelu"},
    "silu": {"act": "silu"},
    "softmax": {"exp": "exp", "reciprocal": "reciprocal"},
    "layernorm": {"rsqrt": "rsqrt"},
    "rmsnorm": {"rsqrt": "rsqrt"},
}


def make_kernel(op: str, method: str, tables: Mapping[str, Table] | None = None, *, function: str | None = None) -> Kernel:
    """Build the kernel for ``op`` with ``method``; LUT methods need ``tables`` for every role."""
    if method in ("nnlut", "linear", "exponential", "table"):
        if tables is None:
            raise NNLUTError(f"{op} with method {method!r} needs tables")
        tables = dict(tables)
        if op in ("gelu", "silu"):
            return ActivationKernel(method, tables, function=function or op)
        if op == "softmax":
            return SoftmaxKernel(method, tables)
        if op == "layernorm":
            return LayerNormKernel(method, tables)
        if op == "rmsnorm":
            return RMSNormKernel(method, tables)
    elif method == "exact":
        if op in ("gelu", "silu"):
            return ActivationKernel("exact", function=function or op)
        return {"softmax": SoftmaxKernel, "layernorm": LayerNormKernel, "rmsnorm": RMSNormKernel}[op]("exact")
    elif method == "ibert":
        from ..ibert._ops import IBertGELU, IBertLayerNorm, IBertSoftmax

        if op == "gelu" and (function or "gelu") == "gelu":
            return ActivationKernel("ibert", function="gelu", impl=IBertGELU())
        if op == "softmax":
            return SoftmaxKernel("ibert", impl=IBertSoftmax())
        if op == "layernorm":
            return LayerNormKernel("ibert", impl=IBertLayerNorm())
        raise NNLUTError(f"I-BERT has no integer kernel for {function or op}; it covers gelu, softmax, layernorm")
    raise NNLUTError(f"unknown method {method!r} for op {op!r}")
