"""Op and method registries: what ``approximate_`` can replace, and with what.

An **op** (:class:`OpSpec`) says how its modules are found (``find``), which tables its kernel
reads (``roles``: table role -> function fitted for it), which module face replaces a found
module (``face``) and which table inputs calibration observes (``observes``). A **method**
(:class:`MethodSpec`) says whether its tables are fitted (``fitted``: with ``nnlut.fit``
under the method's name) and builds the kernel of an op (``kernel``).

The built-in ops (gelu, silu, softmax, layernorm, rmsnorm) and methods (nnlut, linear,
exponential, ibert, exact) are registered here; :func:`register_op` and
:func:`register_method` add more (a new op is a spec, not an edit of ``approximate_``).
Attention softmaxes reached through transformers' attention interface are found by the
transformers integration and use the ``softmax`` spec's tables and kernel.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from torch import nn

from .._errors import NNLUTError

# find(name, module, verify) -> None (not this op) or the site's details:
#   {"function": str, "eps": float, "weight_offset": float} (all optional)
Finder = Callable[[str, nn.Module, bool], "dict[str, Any] | None"]


@dataclass(frozen=True)
class OpSpec:
    """One replaceable op.

    Args:
        name: the op's name in ``ApproxConfig.ops`` and reports.
        roles: table role -> function name (``{"act": "gelu"}``); an ``act`` role takes the
            site's own function when it has one (``gelu_tanh``).
        find: recognises the op's modules (see ``Finder``); called on every child module.
        face: ``face(kernel, site) -> nn.Module``, the module that replaces ``site.module``.
        observes: the table roles whose inputs calibration observes.
        kernel: ``kernel(method, tables, function) -> Kernel`` for table methods (nnlut,
            linear, exponential); None = the built-in kernels of ``nnlut.ops``.
    """

    name: str
    roles: Mapping[str, str]
    find: Finder
    face: Callable[[Any, Any], nn.Module]
    observes: tuple[str, ...] = ()
    kernel: Callable[[str, Mapping[str, Any], str | None], Any] | None = None

    def tables_for(self, function: str | None) -> dict[str, str]:
        roles = dict(self.roles)
        if function is not None and "act" in roles:
            roles["act"] = function
        return roles


@dataclass(frozen=True)
class MethodSpec:
    """One approximation method.

    Args:
        name: the method's name in ``ApproxConfig.method``.
        kernel: ``kernel(op, tables, function) -> Kernel``; ``tables`` (role -> table) is None
            for methods without fitted tables.
        fitted: the tables are fitted with ``nnlut.fit(..., method=name)``.
        number_formats: the tables may be turned into int16 / FP16 (``number_format``).
    """

    name: str
    kernel: Callable[[str, Mapping[str, Any] | None, str | None], Any]
    fitted: bool = False
    number_formats: bool = False


_OPS: dict[str, OpSpec] = {}
_METHODS: dict[str, MethodSpec] = {}


def register_op(spec: OpSpec, *, overwrite: bool = False) -> OpSpec:
    """Add an op to ``approximate_``; returns ``spec``."""
    if spec.name in _OPS and not overwrite:
        raise NNLUTError(f"op {spec.name!r} is already registered; pass overwrite=True to replace it")
    _OPS[spec.name] = spec
    return spec


def register_method(spec: MethodSpec, *, overwrite: bool = False) -> MethodSpec:
    """Add a method to ``approximate_``; returns ``spec``."""
    if spec.name in _METHODS and not overwrite:
        raise NNLUTError(f"method {spec.name!r} is already registered; pass overwrite=True to replace it")
    _METHODS[spec.name] = spec
    return spec


def unregister(name: str) -> None:
    """Remove a registered op or method (a built-in one cannot be removed)."""
    if name in _BUILTIN:
        raise NNLUTError(f"{name!r} is built in and cannot be unregistered")
    if _OPS.pop(name, None) is None and _METHODS.pop(name, None) is None:
        raise NNLUTError(f"no op or method {name!r} is registered")


def op_spec(name: str) -> OpSpec:
    _builtins()
    if name not in _OPS:
        raise NNLUTError(f"unknown op {name!r}; allowed: {', '.join(_OPS)}")
    return _OPS[name]


def method_spec(name: str) -> MethodSpec:
    _builtins()
    if name not in _METHODS:
        raise NNLUTError(f"method {name!r} is unknown; allowed: {', '.join(_METHODS)}")
    return _METHODS[name]


def op_names() -> tuple[str, ...]:
    _builtins()
    return tuple(_OPS)


def method_names() -> tuple[str, ...]:
    _builtins()
    return tuple(_METHODS)


_BUILTIN: set[str] = set()


def _builtins() -> None:
    """Register the built-in ops and methods (once, on first use: they import torch code)."""
    if _BUILTIN:
        return
    from . import _builtin_ops

    for spec in _builtin_ops.OPS:
        _OPS.setdefault(spec.name, spec)
    for m in _builtin_ops.METHODS:
        _METHODS.setdefault(m.name, m)
    _BUILTIN.update(s.name for s in _builtin_ops.OPS)
    _BUILTIN.update(m.name for m in _builtin_ops.METHODS)
