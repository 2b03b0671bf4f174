"""Power-of-two input scaling (range reduction) for homogeneous functions.

For ``f(2**q x) = 2**(q*a) f(x)`` (``reciprocal``: q=1, a=-1; ``rsqrt``: q=2, a=-1/2) an
input is written ``x = m * P**j`` with ``P = 2**q`` and ``m`` in the table's range, the table
is read at ``m`` and the result is multiplied by ``2**(q*a*j)``. Both steps only move the
binary exponent, so scaling adds no error of its own.

Modes:

- ``paper``: the table covers ``[1, hi]``; only inputs below 1 are scaled up into ``[1, P)``
  (NN-LUT's scheme). Inputs above ``hi`` follow the table's right tail.
- ``full``: the table covers one period ``[1, P]``; every positive input is reduced to it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

from .._errors import NNLUTError

ScalingMode = Literal["paper", "full"]


@dataclass(frozen=True)
class Scaling:
    """Input scaling attached to a table (see module docstring).

    Args:
        mode: ``"paper"`` (scale only inputs below 1) or ``"full"`` (every positive input).
        exponent: homogeneity exponent ``a`` (-1 for 1/x, -0.5 for 1/sqrt x).
        period: ``P = 2**q``; ``q*a`` must be an integer so the correction is a shift.
        negative: ``"odd"`` (f(-x) = -f(x)) or ``"nan"`` for inputs below zero.
    """

    mode: ScalingMode
    exponent: float
    period: int
    negative: Literal["odd", "nan"] = "nan"

    def __post_init__(self) -> None:
        if self.mode not in ("paper", "full"):
            raise NNLUTError(f"scaling mode {self.mode!r} is unknown; allowed: 'paper', 'full'")
        q = math.log2(self.period) if self.period > 0 else math.nan
        if not (q >= 1 and q == int(q)):
            raise NNLUTError(f"scaling period must be a power of two >= 2, got {self.period!r}")
        shift = q * self.exponent
        if shift != int(shift) or shift == 0:
            raise NNLUTError(
                f"scaling exponent {self.exponent!r} with period {self.period} gives a correction "
                f"2**{shift:g} per period; it must be a non-zero whole power of two"
            )
        if self.negative not in ("odd", "nan"):
            raise NNLUTError(f"scaling negative must be 'odd' or 'nan', got {self.negative!r}")

    @property
    def q(self) -> int:
        return int(round(math.log2(self.period)))

    @property
    def shift_per_period(self) -> int:
        """Output exponent change per period of input: ``q * exponent``."""
        return int(round(self.q * self.exponent))

    def check_table_domain(self, lo: float, hi: float) -> None:
        if lo != 1.0:
            raise NNLUTError(f"a scaled table must start at 1.0, got domain [{lo:g}, {hi:g}]")
        if self.mode == "full" and hi < self.period:
            raise NNLUTError(f"full range reduction needs the table to cover [1, {self.period}], got [{lo:g}, {hi:g}]")
        if self.mode == "paper" and hi < self.period:
            raise NNLUTError(f"paper-mode scaling needs the table to cover at least [1, {self.period}], got [{lo:g}, {hi:g}]")

    def to_dict(self) -> dict[str, Any]:
        return {"mode": self.mode, "exponent": self.exponent, "period": self.period, "negative": self.negative}

    @classmethod
    def from_dict(cls, d: Any) -> Scaling:
        if not isinstance(d, dict):
            raise NNLUTError(f"'scaling' must be an object or null, got {type(d).__name__}")
        missing = {"mode", "exponent", "period"} - set(d)
        if missing:
            raise NNLUTError(f"'scaling' lacks {', '.join(sorted(missing))}")
        try:
            return cls(str(d["mode"]), float(d["exponent"]), int(d["period"]), str(d.get("negative", "nan")))  # type: ignore[arg-type]
        except (TypeError, ValueError) as e:
            raise NNLUTError(f"'scaling' has a bad value: {e}") from None
