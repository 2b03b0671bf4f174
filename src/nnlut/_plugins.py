"""Extension points that a lower layer declares and a higher layer fills.

A lower layer (the core) names what it needs (the torch op that evaluates a table, the reader
of a table kind) and a higher layer registers an implementation. An entry may be registered
as the object itself or, for a built-in default, as ``"module:attribute"``, which is imported on
first use: the core runs without importing the layers above it until a call needs them.
"""

from __future__ import annotations

import importlib
from typing import Any

from ._errors import NNLUTError


class Plugins:
    """A named set of implementations: ``register(name, obj_or_ref)``, ``get(name)``."""

    def __init__(self, what: str) -> None:
        self.what = what
        self._entries: dict[str, Any] = {}

    def register(self, name: str, impl: Any) -> None:
        self._entries[name] = impl

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name in self._entries

    def names(self) -> list[str]:
        return list(self._entries)

    def get(self, name: str) -> Any:
        if name not in self._entries:
            raise NNLUTError(f"no {self.what} {name!r}; known: {', '.join(map(repr, self._entries)) or 'none'}")
        impl = self._entries[name]
        if isinstance(impl, str):
            module, _, attr = impl.partition(":")
            impl = self._entries[name] = getattr(importlib.import_module(module), attr)
        return impl
