"""Extension points that a lower layer declares and a higher layer fills.

A lower layer (the core) names what it needs (the torch op that evaluates a table, the reader
of a table kind) and a higher layer registers its implementation when it is imported, so
every dependency points down and the layering test sees it. Which packages fill a point is
said once, by the facade (``nnlut/__init__.py``, above every layer): :func:`provide`. A point
imports them on its first miss, so the core runs without the layers above it until a call
needs one.
"""

from __future__ import annotations

import importlib
from typing import Any

from ._errors import NNLUTError

# extension point name -> the packages that register into it on import (see provide)
_PROVIDERS: dict[str, tuple[str, ...]] = {}


def provide(what: str, *packages: str) -> None:
    """Declare that importing ``packages`` fills the extension point called ``what``."""
    _PROVIDERS[what] = _PROVIDERS.get(what, ()) + tuple(p for p in packages if p not in _PROVIDERS.get(what, ()))


class Plugins:
    """A named set of implementations: ``register(name, obj)``, ``get(name)``."""

    def __init__(self, what: str) -> None:
        self.what = what
        self._entries: dict[str, Any] = {}
        self._imported: set[str] = set()

    def register(self, name: str, impl: Any) -> None:
        self._entries[name] = impl

    def _load(self) -> None:
        """Import the packages declared to fill this point (once each)."""
        for package in _PROVIDERS.get(self.what, ()):
            if package not in self._imported:
                self._imported.add(package)
                importlib.import_module(package)

    def __contains__(self, name: object) -> bool:
        if isinstance(name, str) and name not in self._entries:
            self._load()
        return isinstance(name, str) and name in self._entries

    def names(self) -> list[str]:
        self._load()
        return list(self._entries)

    def get(self, name: str) -> Any:
        if name not in self._entries:
            self._load()
        if name not in self._entries:
            raise NNLUTError(f"no {self.what} {name!r}; known: {', '.join(map(repr, self._entries)) or 'none'}")
        return self._entries[name]
