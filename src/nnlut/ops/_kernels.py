"""Kernels: the computation behind each approximated op, one per (op, method).

A kernel is a small immutable callable. LUT kernels hold their tables (``tables``: role ->
Table) and can be rebuilt with new ones (``with_tables``), which is how calibration swaps
refitted tables in. ``exact`` kernels compute the reference op with PyTorch.

Kernels are registered, not chosen by an ``if`` chain: :func:`register_kernel` ``(op, method,
factory)`` adds the factory ``factory(op, method, tables, function) -> Kernel``, and
:func:`make_kernel` looks one up, most specific first: the op's kernel for that method, then
(when tables are given) the op's kernel for every table method (``TABLES``), then the
method's kernel for every op (``ANY_OP``). :data:`ROLES` (op -> table role -> function the
role's table approximates) is the one list of the tables each op's kernels read;
:func:`register_roles` adds an op's. The built-in ops and methods register theirs below; the
op registry (``nnlut.models.register_op``) registers a new op's roles and kernel here.

Signatures by op:
    activation (gelu, gelu_tanh, silu): k(x)
    softmax:   k(x, dim)
    layernorm: k(x, normalized_shape, weight, bias, eps)
    rmsnorm:   k(x, weight, eps, weight_offset)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from types import MappingProxyType
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


# ---------------------------------------------------------------------------- the registry
TABLES = "<tables>"  # the method key of an op's kernel for every method whose tables were fitted
ANY_OP = "<any op>"  # the op key of a method's kernel for every op without its own

# factory(op, method, tables, function) -> Kernel; ``tables`` (role -> table) is None for
# methods without tables, ``function`` the site's own function (``gelu_tanh``) or None
KernelFactory = Callable[[str, str, "Mapping[str, Any] | None", "str | None"], Kernel]

_KERNELS: dict[tuple[str, str], KernelFactory] = {}
_ROLES: dict[str, Mapping[str, str]] = {}
# table roles of each op and the function each role approximates (a read-only live view)
ROLES: Mapping[str, Mapping[str, str]] = MappingProxyType(_ROLES)


def register_roles(op: str, roles: Mapping[str, str], *, overwrite: bool = False) -> None:
    """Declare the table roles of ``op``'s kernels (role -> function its table approximates)."""
    if not isinstance(roles, Mapping) or not all(isinstance(k, str) and isinstance(v, str) for k, v in roles.items()):
        raise NNLUTError(f"roles of op {op!r} must map role names to function names, got {roles!r}")
    if op in _ROLES and dict(_ROLES[op]) != dict(roles) and not overwrite:
        raise NNLUTError(f"op {op!r} already has table roles {dict(_ROLES[op])}; pass overwrite=True to replace them")
    _ROLES[op] = MappingProxyType(dict(roles))


def register_kernel(op: str, method: str, factory: KernelFactory, *, overwrite: bool = False) -> KernelFactory:
    """Register ``factory`` as the kernel of ``op`` with ``method``; ``method`` may be
    :data:`TABLES` (every table method) and ``op`` :data:`ANY_OP` (every op). Returns it."""
    if not (isinstance(op, str) and op and isinstance(method, str) and method):
        raise NNLUTError(f"register_kernel takes an op name and a method name, got {op!r}, {method!r}")
    if not callable(factory):
        raise NNLUTError(f"the kernel factory of ({op!r}, {method!r}) must be callable, got {type(factory).__name__}")
    if (op, method) in _KERNELS and not overwrite:
        raise NNLUTError(f"op {op!r} already has a kernel for method {_method_name(method)}; "
                         "pass overwrite=True to replace it")
    _KERNELS[(op, method)] = factory
    return factory


def unregister_kernel(op: str, method: str) -> None:
    """Remove the kernel of ``op`` with ``method`` (nothing if there is none)."""
    _KERNELS.pop((op, method), None)


def unregister_kernels(name: str) -> None:
    """Remove every kernel registered for op or method ``name``, and the op's roles."""
    for key in [k for k in _KERNELS if name in k]:
        del _KERNELS[key]
    _ROLES.pop(name, None)


def _method_name(method: str) -> str:
    return "of every table method" if method == TABLES else repr(method)


def kernel_methods(op: str) -> list[str]:
    """The methods ``op`` has kernels of its own for (``TABLES``: every table method)."""
    return [m for o, m in _KERNELS if o == op]


def _missing(op: str, method: str, with_tables: bool) -> str:
    own = kernel_methods(op)
    if not own and op not in _ROLES:
        return f"op {op!r} has no kernels (none registered); give its OpSpec a kernel or call register_kernel"
    has = ", ".join("every table method" if m == TABLES else repr(m) for m in own) or "none"
    if with_tables:
        what, key = "no kernel that reads tables", "nnlut.ops.TABLES"
    else:
        what, key = f"no kernel for method {method!r}", repr(method)
        if TABLES in own:
            what += f" (its kernel for table methods needs tables for {', '.join(_ROLES.get(op, {})) or 'its roles'})"
    return (f"op {op!r} has {what}: register one with nnlut.ops.register_kernel({op!r}, {key}, factory); "
            f"it has kernels for: {has}")


def make_kernel(op: str, method: str, tables: Mapping[str, Table] | None = None, *, function: str | None = None) -> Kernel:
    """Build the kernel for ``op`` with ``method`` (see the module docstring for the lookup);
    table methods pass ``tables`` for every role of the op."""
    factory = _KERNELS.get((op, method))
    if factory is None and tables is not None:
        factory = _KERNELS.get((op, TABLES))
    if factory is None:
        factory = _KERNELS.get((ANY_OP, method))
    if factory is None:
        raise NNLUTError(_missing(op, method, tables is not None))
    if tables is not None:
        tables = dict(tables)
        roles = _ROLES.get(op)
        if roles is not None and set(tables) != set(roles):
            raise NNLUTError(f"{op} with method {method!r} needs tables for roles {', '.join(roles)}; "
                             f"got {', '.join(tables) or 'none'}")
    return factory(op, method, tables, function)


# ---------------------------------------------------------------------------- built-in kernels
def _activation(op: str, method: str, tables: Mapping[str, Any] | None, function: str | None) -> Kernel:
    return ActivationKernel(method, dict(tables or {}), function=function or op)


def _plain(cls: type[Kernel]) -> KernelFactory:
    return lambda op, method, tables, function: cls(method, dict(tables or {}))


def _exact(factory: KernelFactory) -> KernelFactory:
    """The reference op with PyTorch: ``factory`` without tables."""
    return lambda op, method, tables, function: factory(op, "exact", None, function)


def _ibert(op: str, method: str, tables: Mapping[str, Any] | None, function: str | None) -> Kernel:
    from ..ibert._ops import IBertGELU, IBertLayerNorm, IBertSoftmax

    if op == "gelu" and (function or "gelu") == "gelu":
        return ActivationKernel("ibert", function="gelu", impl=IBertGELU())
    if op == "softmax":
        return SoftmaxKernel("ibert", impl=IBertSoftmax())
    if op == "layernorm":
        return LayerNormKernel("ibert", impl=IBertLayerNorm())
    raise NNLUTError(f"I-BERT has no integer kernel for {function or op}; it covers gelu, softmax, layernorm")


for _op, _roles, _factory in (
        ("gelu", {"act": "gelu"}, _activation),
        ("silu", {"act": "silu"}, _activation),
        ("softmax", {"exp": "exp", "reciprocal": "reciprocal"}, _plain(SoftmaxKernel)),
        ("layernorm", {"rsqrt": "rsqrt"}, _plain(LayerNormKernel)),
        ("rmsnorm", {"rsqrt": "rsqrt"}, _plain(RMSNormKernel))):
    register_roles(_op, _roles)
    register_kernel(_op, TABLES, _factory)
    register_kernel(_op, "exact", _exact(_factory))
register_kernel(ANY_OP, "ibert", _ibert)  # gelu, softmax, layernorm; a clear error for the others
