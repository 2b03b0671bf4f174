"""A table as the arguments of an op: three tensors and a layout string.

Every table op (``torch.ops.nnlut.*``) takes each table it uses as four arguments::

    breakpoints, slopes, intercepts, layout

the table's parameter vectors as CPU tensors (float64 values of a float table, int64 codes of
a fixed-point table) and everything else about it (kind, domain, tails, limits, input scaling,
number format) as a compact, deterministic JSON string. A traced, compiled or exported graph
therefore holds the table's numbers as its own tensors (``torch.export`` lifts them as
constants, or reads them from the module's buffers), and a program loaded in another process
rebuilds the same table from its arguments: nothing refers to state of the process that made
the graph.

This module is the one owner of the derived forms of a table:

- :func:`table_args`: a table's op arguments (made once per live table);
- :func:`table_from_args`: the table back from op arguments (the original object when the
  tensors are the ones :func:`table_args` made or a module holds for it; otherwise rebuilt,
  validated, and cached by content);
- :func:`traced_table`: a view on op arguments that evaluates differentiably with torch
  operations on the tensors themselves, so it also works on the fake tensors of a trace (the
  backward of every op uses it).

Op tables are float tables (:class:`~nnlut.core.Table`, float64 parameters), fixed-point
tables (``nnlut.fixed-table``, int64 codes) and half-precision tables (``nnlut.half-table``,
float64 values exact in FP16 or BF16; the layout carries the source table's tails, limits and
range reduction).
"""

from __future__ import annotations

import contextvars
import json
import threading
import weakref
from collections import OrderedDict
from typing import Any

import numpy as np
import torch

from .._errors import NNLUTError
from ._backend import _drop

Args = tuple[torch.Tensor, torch.Tensor, torch.Tensor, str]

_FLOAT_KIND = "nnlut.table"
_FIXED_KIND = "nnlut.fixed-table"
_HALF_KIND = "nnlut.half-table"
_DTYPES = {_FLOAT_KIND: torch.float64, _FIXED_KIND: torch.int64, _HALF_KIND: torch.float64}
# keys of a table's to_dict() that are not part of its value on the datapath (the parameter
# vectors travel as tensors; a fit's record, a network form and a calibration source do not
# change what the table computes)
_NOT_VALUE = ("breakpoints", "slopes", "intercepts", "network", "fit", "meta", "source")


def _value_layout(d: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in d.items() if k not in _NOT_VALUE}
    if _kind_of(d) == _HALF_KIND:  # a half table's tails, limits and range reduction are its source's
        out["source"] = {k: v for k, v in d["source"].items() if k not in ("network", "fit", "meta")}
    return out

_LOCK = threading.Lock()
_BY_TABLE: dict[int, tuple[weakref.ref, Args]] = {}  # id(table) -> its arguments
# id(breakpoints tensor) -> (tensor ref, table ref, the tensor's version then)
_BY_TENSOR: dict[int, tuple[weakref.ref, weakref.ref, int]] = {}
_BY_CONTENT: OrderedDict[tuple, Any] = OrderedDict()  # rebuilt tables, most recent last
_CONTENT_MAX = 256
# the bindings in force, innermost first
_BOUND: contextvars.ContextVar[tuple[dict[int, tuple[Any, Args]], ...] | None] = contextvars.ContextVar(
    "nnlut_bound_tables", default=None)


def _kind_of(d: dict[str, Any]) -> str:
    return d.get("format", _FLOAT_KIND)


def layout_of(table: Any) -> tuple[dict[str, Any], tuple[list, list, list]]:
    """(layout dict, (breakpoints, slopes, intercepts)) of an op table."""
    to_dict = getattr(table, "to_dict", None)
    d = to_dict() if callable(to_dict) else None
    if not isinstance(d, dict) or _kind_of(d) not in _DTYPES:
        raise NNLUTError(f"the table ops take float, fixed-point and half-precision tables, got {type(table).__name__}"
                         + (f" of kind {_kind_of(d)!r}" if isinstance(d, dict) else ""))
    arrays = (d["breakpoints"], d["slopes"], d["intercepts"])
    return _value_layout(d), arrays


@torch.compiler.assume_constant_result
def _constant_args(table: Any) -> tuple[str, str, tuple[tuple, ...]]:
    # run, not traced, under torch.compile: (layout, dtype name, parameter values) are constants
    layout, arrays = layout_of(table)
    dtype = "int64" if _DTYPES[_kind_of(layout)] == torch.int64 else "float64"
    return _dumps(layout), dtype, tuple(tuple(a) for a in arrays)


def _dumps(layout: dict[str, Any]) -> str:
    return json.dumps(layout, sort_keys=True, separators=(",", ":"))


class bound_tables:
    """Context manager: inside it, :func:`table_args` gives each table of ``tables`` the
    tensors given for it (a module's buffers) instead of the table's own.

    ``tables``: ``{id(table): (table, (breakpoints, slopes, intercepts, layout))}``. An
    approximated module binds its buffers around its forward, so that a traced or exported
    graph reads the tables from the module's buffers (named by module path, in ``state_dict``,
    on the module's device); bindings nest (the inner one wins for the tables it names).
    """

    __slots__ = ("_tables", "_token")

    def __init__(self, tables: dict[int, tuple[Any, Args]]) -> None:
        self._tables = tables

    def __enter__(self) -> bound_tables:
        outer = _BOUND.get()
        self._token = _BOUND.set((self._tables,) if outer is None else (self._tables, *outer))
        return self

    def __exit__(self, *exc: Any) -> None:
        _BOUND.reset(self._token)


def table_args(table: Any) -> Args:
    """``table``'s op arguments: the tensors bound to it (:class:`bound_tables`), else its own
    (CPU tensors; made once and held as long as the table lives; a table first seen inside
    ``torch.compile`` gets them as constants of the graph)."""
    if not torch.compiler.is_dynamo_compiling():  # (compiled graphs take tables as constants)
        bound = _BOUND.get()
        if bound is not None:
            for tables in bound:  # innermost first
                b = tables.get(id(table))
                if b is not None and b[0] is table:
                    return b[1]
    hit = _BY_TABLE.get(id(table))
    if hit is not None and hit[0]() is table:
        return hit[1]
    if torch.compiler.is_compiling():
        layout_s, dtype_name, values = _constant_args(table)
        dt = getattr(torch, dtype_name)
        return (*(torch.tensor(v, dtype=dt) for v in values), layout_s)  # type: ignore[return-value]
    layout, arrays = layout_of(table)
    dtype = _DTYPES[_kind_of(layout)]
    np_dtype = np.int64 if dtype == torch.int64 else np.float64
    state = torch._C._get_tracing_state()  # made outside a jit trace: the trace sees constants
    torch._C._set_tracing_state(None)
    try:
        tensors = tuple(torch.from_numpy(np.array(a, dtype=np_dtype).reshape(-1)) for a in arrays)
    finally:
        torch._C._set_tracing_state(state)
    args: Args = (*tensors, _dumps(layout))  # type: ignore[assignment]
    with _LOCK:
        ident = id(table)
        try:
            ref = weakref.ref(table, lambda r, i=ident, d=_BY_TABLE, drop=_drop: drop(d, i, r))
        except TypeError:
            raise NNLUTError(f"{type(table).__name__} cannot be used by the table ops (no weak references)") from None
        _BY_TABLE[ident] = (ref, args)
    adopt(table, tensors, args[3])  # type: ignore[arg-type]
    return args


def adopt(table: Any, tensors: tuple[torch.Tensor, torch.Tensor, torch.Tensor], layout: str) -> None:
    """Make ``tensors`` (breakpoints, slopes, intercepts holding ``table``'s values, e.g. a
    module's buffers) with ``layout`` resolve to ``table`` itself in :func:`table_from_args`
    while they live and are not changed in place."""
    bp = tensors[0]
    ident = id(bp)
    with _LOCK:
        ref = weakref.ref(bp, lambda r, i=ident, d=_BY_TENSOR, drop=_drop: drop(d, i, r))
        _BY_TENSOR[ident] = (ref, weakref.ref(table), tuple(weakref.ref(a) for a in tensors[1:]),
                             tuple(a._version for a in tensors), layout)


def table_from_args(bp: torch.Tensor, s: torch.Tensor, t: torch.Tensor, layout: str) -> Any:
    """The table that op arguments describe (see module docstring)."""
    hit = _BY_TENSOR.get(id(bp))
    if (hit is not None and hit[0]() is bp and hit[2][0]() is s and hit[2][1]() is t and hit[4] == layout
            and hit[3] == (bp._version, s._version, t._version)):
        table = hit[1]()
        if table is not None:
            return table
    key = (layout, *(a.detach().cpu().numpy().tobytes() for a in (bp, s, t)))
    with _LOCK:
        table = _BY_CONTENT.get(key)
        if table is not None:
            _BY_CONTENT.move_to_end(key)
            return table
    table = _rebuild(bp, s, t, layout)
    with _LOCK:
        _BY_CONTENT[key] = table
        while len(_BY_CONTENT) > _CONTENT_MAX:
            _BY_CONTENT.popitem(last=False)
    return table


def _rebuild(bp: torch.Tensor, s: torch.Tensor, t: torch.Tensor, layout: str) -> Any:
    from ..core._io import table_from_any_dict

    try:
        d = json.loads(layout)
    except ValueError:
        raise NNLUTError(f"a table op's layout must be a JSON object, got {layout[:80]!r}") from None
    if not isinstance(d, dict) or _kind_of(d) not in _DTYPES:
        raise NNLUTError(f"a table op's layout must describe a float, fixed-point or half-precision table, got "
                         f"{layout[:80]!r}")
    want = _DTYPES[_kind_of(d)]
    for name, a in (("breakpoints", bp), ("slopes", s), ("intercepts", t)):
        if a.dtype != want or a.dim() != 1:
            raise NNLUTError(f"a table op's {name} must be a 1-D {want} tensor, got {a.dim()}-D {a.dtype}")
        d[name] = a.detach().cpu().tolist()
    # an op's arguments are the table the caller built, which may differ from the function it names
    # on purpose (an edited or calibrated table): the reader's value check, meant for files, is left
    # out by reading it unnamed and naming it again
    function = d.pop("function", None)
    source = d.get("source")
    src_function = source.pop("function", None) if isinstance(source, dict) else None
    table = table_from_any_dict(d)
    if src_function is not None:
        table = table.replace(source=table.source.replace(function=src_function))
    return table.replace(function=function) if function is not None else table


# ---------------------------------------------------------------------------- traced view
class _TracedFloat:
    """A float table's evaluation steps on its op arguments (works on fake tensors)."""

    def __init__(self, d: dict[str, Any], bp: torch.Tensor, s: torch.Tensor, t: torch.Tensor) -> None:
        from ..core._io import decode_limits
        from ..core._scaling import Scaling

        self.scaling = Scaling.from_dict(d["scaling"]) if d.get("scaling") else None
        self.tails = tuple(d.get("tails") or ("extend", "extend"))
        self.domain = tuple(d["domain"]) if d.get("domain") else None
        self.limits = decode_limits(d.get("limits")) or (float("nan"), float("nan"))
        self._params = (bp, s, t)

    def torch_params(self, dtype: torch.dtype, device: torch.device) -> tuple[Any, Any, Any]:
        return tuple(a.to(dtype=dtype, device=device) for a in self._params)  # type: ignore[return-value]


class _TracedFixed(_TracedFloat):
    """A fixed-point table as the float table of its real-valued segments: breakpoints at
    ``bp * 2**-in_frac``, slopes and intercepts at the output's scale (what the integer
    datapath computes before rounding). Its derivative is the segment slope."""

    def __init__(self, d: dict[str, Any], bp: torch.Tensor, s: torch.Tensor, t: torch.Tensor) -> None:
        from ..core._io import decode_limits
        from ..core._scaling import Scaling

        fmt = d["fmt"]
        in_frac, slope_frac = fmt["in_frac"], fmt["slope_frac"]
        t_frac = in_frac + slope_frac if fmt.get("icpt_frac") is None else fmt["icpt_frac"]
        self.scaling = Scaling.from_dict(d["scaling"]) if d.get("scaling") else None
        lo, hi = -(2.0 ** (fmt["in_bits"] - 1)), 2.0 ** (fmt["in_bits"] - 1) - 1
        self.tails = ("clamp", "clamp")  # the input quantiser saturates at the code range
        self.domain = (lo * 2.0**-in_frac, hi * 2.0**-in_frac)
        self.limits = decode_limits(d.get("limits")) or (float("nan"), float("nan"))
        f = torch.float64
        self._params = (bp.to(f) * 2.0**-in_frac, s.to(f) * 2.0**-slope_frac, t.to(f) * 2.0**-t_frac)


class _TracedHalf(_TracedFloat):
    """A half-precision table as the float table of its (half-exact) segments, with its
    source's tails, limits and range reduction (rounding steps aside, what it computes)."""

    def __init__(self, d: dict[str, Any], bp: torch.Tensor, s: torch.Tensor, t: torch.Tensor) -> None:
        super().__init__(d["source"], bp, s, t)


_TRACED = {_FLOAT_KIND: _TracedFloat, _FIXED_KIND: _TracedFixed, _HALF_KIND: _TracedHalf}


def traced_table(bp: torch.Tensor, s: torch.Tensor, t: torch.Tensor, layout: str) -> Any:
    """A view of op arguments that :func:`nnlut.core._eval.evaluate_reference` evaluates with
    torch operations on the argument tensors (differentiable; the segment slope is the
    derivative, of the real-valued segments for a fixed-point table)."""
    d = json.loads(layout)
    return _TRACED[_kind_of(d)](d, bp, s, t)


__all__ = ["adopt", "bound_tables", "layout_of", "table_args", "table_from_args", "traced_table"]
