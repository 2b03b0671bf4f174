"""Versioned JSON files for tables, and atomic writes.

File layout (version 1)::

    {
      "format": "nnlut.table", "version": 1,
      "function": "gelu", "entries": 16,
      "breakpoints": [...N-1...], "slopes": [...N...], "intercepts": [...N...],
      "domain": [lo, hi], "tails": ["extend", "extend"], "limits": [0.0, "inf"],
      "scaling": null | {"mode": "paper", "exponent": -0.5, "period": 4, "negative": "nan"},
      "network": {"n": [...], "b": [...], "m": [...], "bias": b0, "skip": a},
      "fit": {...}
    }

Non-finite limits are written as the strings "inf", "-inf", "nan" so that files stay strict
JSON. Floats are written with ``repr`` precision, so a saved table loads back bit-exactly.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from typing import Any

from .._errors import NNLUTError
from .._files import atomic_write_bytes, atomic_write_text, read_json  # noqa: F401  (writers import them from here)
from .._plugins import Plugins
from ._scaling import Scaling
from ._table import Table, register_table_kind

FORMAT = "nnlut.table"
VERSION = 1
SUPPORTED_VERSIONS = (1,)


def _enc(v: float) -> float | str:
    if math.isnan(v):
        return "nan"
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    return v


def _dec(v: Any, what: str) -> float:
    if isinstance(v, str) and v in ("nan", "inf", "-inf"):
        return float(v)
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise NNLUTError(f"{what} must be a number or 'inf'/'-inf'/'nan', got {v!r}")
    return float(v)


def encode_limits(limits: tuple[float, float]) -> list[float | str]:
    return [_enc(float(v)) for v in limits]


def _pair(value: Any, key: str, form: str) -> tuple[float, float] | None:
    """A JSON pair of numbers (``form`` says what it holds), or None when absent."""
    if value is None:
        return None
    if not (isinstance(value, list) and len(value) == 2):
        raise NNLUTError(f"'{key}' must be {form}, got {value!r}")
    return (_dec(value[0], f"'{key}'[0]"), _dec(value[1], f"'{key}'[1]"))


def decode_limits(limits: Any) -> tuple[float, float] | None:
    return _pair(limits, "limits", "[at -inf, at +inf]")


def check_version(data: Any, kind: str, versions: tuple[int, ...]) -> None:
    """Check that ``data`` is an object of table kind ``kind`` in one of ``versions``."""
    if not isinstance(data, Mapping):
        raise NNLUTError(f"a table must be a JSON object, got {type(data).__name__}")
    fmt = data.get("format", kind)
    if fmt != kind:
        raise NNLUTError(f"'format' is {fmt!r}, expected {kind!r}")
    if "version" not in data:
        raise NNLUTError("missing 'version'")
    v = data["version"]
    if isinstance(v, bool) or not isinstance(v, int) or v not in versions:
        raise NNLUTError(f"unknown version {data['version']!r}; this nnlut reads versions {list(versions)}")


def table_to_dict(table: Table) -> dict[str, Any]:
    d: dict[str, Any] = {
        "format": FORMAT,
        "version": VERSION,
        "function": table.function,
        "entries": table.entries,
        "breakpoints": table.breakpoints.tolist(),
        "slopes": table.slopes.tolist(),
        "intercepts": table.intercepts.tolist(),
        "domain": list(table.domain) if table.domain else None,
        "tails": list(table.tails),
        "limits": [_enc(v) for v in table.limits],
        "scaling": table.scaling.to_dict() if table.scaling else None,
    }
    if table.is_continuous():
        d["network"] = table.network().to_dict()
    if table.meta:
        d["fit"] = table.meta
    return d


def table_from_dict(data: Mapping[str, Any]) -> Table:
    check_version(data, FORMAT, SUPPORTED_VERSIONS)
    for key in ("breakpoints", "slopes", "intercepts"):
        if key not in data:
            raise NNLUTError(f"missing {key!r}")
        if not isinstance(data[key], list):
            raise NNLUTError(f"{key!r} must be a list, got {type(data[key]).__name__}")
        for i, v in enumerate(data[key]):
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise NNLUTError(f"{key!r}[{i}] must be a number, got {v!r}")
    entries = data.get("entries")
    if entries is not None and entries != len(data["slopes"]):
        raise NNLUTError(f"'entries' says {entries} but there are {len(data['slopes'])} slopes")
    domain = _pair(data.get("domain"), "domain", "[lo, hi]")
    tails = data.get("tails", ["extend", "extend"])
    if not (isinstance(tails, list) and len(tails) == 2):
        raise NNLUTError(f"'tails' must be a list of two, got {tails!r}")
    limits = decode_limits(data.get("limits"))
    scaling = data.get("scaling")
    function = data.get("function")
    if function is not None and not isinstance(function, str):
        raise NNLUTError(f"'function' must be a string or null, got {function!r}")
    meta = data.get("fit") or {}
    if not isinstance(meta, Mapping):
        raise NNLUTError("'fit' must be an object")
    table = Table(
        data["breakpoints"], data["slopes"], data["intercepts"],
        domain=domain, tails=tuple(tails), limits=limits,  # type: ignore[arg-type]
        scaling=Scaling.from_dict(scaling) if scaling is not None else None,
        function=function, meta=meta,
    )
    from ._validate import check_network, check_values

    # files, configs and the table cache all load through here: the stored network must describe
    # the table, and its values must be those of the function it names
    check_network(data, table)
    check_values(table)
    return table


def dumps(table: Table) -> str:
    return dumps_dict(table.to_dict())


def dumps_dict(d: Mapping[str, Any]) -> str:
    return json.dumps(d, indent=1, allow_nan=False) + "\n"


def save_text(path: str | os.PathLike[str], text: str) -> None:
    atomic_write_text(path, text)


def save_table(table: Table, path: str | os.PathLike[str]) -> None:
    atomic_write_text(path, dumps(table))


def _load_float(data: Mapping[str, Any]) -> Any:
    return table_from_dict(data)


# table kinds' readers by their files' "format" key; each validates its own layout. The
# fixed-point and half-precision kinds register theirs (register_kind) when nnlut.fixed is
# imported (on the first file of a kind not known yet).
LOADERS = Plugins("table kind")
LOADERS.register(FORMAT, _load_float)


def register_kind(cls: type, file_format: str, loader: Any) -> type:
    """Declare ``cls`` a table kind (:func:`nnlut.core._table.is_table` knows it) whose files
    carry ``"format": file_format`` and are read by ``loader(data) -> table``."""
    register_table_kind(cls)
    LOADERS.register(file_format, loader)
    return cls


def table_from_any_dict(data: Any) -> Any:
    """Build a table of any kind from its ``to_dict`` layout (dispatch on ``"format"``)."""
    if not isinstance(data, Mapping):
        raise NNLUTError(f"a table must be a JSON object, got {type(data).__name__}")
    kind = data.get("format", FORMAT)
    if kind not in LOADERS:
        raise NNLUTError(f"'format' is {kind!r}; this nnlut reads {', '.join(repr(k) for k in LOADERS.names())}")
    return LOADERS.get(kind)(data)


def load(path: str | os.PathLike[str]) -> Any:
    """Load a table file of any kind (float :class:`Table`, fixed point, FP16/BF16 parameters:
    what ``save``, ``nnlut fit`` and ``nnlut export`` write) and validate it.

    Returns a callable table (its input scaling included). Any problem (missing file, bad
    JSON, wrong lengths, unsorted or non-finite values, unknown kind or version) raises one
    :class:`NNLUTError` naming the file and the problem.
    """
    data = read_json(path, "table file")
    return table_from_data(data, f"table file {str(path)!r}")


def table_from_data(data: Any, where: str) -> Any:
    """A validated table of any kind from parsed JSON; every problem raises :class:`NNLUTError` naming
    ``where`` (the file) and the field (see :mod:`._validate`)."""
    from ._validate import build_table

    try:
        return build_table(data, table_from_any_dict)
    except NNLUTError as e:
        raise NNLUTError(f"{where}: {e}") from None
