"""Fitted tables without refitting: shipped defaults, an on-disk cache, then a fit.

``fitted_table(function, method, entries, scaling, seed)`` looks in, in order:

1. the process memo;
2. ``default_tables.json`` shipped in the package (the 16-entry NN-LUT tables of every
   built-in function, both scalings, seed 0; written by ``scripts/make_default_tables.py``);
3. the on-disk cache, ``$NNLUT_CACHE`` (default ``~/.cache/nnlut``) ``/tables/<nnlut
   version>/<key>.json``, keyed by function, method, entries, scaling and seed;
4. a fresh fit, which is then written to that cache (atomically).

A registered method with a fit of its own (``MethodSpec.fit``) is fitted by it, once per
process (memoised, neither shipped nor cached on disk).

A shipped or cached entry is used only when it was made by this nnlut version and with the
error measure a fresh fit would use now (a change of a function's default objective refits).
"""

from __future__ import annotations

import hashlib
import json
from functools import lru_cache
from pathlib import Path
from typing import Any

from .._errors import NNLUTError
from .._files import atomic_write_text, cache_dir
from .._logging import logger
from ..core._table import Table

SHIPPED = Path(__file__).with_name("default_tables.json")
# the functions approximate_ can ask for, and the scalings that change their fit
FUNCTIONS = ("gelu", "gelu_tanh", "silu", "exp", "reciprocal", "rsqrt")
SCALED = ("reciprocal", "rsqrt")
# the further functions that non-linear calls inside a model read (nnlut.ops._calls)
CALL_FUNCTIONS = ("sigmoid", "tanh", "softplus", "erf", "log")

_MEMO: dict[Any, Table] = {}


def table_key(function: str, method: str, entries: int, scaling: str, seed: int) -> str:
    """The cache key: ``function-method-entries-scaling-seed`` (scaling only where it matters)."""
    return f"{function}-{method}-{entries}-{scaling if function in SCALED else 'any'}-{seed}"


def _version() -> str:
    from .. import __version__

    return __version__


def cache_root() -> Path:
    return cache_dir() / "tables" / _version()


@lru_cache(maxsize=1)
def _shipped() -> dict[str, Any]:
    try:
        data = json.loads(SHIPPED.read_text())
    except (OSError, ValueError):
        return {}
    if data.get("nnlut_version") != _version():
        logger.debug("shipped default tables are for nnlut %s, not %s: ignored", data.get("nnlut_version"), _version())
        return {}
    return data.get("tables", {})


def fit_fresh(function: str, method: str, entries: int, scaling: str, seed: int) -> Table:
    """Fit the table (no lookup): what every cached or shipped entry must equal."""
    from ..fitting import fit

    rr = scaling == "full" and function in SCALED
    return fit(function, entries, method=method, range_reduction=rr, seed=seed)  # type: ignore[arg-type]


def _is_current(table: Table, function: str, scaling: str) -> bool:
    """Whether ``table`` was fitted with the error measure that :func:`fit_fresh` uses now."""
    from ..core._functions import get_function

    rr = scaling == "full" and function in SCALED
    want = "rel" if rr else get_function(function).error
    return table.meta.get("error_measure", want) == want


def fitted_table(function: str, method: str, entries: int, scaling: str, seed: int = 0) -> Table:
    """The table for ``function`` fitted with ``method``; see the module docstring for where
    it comes from. Immutable and shared: callers that need their own copy call ``replace()``."""
    key = table_key(function, method, entries, scaling, seed)
    own = _own_fit(method)
    if own is not None:  # a registered method's own fit: memoised in the process only
        hit = _MEMO.get((key, own))
        if hit is None:
            hit = _MEMO[(key, own)] = _checked(own(function, entries, scaling, seed), function, entries, method)
        return hit
    hit = _MEMO.get(key)
    if hit is not None:
        return hit
    shipped = _shipped().get(key)
    table = Table.from_dict(shipped) if shipped is not None else None
    if table is None or not _is_current(table, function, scaling):
        path = cache_root() / f"{key}.json"
        table = _read(path, key, function, entries)
        if table is None or not _is_current(table, function, scaling):
            logger.info("fitting the %s table (%s, %d entries); cached in %s", function, method, entries, path)
            table = fit_fresh(function, method, entries, scaling, seed)
            _write(path, table)
    _MEMO[key] = table
    return table


def _own_fit(method: str) -> Any:
    from ._registry import method_spec

    return method_spec(method).fit


def _checked(table: Any, function: str, entries: int, method: str) -> Table:
    from ..core._table import is_table

    if not is_table(table) or table.function != function or table.entries != entries:
        got = (f"a {table.entries}-entry {table.function} table" if is_table(table) else type(table).__name__)
        raise NNLUTError(f"method {method!r}'s fit must return a {entries}-entry {function} table, got {got}")
    return table


def _digest(table_dict: Any) -> str:
    return hashlib.sha256(json.dumps(table_dict, sort_keys=True, allow_nan=False).encode()).hexdigest()


def _read(path: Path, key: str, function: str, entries: int) -> Table | None:
    """The cached table for ``key``, or None (refit) unless the file is a regular file holding
    that key, a table whose content hash matches the one recorded, for ``function`` with
    ``entries`` entries: a partial, stale, edited or copied-over file is refitted."""
    try:
        if not path.is_file():
            return None
        data = json.loads(path.read_text())
        if (not isinstance(data, dict) or data.get("key") != key or data.get("sha256") != _digest(data.get("table"))):
            return None
        table = Table.from_dict(data["table"])
    except Exception:  # a missing, partial or unreadable file is refitted
        return None
    if table.function != function or table.entries != entries:
        return None
    return table


def _write(path: Path, table: Table) -> None:
    d = table.to_dict()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, json.dumps({"key": path.stem, "sha256": _digest(d), "table": d}, allow_nan=False))
    except (OSError, NNLUTError) as e:  # a read-only home or a full disk only costs a refit next time
        logger.debug("could not cache %s: %s", path, e)


def default_keys() -> list[tuple[str, str, int, str, int]]:
    """(function, method, entries, scaling, seed) of every shipped table."""
    from ..ops._calls import register_extra_functions

    register_extra_functions()  # softplus, erf and log are the call kinds' own
    out = []
    for fn in FUNCTIONS + CALL_FUNCTIONS:
        for scaling in (("full", "paper") if fn in SCALED else ("full",)):
            out.append((fn, "nnlut", 16, scaling, 0))
    return out


def write_shipped(path: Path = SHIPPED, only: list[str] | None = None) -> dict[str, Any]:
    """Fit the default tables afresh and write them to ``path`` (the package's JSON). ``only``:
    the keys to refit; the other entries of ``path`` (of this version) are kept as they are."""
    keys = {table_key(*k): k for k in default_keys()}
    unknown = sorted(set(only or ()) - set(keys))
    if unknown:
        raise ValueError(f"not a default table: {unknown[0]!r}; the keys are {', '.join(keys)}")
    old: dict[str, Any] = {}
    if only is not None:
        try:
            data = json.loads(path.read_text())
            old = data.get("tables", {}) if data.get("nnlut_version") == _version() else {}
        except (OSError, ValueError):
            old = {}
    tables = {key: old[key] if only is not None and key not in only and key in old else fit_fresh(*k).to_dict()
              for key, k in keys.items()}
    data = {"nnlut_version": _version(), "tables": tables}
    path.write_text(json.dumps(data, indent=1, allow_nan=False) + "\n")
    return data
