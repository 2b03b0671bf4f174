"""Per-element cycle costs of the non-linear ops, read off the kernels themselves.

Each kernel (I-BERT's integer i-GELU / i-exp Softmax / i-sqrt LayerNorm, and nnlut's LUT
ops) is run once on a probe tensor under a counting dispatch mode. Every arithmetic op that
produces one value per element counts as one vector-lane operation per element; ops that
produce one value per row count per row; divisions and square roots by a runtime value are
counted apart, because a vector unit runs them on an iterative divider. A table evaluation
counts as one pass through the pipelined LUT unit (one result per lane per cycle). Dtype
conversions, views and copies are free (they are artefacts of simulating integers in torch).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode

_FREE = {"view", "_unsafe_view", "reshape", "expand", "t", "transpose", "permute", "clone", "_to_copy", "copy_",
         "detach", "alias", "lift_fresh", "empty", "empty_like", "full", "full_like", "zeros_like", "ones_like",
         "scalar_tensor", "slice", "select", "unsqueeze", "squeeze", "contiguous", "zeros", "ones", "_local_scalar_dense",
         "isfinite", "isnan", "nan_to_num", "new_empty", "new_full", "new_zeros", "index", "randint", "arange",
         "movedim", "as_strided", "fill_", "lift_fresh_copy", "resolve_conj", "resolve_neg", "item", "is_nonzero",
         "all", "any", "log2", "floor", "ceil", "round"}
_DIV = {"div", "floor_divide", "remainder", "fmod", "sqrt", "rsqrt", "reciprocal"}


@dataclass
class OpCost:
    """Operations per element and per row of one kernel (see module docstring)."""

    per_element: float = 0.0
    per_row: float = 0.0
    divides_per_element: float = 0.0
    divides_per_row: float = 0.0
    lut_per_element: float = 0.0
    lut_per_row: float = 0.0
    detail: dict[str, float] = field(default_factory=dict)

    def cycles(self, elements: float, rows: float, lanes: int, divide_cycles: int, lut_lanes: int | None = None,
               row_units: int = 1) -> float:
        """Cycles for ``elements`` values in ``rows`` rows: per-element work on ``lanes`` vector
        lanes (table lookups on ``lut_lanes`` LUT units), per-row work (row statistics,
        divisions, square roots) on ``row_units`` scalar units."""
        lut_lanes = lut_lanes or lanes
        return (self.per_element * elements / lanes
                + self.divides_per_element * elements * divide_cycles / lanes
                + self.lut_per_element * elements / lut_lanes
                + (self.per_row + self.divides_per_row * divide_cycles + self.lut_per_row * 2) * rows / row_units)


class _Counter(TorchDispatchMode):
    def __init__(self, elements: int, rows: int) -> None:
        super().__init__()
        self.elements, self.rows = elements, rows
        self.cost = OpCost()

    def __torch_dispatch__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        out = func(*args, **(kwargs or {}))
        name = func.overloadpacket.__name__.rstrip("_")
        if name in _FREE:
            return out
        numel = max((a.numel() for a in (out if isinstance(out, (tuple, list)) else [out]) if isinstance(a, torch.Tensor)),
                    default=1)
        ins = [a for a in args if isinstance(a, torch.Tensor)]
        biggest_in = max((a.numel() for a in ins), default=1)
        per_el = numel >= self.elements or biggest_in >= self.elements  # reductions read every element
        # a division by a runtime tensor (not a constant) runs on the iterative divider
        runtime_div = (name in _DIV and len(ins) >= 2 and ins[1].numel() > 1) or name in ("sqrt", "rsqrt")
        key = f"{name}/{'elem' if per_el else 'row'}"
        self.cost.detail[key] = self.cost.detail.get(key, 0) + 1
        if runtime_div:
            if per_el:
                self.cost.divides_per_element += 1
            else:
                self.cost.divides_per_row += 1
        else:
            ops = 1
            if name in _DIV:  # by a constant: a shift for a power of two, else a multiply and a shift
                d = args[1] if len(args) > 1 else None
                is_pow2 = isinstance(d, int) and d > 0 and d & (d - 1) == 0
                ops = 1 if is_pow2 else 2
            if per_el:
                self.cost.per_element += ops
            else:
                self.cost.per_row += ops
        return out


class _LUTProbe:
    """Stands in for a table: counts one LUT-unit pass per value it is given."""

    def __init__(self, cost: OpCost, elements: int, fn: Any) -> None:
        self.cost, self.elements, self.fn = cost, elements, fn

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if x.numel() >= self.elements:
            self.cost.lut_per_element += 1
        else:
            self.cost.lut_per_row += 1
        with _suspended():
            return self.fn(x)


class _suspended:
    def __enter__(self) -> None:
        from torch.utils._python_dispatch import _pop_mode_temporarily

        self._ctx = _pop_mode_temporarily()
        self._ctx.__enter__()

    def __exit__(self, *exc: Any) -> None:
        self._ctx.__exit__(*exc)


_ROWS, _COLS = 64, 128


def _probe() -> torch.Tensor:
    return torch.randn(_ROWS, _COLS, generator=torch.Generator().manual_seed(0)) * 3


def _count(run: Any, lut_fns: dict[str, Any] | None = None) -> OpCost:
    counter = _Counter(_ROWS * _COLS, _ROWS)
    probes = {k: _LUTProbe(counter.cost, _ROWS * _COLS, f) for k, f in (lut_fns or {}).items()}
    with torch.no_grad(), counter:
        run(probes)
    return counter.cost


@functools.cache
def kernel_costs(design: str) -> dict[str, OpCost]:
    """Costs of the GELU, Softmax and LayerNorm kernels of ``design`` (``ibert`` or ``nnlut``)."""
    x = _probe()
    w, b = torch.ones(_COLS), torch.zeros(_COLS)
    if design == "ibert":
        from ..ibert._int import int_gelu, int_layernorm, int_softmax

        q = torch.round(x * 1000).to(torch.int64)
        return {
            "gelu": _count(lambda p: int_gelu(q, 1e-3)),
            "softmax": _count(lambda p: int_softmax(q, 2.0**-12)),
            "layernorm": _count(lambda p: int_layernorm(q * 100, 1e-5, w, b)),
        }
    if design == "nnlut":
        from ..models._swap import fitted_table
        from ..ops._lut import lut_layernorm, lut_softmax

        tab = {f: fitted_table(f, "nnlut", 16, "full") for f in ("gelu", "exp", "reciprocal", "rsqrt")}
        ref = {f: functools.partial(_reference_eval, t) for f, t in tab.items()}
        return {
            "gelu": _count(lambda p: p["gelu"](x), ref),
            "softmax": _count(lambda p: lut_softmax(x, -1, p["exp"], p["reciprocal"]), ref),
            "layernorm": _count(lambda p: lut_layernorm(x, (_COLS,), w, b, 1e-5, p["rsqrt"]), ref),
        }
    raise ValueError(f"unknown design {design!r}")


def _reference_eval(table: Any, x: torch.Tensor) -> torch.Tensor:
    from ..core._eval import evaluate_reference

    return evaluate_reference(table, x)
