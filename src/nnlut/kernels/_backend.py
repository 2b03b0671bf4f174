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
    softmax(exp, reciprocal, x, dim)                 -> y
    attention_softmax(exp, reciprocal, scores, scale, mask, out) -> out (out may be scores)
    layernorm(rsqrt, x, normalized_shape, weight, bias, eps)     -> y
    rmsnorm(rsqrt, x, weight, eps, weight_offset)                -> y
    flash_attention(exp, reciprocal, q, k, v, mask, bias, scale, softcap, lo, hi, skip_ok) -> out
                                                     (see nnlut.kernels._flash)

Tables are not tensors, so ops take them as keys (:func:`key_of`), resolved at call time
(:func:`table_of`) in a process-local registry that holds tables weakly. Parameter caches
belong to the backends (:class:`ParamCache`), never to the tables.
"""

from __future__ import annotations

import itertools
import os
import threading
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from .._errors import NNLUTError

OPS = ("pwl", "fixed", "softmax", "attention_softmax", "layernorm", "rmsnorm", "flash_attention")


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


# ---------------------------------------------------------------------------- table keys
# keys carry a per-process prefix, so a key from another process (a traced or exported graph
# loaded elsewhere) is refused instead of naming some other table
_PREFIX = (int.from_bytes(os.urandom(3), "little") | 1) << 32
_COUNTER = itertools.count(1)
_LOCK = threading.Lock()
_BY_ID: dict[int, tuple[weakref.ref, int]] = {}
_BY_KEY: dict[int, weakref.ref] = {}


def key_of(table: Any) -> int:
    """The process-local int key under which ops find ``table`` (registered on first use,
    held weakly: the key lives as long as the table)."""
    return _key_of(table)


@torch.compiler.assume_constant_result
def _key_of(table: Any) -> int:
    # run, not traced, under torch.compile: the key is a constant of the graph (guarded by the
    # table's identity)
    hit = _BY_ID.get(id(table))
    if hit is not None and hit[0]() is table:
        return hit[1]
    with _LOCK:
        hit = _BY_ID.get(id(table))
        if hit is not None and hit[0]() is table:
            return hit[1]
        key = _PREFIX + next(_COUNTER)
        ident = id(table)

        def _drop(_: Any, ident: int = ident, key: int = key) -> None:
            _BY_KEY.pop(key, None)
            cur = _BY_ID.get(ident)
            if cur is not None and cur[1] == key:
                del _BY_ID[ident]

        try:
            ref = weakref.ref(table, _drop)
        except TypeError:
            raise NNLUTError(f"{type(table).__name__} cannot be used by the kernels (it does not support weak "
                             "references)") from None
        _BY_ID[ident] = (ref, key)
        _BY_KEY[key] = ref
    return key


def table_of(key: int) -> Any:
    """The table registered under ``key``."""
    ref = _BY_KEY.get(key)
    table = ref() if ref is not None else None
    if table is None:
        raise NNLUTError(f"table key {key} is not registered in this process (a traced or exported graph names its "
                         "tables by keys valid only in the process, and while the tables live, that made it)")
    return table


class ParamCache:
    """Per-table derived parameters (packed structs, device tensors), held as long as the
    table lives: ``cache.get(table, tag, make)`` returns ``make()``'s value, made once."""

    def __init__(self) -> None:
        self._data: dict[int, dict[Any, Any]] = {}

    def get(self, table: Any, tag: Any, make: Callable[[], Any]) -> Any:
        key = key_of(table)
        slot = self._data.get(key)
        if slot is None:
            slot = self._data[key] = {}
            weakref.finalize(table, self._data.pop, key, None)
        hit = slot.get(tag)
        if hit is None:
            hit = slot[tag] = make()
        return hit
