"""The kernel backend interface: what a backend is, how it registers, how an op picks one.

A backend is a name, a ``supports(op, x)`` check ("can this backend take this tensor for this
op?", written once per backend) and implementations by op name. Ops (see :mod:`._ops`) ask
:func:`run`, which tries the registered backends from the highest priority down; an
implementation may still decline a call by returning None (e.g. a mask layout the fused
kernel does not read), and the next backend gets it. The pure-torch reference backend has the
lowest priority and takes everything, so every call has an answer.

Op names and implementation signatures (tables are the objects themselves):

    pwl(table, x)                                    -> y
    fixed(table, x)                                  -> y
    half(table, x)                                   -> y
    softmax(exp, reciprocal, x, dim)                 -> y
    attention_softmax(exp, reciprocal, scores, scale, mask, out) -> out (out may be scores)
    layernorm(rsqrt, x, normalized_shape, weight, bias, eps)     -> y
    rmsnorm(rsqrt, x, weight, eps, weight_offset)                -> y
    flash_attention(exp, reciprocal, q, k, v, mask, bias, scale, softcap, lo, hi, skip_ok) -> out
                                                     (see nnlut.kernels._flash)

Ops take each table as tensors and a layout string (:mod:`._args`) and hand the backends the
table object those describe. Parameter caches belong to the backends (:class:`ParamCache`),
never to the tables.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .._errors import NNLUTError

OPS = ("pwl", "fixed", "half", "softmax", "attention_softmax", "layernorm", "rmsnorm", "flash_attention")


@dataclass(frozen=True)
class Backend:
    """A set of kernels: ``supports(op, x)`` says whether it takes tensor ``x`` (the op's main
    input) for ``op``; ``impls`` maps op names (see :data:`OPS`) to implementations; higher
    ``priority`` is tried first."""

    name: str
    supports: Callable[[str, Any], bool]
    impls: Mapping[str, Callable[..., Any]] = field(default_factory=dict)
    priority: int = 0

    def __post_init__(self) -> None:
        unknown = sorted(set(self.impls) - set(OPS))
        if unknown:
            raise NNLUTError(f"backend {self.name!r} implements unknown op(s) {unknown}; ops: {list(OPS)}")


_BACKENDS: dict[str, Backend] = {}
_ORDER: list[Backend] = []


def register_backend(backend: Backend) -> None:
    """Add ``backend`` (replacing one of the same name)."""
    if not isinstance(backend, Backend):
        raise NNLUTError(f"register_backend takes a Backend, got {type(backend).__name__}")
    _BACKENDS[backend.name] = backend
    _ORDER[:] = sorted(_BACKENDS.values(), key=lambda b: -b.priority)


def unregister_backend(name: str) -> None:
    """Remove the backend called ``name``."""
    if name not in _BACKENDS:
        raise NNLUTError(f"no backend {name!r}; registered: {sorted(_BACKENDS)}")
    del _BACKENDS[name]
    _ORDER[:] = sorted(_BACKENDS.values(), key=lambda b: -b.priority)


def backends() -> list[Backend]:
    """The registered backends, highest priority first."""
    return list(_ORDER)


def backend_for(op: str, x: Any) -> Backend:
    """The first backend that implements ``op`` and supports ``x``."""
    for b in _ORDER:
        if op in b.impls and b.supports(op, x):
            return b
    raise NNLUTError(f"no kernel backend takes {op} on a {x.dtype} tensor on {x.device}")


def run(op: str, x: Any, *args: Any) -> Any:
    """Call ``op``'s implementation of the first backend that supports ``x`` and accepts the
    call; ``args`` follow the signature in the module docstring, ``x`` among them."""
    for b in _ORDER:
        if op in b.impls and b.supports(op, x):
            y = b.impls[op](*args)
            if y is not None:
                return y
    raise NNLUTError(f"no kernel backend takes {op} on a {x.dtype} tensor on {x.device}")


def _drop(d: dict, key: Any, ref: weakref.ref) -> None:
    """Remove ``d[key]`` if it still belongs to the dead reference ``ref`` (a new object may
    have taken its id)."""
    hit = d.get(key)
    if hit is not None and hit[0] is ref:
        del d[key]


class ParamCache:
    """Per-table derived parameters (packed structs, device tensors), held as long as the
    table lives: ``cache.get(table, tag, make)`` returns ``make()``'s value, made once."""

    def __init__(self) -> None:
        self._data: dict[int, tuple[weakref.ref, dict[Any, Any]]] = {}

    def get(self, table: Any, tag: Any, make: Callable[[], Any]) -> Any:
        key = id(table)
        hit = self._data.get(key)
        if hit is None or hit[0]() is not table:
            try:
                ref = weakref.ref(table, lambda r, k=key, d=self._data, drop=_drop: drop(d, k, r))
            except TypeError:
                raise NNLUTError(f"{type(table).__name__} cannot be used by the kernels (it does not support weak "
                                 "references)") from None
            hit = self._data[key] = (ref, {})
        slot = hit[1]
        hit = slot.get(tag)
        if hit is None:
            hit = slot[tag] = make()
        return hit
