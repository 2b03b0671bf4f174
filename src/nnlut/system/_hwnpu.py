"""An NPU built from the measured function units, fitted to all three published points.

GEMMs run as in :mod:`._npu` (weight-stationary systolic array, weights from DRAM). Each
non-linear op of ``E`` elements in ``R`` rows takes, per design,

    compute = E (v + sum_elem c_u) / lanes + R (w + sum_row r_u) / row_units
    memory  = E * bytes / sram_bytes_per_cycle
    cycles  = max(compute, memory)

- ``v``, ``w``: the vector ops around the function per element and per row (max, subtract,
  sum, normalising multiply; mean, variance), read off nnlut's kernels and the same in both
  designs;
- ``c_u``: NPU cycles per element of each per-element unit (``_hwunits``): its issue interval
  at its own clock (1 cycle pipelined, or its whole latency when the lane waits for each
  result: ``blocking``), times ``clock_mhz / fmax``;
- ``r_u``: a per-row unit's latency (mean iterations for an iterative unit) in NPU cycles;
- ``bytes``: what the op moves through the vector unit's SRAM port per element: INT32 inputs
  read once per pass (GELU 1 pass, Softmax and LayerNorm 3: max/mean, exp-sum/variance,
  normalise) and an INT8 output.

The parameters the paper does not give (array size, lanes, NPU clock, blocking issue, SRAM
and DRAM bandwidth, row units, batch) are fitted on a grid to I-BERT's shares at 16 and 1024
tokens, NN-LUT's share and speedup at 1024 and its "up to 26%" (the largest speedup at 16 to
1024 tokens), each residual scaled by its tolerance.
"""

from __future__ import annotations

import functools
import itertools
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from ._hwunits import OP_UNITS, UnitTiming
from ._npu import NONLINEAR, NPUConfig, gemm_cycles
from ._workload import BERT_BASE, EncoderShape, encoder_ops

# the paper's points; "speedup_max" is its "up to 26%": the largest speedup at any of LENGTHS
PAPER = {"ibert_share_16": 0.177, "ibert_share_1024": 0.378, "nnlut_share_1024": 0.215, "speedup_1024": 1.26,
         "speedup_max": 1.26}
TOLERANCES = {"ibert_share_16": 0.02, "ibert_share_1024": 0.02, "nnlut_share_1024": 0.03, "speedup_1024": 0.05,
              "speedup_max": 0.03}
LENGTHS = (16, 32, 64, 128, 256, 512, 1024)
BYTES_PER_ELEMENT = {"gelu": 4 + 1, "softmax": 3 * 4 + 1, "layernorm": 3 * 4 + 1}
GRID: dict[str, tuple] = {
    "array": (16, 32, 64, 128, 256),
    "vector_lanes": (4, 8, 16, 32, 64, 128, 192, 256, 384, 512, 1024),
    "clock_mhz": (50.0, 100.0, 125.0, 150.0, 200.0, 400.0),
    "blocking": (False, True),
    "sram_bytes_per_cycle": (16.0, 32.0, 64.0, 128.0, 192.0, 256.0, 384.0, 512.0, 1024.0, float("inf")),
    "row_units": (1, 4, 16, 64),
    "dram_bytes_per_cycle": (16.0, 64.0, 256.0),
    "batch": (1, 8, 16, 32),
}


@dataclass(frozen=True)
class HWNPU:
    """The fitted NPU around the measured units (see the module docstring)."""

    array: int
    vector_lanes: int
    clock_mhz: float
    blocking: bool
    sram_bytes_per_cycle: float
    row_units: int
    dram_bytes_per_cycle: float
    batch: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@functools.cache
def _around() -> dict[str, tuple[float, float]]:
    """(ops per element, ops per row) around the function in nnlut's Softmax and LayerNorm
    kernels (GELU is the function alone), counted as :mod:`._costs` counts them, with the
    exact functions standing in for the tables (their calls are not counted)."""
    import torch

    from ..ops._lut import lut_layernorm, lut_softmax
    from ._costs import _COLS, _count, _probe

    x, w, b = _probe(), torch.ones(_COLS), torch.zeros(_COLS)
    fns = {"exp": torch.exp, "reciprocal": torch.reciprocal, "rsqrt": torch.rsqrt}
    soft = _count(lambda p: lut_softmax(x, -1, p["exp"], p["reciprocal"]), fns)
    ln = _count(lambda p: lut_layernorm(x, (_COLS,), w, b, 1e-5, p["rsqrt"]), fns)
    return {"gelu": (0.0, 0.0), "softmax": (soft.per_element, soft.per_row), "layernorm": (ln.per_element, ln.per_row)}


def _op_terms(units: dict[str, UnitTiming], design: str, op: str, clock: Any, blocking: Any) -> tuple[Any, Any]:
    elem, row = OP_UNITS[design][op]
    c = sum((units[n].npu_cycles(clock, blocking) for n in elem), 0.0 * clock)
    r = sum((max(units[n].latency_cycles if units[n].cycles_per_element <= 1 else units[n].cycles_per_element, 1.0)
             * clock / units[n].fmax_mhz for n in row), 0.0 * clock)
    return c, r


def op_cycles(units: dict[str, UnitTiming], design: str, op: str, elements: float, rows: float, lanes: Any,
              clock: Any, blocking: Any, sram: Any, row_units: Any) -> dict[str, Any]:
    """Compute-, memory- and total cycles of one non-linear op (numpy-broadcastable)."""
    v, w = _around()[op]
    c, r = _op_terms(units, design, op, clock, blocking)
    units_part = elements * c / lanes + rows * r / row_units
    around = elements * v / lanes + rows * w / row_units
    memory = elements * BYTES_PER_ELEMENT[op] / sram
    return {"units": units_part, "around": around, "memory": memory, "cycles": np.maximum(units_part + around, memory)}


def simulate_hw(units: dict[str, UnitTiming], npu: HWNPU, shape: EncoderShape, seq_len: int,
                design: str) -> dict[str, Any]:
    """Cycles per op class of one forward pass on ``npu`` (a record like :func:`simulate`'s)."""
    gemms, vec = encoder_ops(shape, seq_len, npu.batch)
    cfg = NPUConfig(array_rows=npu.array, array_cols=npu.array, dram_bytes_per_cycle=npu.dram_bytes_per_cycle)
    cycles = {"gemm": float(sum(gemm_cycles(g, cfg) for g in gemms)), "gelu": 0.0, "softmax": 0.0, "layernorm": 0.0,
              "other": 0.0}
    parts = {}
    for op in vec:
        if op.op == "other":
            cycles["other"] += op.elements / npu.vector_lanes
            continue
        r = op_cycles(units, design, op.op, op.elements, op.rows, npu.vector_lanes, npu.clock_mhz, npu.blocking,
                      npu.sram_bytes_per_cycle, npu.row_units)
        cycles[op.op] += float(r["cycles"])
        parts[op.op] = {k: float(v) for k, v in r.items() if k != "cycles"}
    total = sum(cycles.values())
    return {"model": shape.name, "seq_len": seq_len, "batch": npu.batch, "design": design,
            "cycles": {k: round(v, 1) for k, v in cycles.items()}, "total": round(total, 1),
            "nonlinear_share": sum(cycles[c] for c in NONLINEAR) / total, "time_us": total / npu.clock_mhz,
            "parts": parts}


def _grid_eval(units: dict[str, UnitTiming], grid: dict[str, tuple]) -> tuple[dict[str, np.ndarray], list]:
    """Every grid point's figures (see ``PAPER``); broadcast over lanes, clock, blocking, SRAM and
    row units."""
    ax = np.meshgrid(np.array(grid["vector_lanes"], float), np.array(grid["clock_mhz"], float),
                     np.array(grid["blocking"], bool), np.array(grid["sram_bytes_per_cycle"], float),
                     np.array(grid["row_units"], float), indexing="ij")
    lanes, clock, blocking, sram, rows_u = ax
    outer = list(itertools.product(grid["array"], grid["dram_bytes_per_cycle"], grid["batch"]))
    figs: dict[str, list] = {k: [] for k in PAPER}
    for a, bw, batch in outer:
        cfg = NPUConfig(array_rows=a, array_cols=a, dram_bytes_per_cycle=bw)
        tot, nl = {}, {}
        for L, d in itertools.product(LENGTHS, ("ibert", "nnlut")):
            gemms, vec = encoder_ops(BERT_BASE, L, batch)
            base = sum(gemm_cycles(g, cfg) for g in gemms) + sum(o.elements for o in vec if o.op == "other") / lanes
            n = sum(op_cycles(units, d, o.op, o.elements, o.rows, lanes, clock, blocking, sram, rows_u)["cycles"]
                    for o in vec if o.op != "other")
            tot[(L, d)], nl[(L, d)] = base + n, n
        figs["ibert_share_16"].append(nl[(16, "ibert")] / tot[(16, "ibert")])
        figs["ibert_share_1024"].append(nl[(1024, "ibert")] / tot[(1024, "ibert")])
        figs["nnlut_share_1024"].append(nl[(1024, "nnlut")] / tot[(1024, "nnlut")])
        figs["speedup_1024"].append(tot[(1024, "ibert")] / tot[(1024, "nnlut")])
        figs["speedup_max"].append(np.max([tot[(L, "ibert")] / tot[(L, "nnlut")] for L in LENGTHS], axis=0))
    return {k: np.stack(v) for k, v in figs.items()}, outer


def fit_hw(units: dict[str, UnitTiming], grid: dict[str, tuple] | None = None) -> dict[str, Any]:
    """Grid search for the NPU around ``units`` closest to the paper's points; returns
    the NPU, its figures, the residuals (model minus paper) and the searched grid."""
    return dict(_fit(tuple(sorted((k, v) for k, v in units.items())), tuple((k, tuple(v)) for k, v in
                                                                           (grid or GRID).items())))


@functools.lru_cache(maxsize=4)
def _fit(units_key: tuple, grid_key: tuple) -> dict[str, Any]:
    units, grid = dict(units_key), {k: v for k, v in grid_key}
    figs, outer = _grid_eval(units, grid)
    err = sum(((figs[k] - PAPER[k]) / TOLERANCES[k]) ** 2 for k in PAPER)
    i = np.unravel_index(int(np.argmin(err)), err.shape)
    a, bw, batch = outer[i[0]]
    npu = HWNPU(a, int(grid["vector_lanes"][i[1]]), float(grid["clock_mhz"][i[2]]), bool(grid["blocking"][i[3]]),
                float(grid["sram_bytes_per_cycle"][i[4]]), int(grid["row_units"][i[5]]), bw, batch)
    got = {k: float(figs[k][i]) for k in PAPER}
    return {"npu": npu.to_dict(), "figures": got, "paper": PAPER, "tolerances": TOLERANCES,
            "residuals": {k: got[k] - PAPER[k] for k in PAPER}, "score": float(err[i]), "searched": int(err.size),
            "within_tolerance": int(np.sum(np.all([np.abs(figs[k] - PAPER[k]) <= TOLERANCES[k] for k in PAPER],
                                                  axis=0))),
            "grid": {k: list(v) for k, v in grid.items()}}


def explain(units: dict[str, UnitTiming], npu: HWNPU, seq_len: int = 1024) -> dict[str, Any]:
    """Where the non-linear cycles of both designs go at ``seq_len`` on ``npu``: the function
    units, the vector ops around them, or the SRAM port (when it bounds the op)."""
    out = {}
    for d in ("ibert", "nnlut"):
        rec = simulate_hw(units, npu, BERT_BASE, seq_len, d)
        parts = rec["parts"]
        nl = sum(rec["cycles"][o] for o in NONLINEAR)
        bound = {o: "memory" if p["memory"] > p["units"] + p["around"] else "compute" for o, p in parts.items()}
        out[d] = {"nonlinear_cycles": nl, "units": sum(p["units"] for p in parts.values()),
                  "around": sum(p["around"] for p in parts.values()),
                  "memory": sum(p["memory"] for p in parts.values()), "bound": bound}
    out["nonlinear_gain"] = out["ibert"]["nonlinear_cycles"] / out["nnlut"]["nonlinear_cycles"]
    return out
