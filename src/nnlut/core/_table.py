"""The piecewise-linear table: the one object every other part of nnlut builds on.

An N-entry table holds N-1 strictly increasing breakpoints ``d`` and per-segment slopes
``s`` and intercepts ``t``. Segment ``i`` covers ``d[i-1] <= x < d[i]`` (segment 0 everything
below ``d[0]``, segment N-1 everything from ``d[-1]`` up) and gives ``s[i]*x + t[i]``: one
compare stage and one multiply-add, as in hardware.

Around that core a table carries its domain, what happens beyond it (``tails``: saturate the
input at the edge, or let the end segment continue), the values it returns for -inf and +inf
(``limits``), an optional power-of-two input :class:`~nnlut.core._scaling.Scaling` and the
metadata of the fit that produced it. Tables are immutable (assigning a field raises);
methods return new tables.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from .._errors import NNLUTError
from ._scaling import Scaling

if TYPE_CHECKING:
    import torch

    from ._network import ReluNetwork

TailEval = Literal["clamp", "extend"]

def _as_vector(values: Any, name: str) -> np.ndarray:
    try:
        arr = np.array(values, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        raise NNLUTError(f"'{name}' must be a list of numbers") from None
    if not np.all(np.isfinite(arr)):
        i = int(np.argmax(~np.isfinite(arr)))
        raise NNLUTError(f"'{name}' must be finite, but entry {i} is {arr[i]}")
    arr.setflags(write=False)
    return arr


class Table:
    """A piecewise-linear look-up table (see module docstring).

    Args:
        breakpoints: N-1 strictly increasing finite values.
        slopes: N finite values, one per segment.
        intercepts: N finite values, one per segment.
        domain: ``(lo, hi)`` the table was made for; needed by ``clamp`` tails and scaling.
        tails: ``(left, right)``, each ``"extend"`` (the end segment continues) or
            ``"clamp"`` (inputs beyond the domain edge are saturated to it).
        limits: outputs for -inf and +inf inputs; default: what the tails give.
        scaling: optional power-of-two input scaling.
        function: name of the approximated function, if any.
        meta: JSON-serialisable metadata (fit settings and measured errors).
    """

    __slots__ = ("breakpoints", "slopes", "intercepts", "domain", "tails", "limits", "scaling",
                 "function", "meta", "__weakref__")
    _FIELDS = __slots__[:-1]

    def __init__(
        self,
        breakpoints: Sequence[float] | np.ndarray,
        slopes: Sequence[float] | np.ndarray,
        intercepts: Sequence[float] | np.ndarray,
        *,
        domain: tuple[float, float] | None = None,
        tails: tuple[TailEval, TailEval] = ("extend", "extend"),
        limits: tuple[float, float] | None = None,
        scaling: Scaling | None = None,
        function: str | None = None,
        meta: Mapping[str, Any] | None = None,
    ) -> None:
        bp = _as_vector(breakpoints, "breakpoints")
        s = _as_vector(slopes, "slopes")
        t = _as_vector(intercepts, "intercepts")
        if len(s) < 1:
            raise NNLUTError("a table needs at least 1 entry (1 slope, 1 intercept)")
        if len(s) != len(t) or len(bp) != len(s) - 1:
            raise NNLUTError(
                f"an N-entry table needs N-1 breakpoints, N slopes and N intercepts; got "
                f"{len(bp)} breakpoints, {len(s)} slopes, {len(t)} intercepts"
            )
        if len(bp) > 1 and not np.all(np.diff(bp) > 0):
            i = int(np.argmax(~(np.diff(bp) > 0)))
            raise NNLUTError(
                f"breakpoints must be strictly increasing, but breakpoint {i + 1} ({bp[i + 1]!r}) "
                f"is not above breakpoint {i} ({bp[i]!r})"
            )
        if domain is not None:
            lo, hi = (float(v) for v in domain)
            if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
                raise NNLUTError(f"domain must be finite with lo < hi, got [{lo}, {hi}]")
            domain = (lo, hi)
        tails = tuple(tails)  # type: ignore[assignment]
        if len(tails) != 2 or any(k not in ("clamp", "extend") for k in tails):
            raise NNLUTError(f"tails must be two of 'clamp', 'extend', got {tails!r}")
        if "clamp" in tails and domain is None:
            raise NNLUTError("a table with a 'clamp' tail needs a domain")
        if scaling is not None:
            if domain is None:
                raise NNLUTError("a scaled table needs a domain")
            scaling.check_table_domain(*domain)
        init = object.__setattr__
        for name, value in (("breakpoints", bp), ("slopes", s), ("intercepts", t), ("domain", domain),
                            ("tails", tails), ("scaling", scaling), ("function", function),
                            ("meta", dict(meta) if meta else {})):
            init(self, name, value)
        init(self, "limits", tuple(float(v) for v in limits) if limits is not None else self._own_limits())
        if len(self.limits) != 2:
            raise NNLUTError(f"limits must be two numbers (at -inf, at +inf), got {limits!r}")

    def __setattr__(self, name: str, value: Any) -> None:
        raise NNLUTError(f"Table is immutable: cannot set {name!r}; use table.replace({name}=...) for a new table")

    def __delattr__(self, name: str) -> None:
        raise NNLUTError(f"Table is immutable: cannot delete {name!r}")

    # ------------------------------------------------------------------ properties
    @property
    def entries(self) -> int:
        """Number of entries N (segments)."""
        return len(self.slopes)

    def _own_limits(self) -> tuple[float, float]:
        out = []
        for side, seg, sign in (("left", 0, -1.0), ("right", -1, 1.0)):
            kind = self.tails[0 if side == "left" else 1]
            if kind == "clamp" and self.domain is not None and self.scaling is None:
                edge = self.domain[0 if side == "left" else 1]
                out.append(float(self._pwl_numpy(np.array([edge]))[0]))
            elif self.scaling is not None:
                out.append(math.nan)
            else:
                slope = float(self.slopes[seg])
                out.append(float(self.intercepts[seg]) if slope == 0 else math.copysign(math.inf, sign * slope))
        return out[0], out[1]

    def is_continuous(self, rtol: float = 1e-9) -> bool:
        """Whether adjacent segments meet at every breakpoint (to ``rtol`` of the values)."""
        if self.entries == 1:
            return True
        with np.errstate(over="ignore", invalid="ignore"):  # values beyond the float range: not continuous
            left = self.slopes[:-1] * self.breakpoints + self.intercepts[:-1]
            right = self.slopes[1:] * self.breakpoints + self.intercepts[1:]
            scale = np.maximum(np.abs(left), np.abs(right)) + np.max(np.abs(self.intercepts)) * 1e-3 + 1e-300
            return bool(np.all(np.isfinite(left) & np.isfinite(right) & (np.abs(left - right) <= rtol * scale)))

    # ------------------------------------------------------------------ evaluation
    def _pwl_numpy(self, u: np.ndarray) -> np.ndarray:
        idx = np.searchsorted(self.breakpoints, u, side="right")
        dt = u.dtype
        return self.slopes.astype(dt)[idx] * u + self.intercepts.astype(dt)[idx]

    def __call__(self, x: Any) -> Any:
        """Evaluate the table.

        Args:
            x: a numpy array (or scalar/list) or a torch tensor of any shape. numpy float32
                stays float32, everything else numpy is computed in float64. torch float32 and
                float64 are computed in their dtype, float16/bfloat16 in float32 and returned
                in the input dtype, on the input's device.

        Returns:
            An array or tensor of the same shape (and, for torch, dtype and device).
        """
        from ._eval import evaluate

        return evaluate(self, x)

    def torch_params(self, dtype: torch.dtype, device: torch.device) -> tuple[Any, Any, Any]:
        """(breakpoints, slopes, intercepts) as new tensors of ``dtype`` on ``device`` (a table
        holds no tensors: the kernels keep the copies they reuse)."""
        import torch

        return tuple(torch.tensor(a, dtype=dtype, device=device)  # type: ignore[return-value]
                     for a in (self.breakpoints, self.slopes, self.intercepts))

    # ------------------------------------------------------------------ conversions
    def network(self) -> ReluNetwork:
        """The equivalent one-hidden-layer ReLU network (table must be continuous)."""
        from ._network import ReluNetwork

        return ReluNetwork.from_table(self)

    def replace(self, **changes: Any) -> Table:
        """A new table with some fields replaced (like ``dataclasses.replace``)."""
        fields = dict(
            breakpoints=self.breakpoints, slopes=self.slopes, intercepts=self.intercepts, domain=self.domain,
            tails=self.tails, limits=self.limits, scaling=self.scaling, function=self.function, meta=self.meta,
        )
        unknown = set(changes) - set(fields)
        if unknown:
            raise NNLUTError(f"Table has no field(s) {', '.join(sorted(unknown))}")
        fields.update(changes)
        return Table(**fields)

    def to_dict(self) -> dict[str, Any]:
        from ._io import table_to_dict

        return table_to_dict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Table:
        from ._io import table_from_dict

        return table_from_dict(data)

    def save(self, path: str) -> None:
        """Write the table as versioned JSON (atomically: no half-written file on failure)."""
        from ._io import save_table

        save_table(self, path)

    def __eq__(self, other: object) -> bool:
        """Equal values: the same parameters, domain, tails, limits, scaling and function (the fit
        record in ``meta`` is not part of a table's value)."""
        if not isinstance(other, Table):
            return NotImplemented
        a, b = self.to_dict(), other.to_dict()
        return all(a.get(k) == b.get(k) for k in set(a) | set(b) if k not in ("fit", "network"))

    __hash__ = None  # type: ignore[assignment]

    # tables are immutable: copies are the table itself; pickles carry the fields only
    def __copy__(self) -> Table:
        return self

    def __deepcopy__(self, memo: dict) -> Table:
        return self

    def __getstate__(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self._FIELDS}

    def __setstate__(self, state: dict[str, Any]) -> None:
        for k, v in state.items():
            if k in self._FIELDS:  # older pickles also carried a device cache
                object.__setattr__(self, k, v)

    def __repr__(self) -> str:
        name = self.function or "table"
        dom = f", domain=[{self.domain[0]:g}, {self.domain[1]:g}]" if self.domain else ""
        sc = f", scaling={self.scaling.mode}" if self.scaling else ""
        return f"Table({name}, entries={self.entries}{dom}, tails={self.tails}{sc})"


# every kind of table (float, fixed point, half precision, ...): a kind registers its class here
# so that layers that take "a table" (configs, ops, calibration) accept it without knowing it
_TABLE_KINDS: list[type] = []


def register_table_kind(cls: type) -> type:
    """Declare ``cls`` a table kind (usable as a class decorator); ``Table`` is the first."""
    if cls not in _TABLE_KINDS:
        _TABLE_KINDS.append(cls)
    return cls


def is_table(obj: Any) -> bool:
    """Whether ``obj`` is a table of any registered kind."""
    return isinstance(obj, tuple(_TABLE_KINDS))


def table_kinds() -> list[str]:
    return [c.__name__ for c in _TABLE_KINDS]


register_table_kind(Table)
