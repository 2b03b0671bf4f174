"""Op and method registries: what ``approximate_`` can replace, and with what.

An **op** (:class:`OpSpec`) says how its modules are found (``find``), which tables its kernel
reads (``roles``: table role -> function fitted for it), which module face replaces a found
module (``face``) and, optionally, its kernel for every table method (``kernel``). A **method**
(:class:`MethodSpec`) says whether its tables are fitted (``fitted``: with ``nnlut.fitting.fit``
under the method's name, or with its own ``fit``) and, optionally, its kernel for every op
without one of its own (``kernel``).

Kernels live in one registry, keyed by (op, method): ``nnlut.ops.register_kernel``;
:func:`register_op` and :func:`register_method` put a spec's kernel and roles there, and
:meth:`MethodSpec.make` builds a kernel through it. The name lists (:data:`OPS`,
:data:`METHODS`) are live views of these registries.

The built-in ops (gelu, silu, softmax, layernorm, rmsnorm) and methods (nnlut, linear,
exponential, ibert, exact) are registered here; :func:`register_op` and
:func:`register_method` add more (a new op is a spec, not an edit of ``approximate_``).
Attention softmaxes reached through transformers' attention interface are found by the
transformers integration and use the ``softmax`` spec's tables and kernel.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from torch import nn

from .._errors import NNLUTError
from ..ops._kernels import (
    ANY_OP,
    TABLES,
    make_kernel,
    register_kernel,
    register_roles,
    unregister_kernel,
    unregister_kernels,
)

# find(name, module, verify) -> None (not this op) or the site's details:
#   {"function": str, "eps": float, "weight_offset": float} (all optional)
Finder = Callable[[str, nn.Module, bool], "dict[str, Any] | None"]


@dataclass(frozen=True)
class OpSpec:
    """One replaceable op.

    Args:
        name: the op's name in ``ApproxConfig.ops`` and reports.
        roles: table role -> function name (``{"act": "gelu"}``); an ``act`` role takes the
            site's own function when it has one (``gelu_tanh``). Calibration observes the
            inputs of every role (the module face reports them to its observers).
        find: recognises the op's modules (see ``Finder``); called on every child module.
        face: ``face(kernel, site) -> nn.Module``, the module that replaces ``site.module``.
        kernel: ``kernel(method, tables, function) -> Kernel``, the op's kernel for every
            table method (nnlut, linear, exponential, registered fitted methods); None: the
            kernels registered in ``nnlut.ops`` for this op (``register_kernel``).
    """

    name: str
    roles: Mapping[str, str]
    find: Finder
    face: Callable[[Any, Any], nn.Module]
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
        kernel: ``kernel(op, tables, function) -> Kernel``, the method's kernel for every op
            that has none of its own for it (``tables``, role -> table, is None for methods
            without fitted tables); None: only the ops' own kernels.
        fitted: the method's kernels read fitted tables.
        number_formats: the tables may be turned into int16 / FP16 (``number_format``).
        fit: ``fit(function, entries, scaling, seed) -> Table``, how its tables are fitted;
            None: ``nnlut.fitting.fit(function, entries, method=name)``.
    """

    name: str
    kernel: Callable[[str, Mapping[str, Any] | None, str | None], Any] | None = None
    fitted: bool = False
    number_formats: bool = False
    fit: Callable[[str, int, str, int], Any] | None = None

    def make(self, op: str, tables: Mapping[str, Any] | None, function: str | None) -> Any:
        """The kernel of ``op`` with this method (looked up in the kernel registry)."""
        return make_kernel(op, self.name, tables, function=function)


_OPS: dict[str, OpSpec] = {}
_METHODS: dict[str, MethodSpec] = {}


def _check_new(spec: Any, cls: type, registry: Mapping[str, Any], what: str, overwrite: bool) -> None:
    _builtins()
    if not isinstance(spec, cls):
        raise NNLUTError(f"register_{what} takes a{'n' if what == 'op' else ''} {cls.__name__}, got {type(spec).__name__}")
    if not isinstance(spec.name, str) or not spec.name:
        raise NNLUTError(f"a{'n' if what == 'op' else ''} {what}'s name must be a non-empty string, got {spec.name!r}")
    if spec.name in registry and not overwrite:
        raise NNLUTError(f"{what} {spec.name!r} is already registered; pass overwrite=True to replace it")


def register_op(spec: OpSpec, *, overwrite: bool = False) -> OpSpec:
    """Add an op to ``approximate_`` (its roles and kernel to the kernel registry); returns ``spec``."""
    _check_new(spec, OpSpec, _OPS, "op", overwrite)
    register_roles(spec.name, spec.roles, overwrite=overwrite)
    if spec.kernel is not None:
        own = spec.kernel
        register_kernel(spec.name, TABLES, lambda op, method, tables, fn: own(method, tables, fn), overwrite=True)
    elif spec.name in _OPS and _OPS[spec.name].kernel is not None:  # the replaced spec's kernel goes with it
        unregister_kernel(spec.name, TABLES)
    _OPS[spec.name] = spec
    return spec


def register_method(spec: MethodSpec, *, overwrite: bool = False) -> MethodSpec:
    """Add a method to ``approximate_`` (its kernel to the kernel registry); returns ``spec``."""
    _check_new(spec, MethodSpec, _METHODS, "method", overwrite)
    if spec.fitted and spec.fit is None:
        from ..fitting._fit import METHODS as FIT_METHODS

        if spec.name not in FIT_METHODS:
            raise NNLUTError(f"method {spec.name!r} has fitted tables but no fit, and nnlut.fitting.fit has no method "
                             f"{spec.name!r} (it has {', '.join(FIT_METHODS)}); give MethodSpec(fit=...)")
    if spec.kernel is not None:
        own = spec.kernel
        register_kernel(ANY_OP, spec.name, lambda op, method, tables, fn: own(op, tables, fn), overwrite=True)
    elif spec.name in _METHODS and _METHODS[spec.name].kernel is not None:
        unregister_kernel(ANY_OP, spec.name)
    _METHODS[spec.name] = spec
    return spec


def unregister(name: str) -> None:
    """Remove a registered op or method and its kernels (a built-in one cannot be removed)."""
    _builtins()
    if name in _BUILTIN:
        raise NNLUTError(f"{name!r} is built in and cannot be unregistered")
    if _OPS.pop(name, None) is None and _METHODS.pop(name, None) is None:
        raise NNLUTError(f"no op or method {name!r} is registered")
    unregister_kernels(name)


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


def table_method_names() -> tuple[str, ...]:
    """The registered methods whose kernels read fitted tables."""
    _builtins()
    return tuple(name for name, spec in _METHODS.items() if spec.fitted)


class _Names(Sequence[str]):
    """A live, read-only view of a registry's names (a sequence of str)."""

    def __init__(self, names: Callable[[], tuple[str, ...]]) -> None:
        self._names = names

    def __getitem__(self, i: Any) -> Any:
        return self._names()[i]

    def __len__(self) -> int:
        return len(self._names())

    def __iter__(self) -> Iterator[str]:
        return iter(self._names())

    def __contains__(self, name: object) -> bool:
        return name in self._names()

    def __eq__(self, other: object) -> bool:
        return isinstance(other, (tuple, list, _Names)) and tuple(self) == tuple(other)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return repr(self._names())


# the registered ops and methods, built-in and added (live: registering one adds it here)
OPS: Sequence[str] = _Names(op_names)
METHODS: Sequence[str] = _Names(method_names)
TABLE_METHODS: Sequence[str] = _Names(table_method_names)

_BUILTIN: set[str] = set()


def _builtins() -> None:
    """Register the built-in ops and methods (once, on first use: they import torch code)."""
    if _BUILTIN:
        return
    from . import _builtin_ops

    _BUILTIN.update(s.name for s in _builtin_ops.OPS)
    _BUILTIN.update(m.name for m in _builtin_ops.METHODS)
    for spec in _builtin_ops.OPS:
        _OPS.setdefault(spec.name, spec)
    for m in _builtin_ops.METHODS:
        _METHODS.setdefault(m.name, m)
