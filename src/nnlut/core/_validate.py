"""Hardening of table files: bounds on what a file may hold, and consistency of the stored
network with the table.

:func:`build_table` wraps the structural parser of :mod:`._io` so that every malformed input
(wrong types, numbers beyond the float range, absurd sizes, a ``fit`` block that is not plain
JSON) becomes one :class:`NNLUTError`, and a file whose ``network`` block disagrees with its
breakpoints, slopes and intercepts (an edited value, a discontinuous table claiming a network)
is refused.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from .._errors import NNLUTError
from ._table import Table

MAX_ENTRIES = 1 << 16  # far above any table nnlut fits (4096) and below any memory trouble
# a network and its table agree to float rounding of the prefix sums that convert one into the
# other: a few hundred ulps of the largest value involved
NETWORK_RTOL = 1e-9


def _check_numbers(data: Mapping[str, Any]) -> None:
    for key in ("breakpoints", "slopes", "intercepts"):
        v = data.get(key)
        if isinstance(v, list) and len(v) > MAX_ENTRIES:
            raise NNLUTError(f"{key!r} has {len(v)} values; at most {MAX_ENTRIES} are allowed")
        if isinstance(v, list):
            for i, x in enumerate(v):
                if isinstance(x, int) and not isinstance(x, bool) and abs(x) > 1e308:
                    raise NNLUTError(f"{key!r}[{i}] is beyond the float range")
                if isinstance(x, float) and not math.isfinite(x):
                    raise NNLUTError(f"{key!r}[{i}] must be finite, got {x!r}")


def _check_meta(data: Mapping[str, Any]) -> None:
    meta = data.get("fit")
    if meta is None:
        return
    try:
        json.dumps(meta, allow_nan=False)
    except (ValueError, TypeError, RecursionError):
        raise NNLUTError("'fit' must hold plain JSON values (no NaN or Infinity)") from None


def check_network(data: Mapping[str, Any], table: Table) -> None:
    """Refuse a table whose stored ``network`` does not describe it, or a fitted one (with its
    ``fit`` record) whose network was removed: nnlut writes the network of every continuous table."""
    if "network" not in data or data["network"] is None:
        if data.get("fit") and table.is_continuous():
            raise NNLUTError("a fitted continuous table must carry its 'network' (removed: the check of "
                             "its values against it cannot be skipped)")
        return
    from ._network import ReluNetwork

    net = ReluNetwork.from_dict(data["network"])
    if not table.is_continuous():
        raise NNLUTError("'network' is given but the table is not continuous (an edited or foreign value)")
    # compare both on every breakpoint of either and between them
    with np.errstate(all="ignore"):
        bps = np.unique(np.concatenate([table.breakpoints, *net.to_table_arrays()[:1]]))
    if len(bps) > 2 * MAX_ENTRIES:
        raise NNLUTError("'network' has more switch points than a table may have")
    lo = bps[0] - 1.0 if len(bps) else -1.0
    hi = bps[-1] + 1.0 if len(bps) else 1.0
    pts = np.concatenate([[lo], bps, (bps[:-1] + bps[1:]) / 2 if len(bps) > 1 else [], [hi]])
    with np.errstate(all="ignore"):
        want = table._pwl_numpy(pts)
        got = net(pts)
    scale = float(np.max(np.abs(want))) + float(np.max(np.abs(table.intercepts))) + 1e-300
    err = np.abs(got - want)
    if not np.all(np.isfinite(got)) or float(np.max(err)) > NETWORK_RTOL * scale * max(1, table.entries):
        i = int(np.argmax(np.where(np.isfinite(err), err, np.inf)))
        raise NNLUTError(f"'network' disagrees with the table at x = {pts[i]:g} (table {want[i]:g}, network {got[i]:g}): "
                         "an edited value")


# a table's values may miss the function it names by at most this share of the function's
# spread on the table's domain (the coarsest tables nnlut fits, 2-entry linear mode, reach ~0.5)
VALUES_MAX_SHARE = 0.75
# ... and must not be this many times closer to another registered function than to its own
VALUES_OTHER_RATIO = 4.0
VALUES_GRID = 1025


def check_seed(seed: Any, what: str = "seed") -> int:
    """A random seed: a non-negative integer (not a bool), or one :class:`NNLUTError` naming it."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise NNLUTError(f"{what} must be a non-negative integer, got {seed!r}")
    return int(seed)


def _max_err(y: np.ndarray, f: np.ndarray) -> float:
    with np.errstate(all="ignore"):
        e = np.abs(y - f)
    return float(np.max(np.where(np.isfinite(e), e, np.inf)))


def check_values(table: Any, function: str | None = None) -> None:
    """Refuse a float table whose values are not those of the function it names (``function``,
    default the table's own ``function``): on a grid over its domain, its max error must stay
    within 75% of the function's spread there, and no other registered function may fit it four
    times better (a relabelled file: an exp table saved as GELU). Tables of unregistered
    functions and fixed-point tables are not checked."""
    from ._functions import get_function, list_functions

    name = function if function is not None else getattr(table, "function", None)
    if not isinstance(table, Table) or not isinstance(name, str) or name not in list_functions():
        return
    spec = get_function(name)
    lo, hi = table.domain or spec.domain
    grid = np.linspace(lo, hi, VALUES_GRID)
    with np.errstate(all="ignore"):
        y = np.asarray(table(grid), dtype=np.float64)
        f = spec(grid)
    ok = np.isfinite(f)
    if not ok.all():
        raise NNLUTError(f"its domain [{lo:g}, {hi:g}] is not where {name} is defined (e.g. at x = "
                         f"{grid[np.argmin(ok)]:g}): a relabelled table")
    spread = float(np.max(f[ok]) - np.min(f[ok])) or float(np.max(np.abs(f[ok]))) or 1.0
    err = _max_err(y[ok], f[ok])
    if err > VALUES_MAX_SHARE * spread:
        raise NNLUTError(f"its values are not those of {name}: off by up to {err:.3g} on [{lo:g}, {hi:g}], where "
                         f"{name} spans {spread:.3g} (a relabelled or edited table)")
    if err <= 1e-3 * spread:
        return
    for other in list_functions():
        if other == name:
            continue
        with np.errstate(all="ignore"):
            g = get_function(other)(grid)
        e2 = _max_err(y[ok], g[ok])
        if e2 * VALUES_OTHER_RATIO < err:
            raise NNLUTError(f"its values are those of {other}, not {name} (max error {e2:.3g} against {other}, "
                             f"{err:.3g} against {name} on [{lo:g}, {hi:g}]): a relabelled table")


def build_table(data: Any, parse: Callable[[Any], Any]) -> Any:
    """Build a table from parsed JSON with ``parse`` (the structural parser) and check it.

    Every problem raises :class:`NNLUTError`; nothing else escapes.
    """
    try:
        if isinstance(data, Mapping):
            _check_numbers(data)
            _check_meta(data)
        table = parse(data)
        if isinstance(data, Mapping) and isinstance(table, Table):
            check_network(data, table)
            check_values(table)
        return table
    except NNLUTError:
        raise
    except RecursionError:
        raise NNLUTError("nested too deeply") from None
    except (OverflowError, TypeError, ValueError, KeyError, IndexError, AttributeError) as e:
        raise NNLUTError(f"invalid value ({type(e).__name__}: {e})") from None
