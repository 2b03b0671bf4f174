"""An analytic NPU model: a weight-stationary systolic array for GEMMs, a vector unit for the
rest, and DRAM bandwidth for weights.

GEMM compute cycles follow SCALE-Sim's weight-stationary dataflow: for ``M`` streamed rows
and a ``K x N`` stationary operand on an ``R x C`` array, ``ceil(K/R) * ceil(N/C) *
(2R + C + M - 2)``. Weights stream from DRAM once per use, double-buffered, so a GEMM takes
``max(compute, weight bytes / bandwidth)``; activations stay on chip. Vector ops take their
per-element and per-row operation counts (read off the kernels, see ``_costs``) divided by
the lane count; divisions by runtime values run on iterative dividers (``divide_cycles`` each).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any

from .._errors import NNLUTError
from ._costs import kernel_costs
from ._workload import EncoderShape, Gemm, encoder_ops

DESIGNS = ("ibert", "nnlut")
NONLINEAR = ("gelu", "softmax", "layernorm")
CLASSES = ("gemm", "gelu", "softmax", "layernorm", "other")


@dataclass(frozen=True)
class NPUConfig:
    """NPU parameters (validated; JSON-serialisable).

    Args:
        array_rows, array_cols: systolic array size R x C.
        vector_lanes: ALU lanes of the vector unit (integer ops per cycle).
        lut_lanes: NN-LUT units (results per cycle); default: one per vector lane.
        divide_cycles: cycles of one division by a runtime value (iterative divider).
        row_units: scalar units for per-row work (row statistics, divisions, square roots,
            the per-row table lookups of Softmax and LayerNorm at the LUT unit's 2-cycle latency).
        dram_bytes_per_cycle: weight bandwidth.
        bytes_per_weight: 1 for INT8 weights.
        other_ops_per_element: vector ops per element of residual and bias additions.
        clock_mhz: clock, for reporting times.
    """

    array_rows: int = 128
    array_cols: int = 128
    vector_lanes: int = 64
    lut_lanes: int | None = None
    divide_cycles: int = 32
    row_units: int = 1
    dram_bytes_per_cycle: float = 64.0
    bytes_per_weight: int = 1
    other_ops_per_element: float = 1.0
    clock_mhz: float = 1000.0

    def __post_init__(self) -> None:
        for f in ("array_rows", "array_cols", "vector_lanes", "divide_cycles", "row_units", "bytes_per_weight"):
            v = getattr(self, f)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise NNLUTError(f"NPU config {f} must be a positive integer, got {v!r}")
        if self.lut_lanes is not None and (isinstance(self.lut_lanes, bool) or not isinstance(self.lut_lanes, int)
                                           or self.lut_lanes < 1):
            raise NNLUTError(f"NPU config lut_lanes must be a positive integer or null, got {self.lut_lanes!r}")
        for f in ("dram_bytes_per_cycle", "clock_mhz", "other_ops_per_element"):
            v = getattr(self, f)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0:
                raise NNLUTError(f"NPU config {f} must be a positive number, got {v!r}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Any) -> NPUConfig:
        if not isinstance(d, dict):
            raise NNLUTError(f"an NPU config must be a JSON object, got {type(d).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise NNLUTError(f"unknown NPU config key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(known))}")
        return cls(**d)

    @classmethod
    def load(cls, path: str) -> NPUConfig:
        from .._files import read_json

        data = read_json(path, "NPU config file")
        try:
            return cls.from_dict(data)
        except NNLUTError as e:
            raise NNLUTError(f"NPU config file {path!r}: {e}") from None
        except (OverflowError, TypeError, ValueError) as e:  # e.g. a number beyond the float range
            raise NNLUTError(f"NPU config file {path!r}: invalid value ({e})") from None


def gemm_compute_cycles(g: Gemm, rows: int, cols: int) -> int:
    """SCALE-Sim weight-stationary compute cycles of one GEMM (times ``g.count``)."""
    return math.ceil(g.K / rows) * math.ceil(g.N / cols) * (2 * rows + cols + g.M - 2) * g.count


def gemm_cycles(g: Gemm, cfg: NPUConfig) -> float:
    compute = gemm_compute_cycles(g, cfg.array_rows, cfg.array_cols)
    if g.name in ("scores", "context"):  # both operands are on-chip activations
        return float(compute)
    weights = g.K * g.N * cfg.bytes_per_weight * g.count
    return max(float(compute), weights / cfg.dram_bytes_per_cycle)


def simulate(shape: EncoderShape, seq_len: int, design: str, cfg: NPUConfig, batch: int = 1) -> dict[str, Any]:
    """Cycles per op class for one forward pass; returns a record."""
    if design not in DESIGNS:
        raise NNLUTError(f"design must be one of {', '.join(DESIGNS)}, got {design!r}")
    gemms, vector = encoder_ops(shape, seq_len, batch)
    costs = kernel_costs(design)
    cycles = {c: 0.0 for c in CLASSES}
    cycles["gemm"] = sum(gemm_cycles(g, cfg) for g in gemms)
    for op in vector:
        if op.op == "other":
            cycles["other"] += op.elements * cfg.other_ops_per_element / cfg.vector_lanes
        else:
            cycles[op.op] += costs[op.op].cycles(op.elements, op.rows, cfg.vector_lanes, cfg.divide_cycles,
                                                 cfg.lut_lanes, cfg.row_units)
    total = sum(cycles.values())
    nl = sum(cycles[c] for c in NONLINEAR)
    return {"model": shape.name, "seq_len": seq_len, "batch": batch, "design": design,
            "cycles": {k: round(v, 1) for k, v in cycles.items()}, "total": round(total, 1),
            "nonlinear_share": nl / total, "time_us": total / cfg.clock_mhz}


def sweep(shape: EncoderShape, seq_lens: list[int], cfg: NPUConfig, batch: int = 1) -> list[dict[str, Any]]:
    return [simulate(shape, L, d, cfg, batch) for L in seq_lens for d in DESIGNS]


def speedups(records: list[dict[str, Any]]) -> dict[int, float]:
    by = {(r["seq_len"], r["design"]): r["total"] for r in records}
    return {L: by[(L, "ibert")] / by[(L, "nnlut")] for (L, d) in by if d == "ibert"}
