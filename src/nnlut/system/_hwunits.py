"""The function units an NPU is built from, read from a hardware report (``nnlut hw``).

Each design computes the non-linear functions on the units the hardware flow synthesized:

- I-BERT: i-GELU and i-exp (pipelined), ``floor(2**32 / sum)`` (Softmax), integer Newton
  i-sqrt then ``floor(2**31 / std)`` (LayerNorm), the last three iterative;
- NN-LUT: the programmable NN-LUT unit for all four (exp per element, 1/x and 1/sqrt(x) once
  per row).

A unit's figures are its latency in cycles, its cycles per element (1 for a pipelined unit,
the mean iteration count for an iterative one) and its clock (fmax, MHz). A copy of the
figures the flow measured ships with nnlut (``measured_units.json``) so that ``nnlut sim``
works without the hardware tools; ``--hw DIR`` reads a fresh ``DIR/report.json`` instead.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .._errors import NNLUTError

# op -> (units evaluated once per element, units evaluated once per row), per design
OP_UNITS: dict[str, dict[str, tuple[tuple[str, ...], tuple[str, ...]]]] = {
    "ibert": {"gelu": (("ibert_gelu",), ()), "softmax": (("ibert_exp",), ("ibert_div32",)),
              "layernorm": ((), ("ibert_isqrt", "ibert_div31"))},
    "nnlut": {"gelu": (("nnlut_unit",), ()), "softmax": (("nnlut_unit",), ("nnlut_unit",)),
              "layernorm": ((), ("nnlut_unit",))},
}
SHIPPED = Path(__file__).with_name("measured_units.json")


@dataclass(frozen=True)
class UnitTiming:
    """One unit: ``latency_cycles`` and ``cycles_per_element`` at its own clock ``fmax_mhz``."""

    name: str
    latency_cycles: float
    cycles_per_element: float
    fmax_mhz: float

    def __post_init__(self) -> None:
        for f in ("latency_cycles", "cycles_per_element", "fmax_mhz"):
            v = getattr(self, f)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0:
                raise NNLUTError(f"unit {self.name}: {f} must be a positive number, got {v!r}")

    @property
    def latency_ns(self) -> float:
        return self.latency_cycles * 1000.0 / self.fmax_mhz

    def npu_cycles(self, clock_mhz: Any, blocking: bool) -> Any:
        """NPU cycles one lane spends per evaluation: the unit's issue interval (its cycles per
        element, or its whole latency when the lane waits for each result) in the NPU's clock."""
        import numpy as np

        own = np.where(blocking, self.latency_cycles, self.cycles_per_element)
        return own * clock_mhz / self.fmax_mhz


def load_units(source: str | Path | None = None) -> tuple[dict[str, UnitTiming], str]:
    """The units' timing from ``source`` (a folder with ``report.json``, or the file itself;
    default: the shipped measured figures); returns (units by name, where they came from)."""
    path = SHIPPED if source is None else Path(source)
    if path.is_dir():
        path = path / "report.json"
    if not path.exists():
        raise NNLUTError(f"no hardware report at {path}; run 'nnlut hw --out DIR' and pass --hw DIR")
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise NNLUTError(f"hardware report {path} is not readable JSON: {e}") from None
    rows = data.get("units") if isinstance(data, dict) else None
    if not isinstance(rows, list):
        raise NNLUTError(f"hardware report {path} has no 'units' list")
    units = {}
    for r in rows:
        try:
            units[r["name"]] = UnitTiming(r["name"], float(r["latency_cycles"]), float(r["cycles_per_element"]),
                                          float(r["fmax_mhz"]))
        except (KeyError, TypeError) as e:
            raise NNLUTError(f"hardware report {path}: a unit lacks {e}") from None
    need = sorted({n for d in OP_UNITS.values() for e, r in d.values() for n in e + r})
    lack = [n for n in need if n not in units]
    if lack:
        raise NNLUTError(f"hardware report {path} lacks the unit(s) {', '.join(lack)}; the NPU needs {', '.join(need)}")
    return units, str(path)


def measured_subset(report: dict[str, Any]) -> dict[str, Any]:
    """The part of a hardware report the NPU model reads (what ``measured_units.json`` holds)."""
    keys = ("name", "latency_cycles", "cycles_per_element", "fmax_mhz", "latency_ns", "area_um2",
            "energy_pj_per_element", "activity")
    return {"source": "nnlut hw (OSU 0.18um, Yosys, OpenSTA)", "tools": report.get("tools"),
            "units": [{k: u.get(k) for k in keys} for u in report["units"]]}
