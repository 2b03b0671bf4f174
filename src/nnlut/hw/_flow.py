"""``nnlut hw``: generate every unit, verify it against the Python golden model in RTL and at
gate level, synthesize it to the OSU 0.18um library and measure area, fmax and power."""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .._errors import NNLUTError
from .._logging import logger, progress
from ..core._io import atomic_write_text
from ..fixed import FixedTable, choose_format, quantize_table
from ..ibert._int import int_exp_requant, int_gelu, isqrt
from . import _rtl_ibert as rib
from . import _rtl_nnlut as rnn
from . import _testbench as tbm
from . import _tools as tools

GELU_SCALE = 2.0**-11  # i-GELU's static input scale: 16-bit inputs cover [-16, 16)
EXP_SCALE = 2.0**-12  # i-exp's static input scale (as the Softmax op uses)
VECTORS = 10_000
ACTIVITY = 0.1
PERIOD_NS = 10.0  # power is reported at 100 MHz
ICPT_BITS, ICPT_GUARD = 20, 2  # the NN-LUT unit's intercept registers


@dataclass
class Unit:
    name: str
    top: str
    verilog: str
    kind: str  # "stream" or "sequential"
    tb: str
    hexfile: str
    hexlines: list[str]
    vectors: int
    latency: int
    role: str  # "nnlut" or "ibert"
    functions: list[str]
    extra: dict[str, Any] = field(default_factory=dict)


def paper_tables(entries: int = 16) -> dict[str, FixedTable]:
    """The four paper functions' NN-LUT tables in fixed point (reciprocal and rsqrt
    range-reduced), in the unit's common format: 16-bit inputs, slopes and outputs, 20-bit
    intercepts two guard bits below the output LSB."""
    from ..models._swap import fitted_table

    out = {}
    for f in ("gelu", "exp", "reciprocal", "rsqrt"):
        table = fitted_table(f, "nnlut", entries, "full")
        out[f] = quantize_table(table, choose_format(table, icpt_bits=ICPT_BITS, icpt_guard=ICPT_GUARD))
    return out


def _edge_and_random(lo: int, hi: int, n: int, rng: np.random.Generator, extra: list[int] = ()) -> np.ndarray:  # type: ignore[assignment]
    edges = [lo, lo + 1, hi, hi - 1, 0, 1, -1, *extra]
    edges = [e for e in edges if lo <= e <= hi]
    rand = rng.integers(lo, hi + 1, max(n - len(edges), 0), dtype=np.int64)
    return np.concatenate([np.array(edges, dtype=np.int64), rand])


def _nnlut_unit(tables: dict[str, FixedTable], rng: np.random.Generator, vectors: int) -> Unit:
    fmt = next(iter(tables.values())).fmt
    entries = next(iter(tables.values())).entries
    lines, n_vec = [], 0
    per = math.ceil(vectors / len(tables))
    lo, hi = -(2 ** (fmt.in_bits - 1)), 2 ** (fmt.in_bits - 1) - 1
    for name, ft in tables.items():
        f = ft.fmt
        if (f.in_bits, f.slope_bits, f.icpt_bits, f.out_bits, f.shift, ft.entries) != (
                fmt.in_bits, fmt.slope_bits, fmt.icpt_bits, fmt.out_bits, fmt.shift, entries):
            raise NNLUTError(f"table {name!r} does not fit the unit: every table needs the same widths, final shift "
                             f"and entry count ({fmt}, {entries} entries); got {f}, {ft.entries} entries")
        # reprogram: breakpoints, slopes, intercepts, shift (one register write per cycle)
        for j, b in enumerate(ft.bp):
            lines.append(tbm.stream_command(tbm.KIND_CFG, addr=j, data=int(b)))
        for j, v in enumerate(ft.s):
            lines.append(tbm.stream_command(tbm.KIND_CFG, addr=64 + j, data=int(v)))
        for j, v in enumerate(ft.t):
            lines.append(tbm.stream_command(tbm.KIND_CFG, addr=128 + j, data=int(v)))
        lines.append(tbm.stream_command(tbm.KIND_CFG, addr=192, data=ft.fmt.pshift))
        near = [int(b) + d for b in ft.bp for d in (-1, 0, 1)]
        xs = _edge_and_random(lo, hi, per, rng, near)
        ys = ft.eval_int(xs)
        for x, y in zip(xs.tolist(), ys.tolist(), strict=False):
            lines.append(tbm.stream_command(tbm.KIND_VEC, x=x, expected=y))
        n_vec += len(xs)
        for _ in range(3):  # drain the pipeline before the next table is loaded
            lines.append(tbm.stream_command(0))
    tb = tbm.stream_testbench("nnlut_unit", len(lines), n_vec, in_port="x_in", in_bits=fmt.in_bits, out_port="y_out",
                              out_bits=fmt.out_bits, latency=2, has_cfg=True, hexfile="nnlut_unit_vectors.hex")
    return Unit("nnlut_unit", "nnlut_unit", rnn.nnlut_unit_verilog(entries, fmt), "stream", tb,
                "nnlut_unit_vectors.hex", lines, n_vec, 2, "nnlut", list(tables),
                {"entries": entries, "programmable": True, "format": fmt.to_dict()})


def _nnlut_rom(name: str, ft: FixedTable, rng: np.random.Generator, vectors: int) -> Unit:
    fmt = ft.fmt
    lo, hi = -(2 ** (fmt.in_bits - 1)), 2 ** (fmt.in_bits - 1) - 1
    xs = _edge_and_random(lo, hi, vectors, rng, [int(b) + d for b in ft.bp for d in (-1, 0, 1)])
    ys = ft.eval_int(xs)
    lines = [tbm.stream_command(tbm.KIND_VEC, x=x, expected=y) for x, y in zip(xs.tolist(), ys.tolist(), strict=False)]
    top = f"nnlut_rom_{name}"
    tb = tbm.stream_testbench(top, len(lines), len(lines), in_port="x_in", in_bits=fmt.in_bits, out_port="y_out",
                              out_bits=fmt.out_bits, latency=2, has_cfg=False, hexfile=f"{top}_vectors.hex")
    return Unit(top, top, rnn.nnlut_rom_verilog(ft, top), "stream", tb, f"{top}_vectors.hex", lines, len(lines), 2,
                "nnlut-rom", [name], {"entries": ft.entries, "programmable": False})


def _ibert_gelu(rng: np.random.Generator, vectors: int) -> Unit:
    k = rib.gelu_constants(GELU_SCALE)
    clip_edges = [sign * k["b_int"] + d for sign in (1, -1) for d in (-1, 0, 1)]
    xs = _edge_and_random(-32767, 32767, vectors, rng, clip_edges)
    ys, _ = int_gelu(torch.tensor(xs), GELU_SCALE)
    lines = [tbm.stream_command(tbm.KIND_VEC, x=x, expected=y) for x, y in zip(xs.tolist(), ys.tolist(), strict=False)]
    tb = tbm.stream_testbench("ibert_gelu", len(lines), len(lines), in_port="q_in", in_bits=16, out_port="y_out",
                              out_bits=40, latency=3, has_cfg=False, hexfile="ibert_gelu_vectors.hex")
    return Unit("ibert_gelu", "ibert_gelu", rib.ibert_gelu_verilog(GELU_SCALE), "stream", tb, "ibert_gelu_vectors.hex",
                lines, len(lines), 3, "ibert", ["gelu"], {"scale": GELU_SCALE, **k})


def _ibert_exp(rng: np.random.Generator, vectors: int) -> Unit:
    k = rib.exp_constants(EXP_SCALE)
    x0 = k["x0_int"]
    edges = [k["qmin"], k["qmin"] - 1, k["qmin"] + 1, -(2**31)] + [j * x0 + d for j in range(0, 31) for d in (-1, 0, 1)]
    small = rng.integers(30 * x0, 1, vectors // 2)
    xs = np.concatenate([_edge_and_random(-(2**31), 0, vectors - len(small), rng, edges), small])
    ys = int_exp_requant(torch.tensor(xs), EXP_SCALE)
    lines = [tbm.stream_command(tbm.KIND_VEC, x=x, expected=y) for x, y in zip(xs.tolist(), ys.tolist(), strict=False)]
    tb = tbm.stream_testbench("ibert_exp", len(lines), len(lines), in_port="q_in", in_bits=32, out_port="e_out",
                              out_bits=16, latency=3, has_cfg=False, hexfile="ibert_exp_vectors.hex")
    return Unit("ibert_exp", "ibert_exp", rib.ibert_exp_verilog(EXP_SCALE), "stream", tb, "ibert_exp_vectors.hex",
                lines, len(lines), 3, "ibert", ["exp"], {"scale": EXP_SCALE, **k})


def _sequential(name: str, verilog: str, in_port: str, in_bits: int, out_port: str, out_bits: int,
                fn: Callable[[np.ndarray], np.ndarray], xs: np.ndarray, latency: int, functions: list[str]) -> Unit:
    ys = fn(xs)
    lines = [f"{((int(x) & ((1 << 64) - 1)) << 64) | (int(y) & ((1 << 64) - 1)):032x}" for x, y in zip(xs, ys, strict=False)]
    tb = tbm.sequential_testbench(name, len(lines), in_port=in_port, in_bits=in_bits, out_port=out_port,
                                  out_bits=out_bits, hexfile=f"{name}_vectors.hex")
    return Unit(name, name, verilog, "sequential", tb, f"{name}_vectors.hex", lines, len(lines), latency, "ibert",
                functions)


def build_units(entries: int = 16, seed: int = 0, vectors: int = VECTORS,
                tables: dict[str, FixedTable] | None = None) -> list[Unit]:
    """Every unit with its Verilog, testbench and ``vectors`` golden vectors (edge values first);
    ``tables`` are the fixed-point paper tables (made from ``entries`` when not given)."""
    rng = np.random.default_rng(seed)
    tables = tables if tables is not None else paper_tables(entries)
    units = [_nnlut_unit(tables, rng, vectors)]
    units += [_nnlut_rom(n, ft, rng, vectors) for n, ft in tables.items()]
    units += [_ibert_gelu(rng, vectors), _ibert_exp(rng, vectors)]
    d_edges = np.array([1, 2, 3, 2**31 - 1, 2**31, 2**31 + 1, 2**32 - 1, 65535, 65536, 32767], dtype=np.int64)
    q4 = max(vectors // 4, 1)
    ds = np.concatenate([d_edges, rng.integers(1, 2**32, vectors // 2), 2 ** rng.integers(0, 32, q4)
                         + rng.integers(0, 3, q4), rng.integers(1, 2**20, q4)])
    for kb in (32, 31):  # floor(2^32 / sum) for Softmax, floor(2^31 / std) for LayerNorm
        units.append(_sequential(f"ibert_div{kb}", rib.ibert_div_verilog(kb, f"ibert_div{kb}"), "d_in", 32, "q_out", kb + 1,
                                 lambda d, kb=kb: np.array([(1 << kb) // int(v) for v in d], dtype=object), ds, kb + 1,
                                 ["reciprocal" if kb == 32 else "rsqrt"]))
    n_edges = np.array([0, 1, 2, 3, 4, 15, 16, 17, 2**32 - 1, 2**31, 2**16, 2**16 - 1, 2**16 + 1], dtype=np.int64)
    ns = np.concatenate([n_edges, rng.integers(0, 2**32, vectors // 2), rng.integers(0, 2**16, q4),
                         rng.integers(1, 2**16, q4) ** 2 - rng.integers(0, 2, q4)])
    units.append(_sequential("ibert_isqrt", rib.ibert_isqrt_verilog(), "n_in", 32, "r_out", 17,
                             lambda n: isqrt(torch.tensor(n)).numpy(), ns, 0, ["rsqrt"]))
    return units


# I-BERT units a design needs for the functions one NN-LUT unit serves
IBERT_SET = ("ibert_gelu", "ibert_exp", "ibert_div32", "ibert_isqrt", "ibert_div31")
ROM_SET = ("nnlut_rom_gelu", "nnlut_rom_exp", "nnlut_rom_reciprocal", "nnlut_rom_rsqrt")


def run_flow(out_dir: str, *, entries: int = 16, gate_level: bool = True, seed: int = 0, vectors: int = VECTORS,
             only: tuple[str, ...] | None = None) -> dict[str, Any]:
    """Generate, simulate (RTL and gate level), synthesize and time every unit; write
    ``report.json`` into ``out_dir`` and return it."""
    lack = tools.missing()
    if lack:
        raise NNLUTError("the hardware flow needs " + ", ".join(lack) + " (scripts/setup.sh installs them)")
    out = Path(out_dir).resolve()  # the tools run inside this folder: every path must be absolute
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    tables = paper_tables(entries)
    units = [u for u in build_units(entries, seed, vectors, tables) if only is None or u.name in only]
    records = []
    for u in progress(units, desc="hardware units"):
        vfile = out / f"{u.top}.v"
        vfile.write_text(u.verilog)
        (out / f"tb_{u.top}.v").write_text(u.tb)
        tbm.write_lines(out / u.hexfile, u.hexlines)
        lint = tools.lint(vfile, u.top, out)
        p, f, simout = tools.simulate([vfile, out / f"tb_{u.top}.v"], "tb", out, f"{u.top} RTL")
        area, netlist, cells = tools.synthesize(vfile, u.top, out)
        gp = gf = None
        if gate_level:
            cellv = tools.cell_models()
            gp, gf, _ = tools.simulate([cellv, netlist, out / f"tb_{u.top}.v"], "tb", out, f"{u.top} gate level")  # type: ignore[list-item]
        gated = rnn.CLOCK_GATE_CELL if u.extra.get("programmable") else None
        sta = tools.timing_and_power(netlist, u.top, out, PERIOD_NS, ACTIVITY, clock_gates=gated)
        # streaming, the table registers are written only when a table is loaded: their gated
        # clocks are still (the all-toggling figure goes into the unit's details)
        power_w = sta.get("power_w_gates_off", sta["power_w_at_period"])
        if gated:
            u.extra["power_mw_clocks_all_toggling"] = 1000 * sta["power_w_at_period"]
        cycles = float(u.latency)
        per_element = 1.0
        if u.kind == "sequential":
            m = re.search(r"cycles: mean (\d+) max (\d+)", simout)
            cycles = float(m.group(2)) if m else float(u.latency)
            per_element = float(m.group(1)) if m else cycles
        rec = {
            "name": u.name, "top": u.top, "verilog": vfile.name, "netlist": netlist.name, "role": u.role,
            "functions": u.functions, "area_um2": area, "cells": sum(cells.values()),
            "fmax_mhz": sta["fmax_mhz"], "critical_path_ns": sta["critical_path_ns"],
            "power_mw": 1000 * power_w, "power_clock_mhz": 1000 / PERIOD_NS,
            "switching_activity": ACTIVITY, "latency_cycles": cycles, "cycles_per_element": per_element,
            "energy_pj_per_element": 1000 * power_w * per_element * PERIOD_NS,
            "lint_warnings": lint, "sim_vectors": u.vectors, "sim_passed": p, "sim_mismatches": f,
            "gate_sim_vectors": u.vectors if gate_level else 0, "gate_sim_mismatches": gf if gate_level else None,
            **({"details": u.extra} if u.extra else {}),
        }
        records.append(rec)
        logger.info("%s: %d/%d vectors, area %.0f um2, fmax %.1f MHz", u.top, p, p + f, area, sta["fmax_mhz"])
    by = {r["name"]: r for r in records}
    if not all(n in by for n in ("nnlut_unit", *IBERT_SET, *ROM_SET)):
        report = {"tools": tools.versions(), "units": records, "summary": None, "seconds": time.perf_counter() - t0}
        atomic_write_text(out / "report.json", json.dumps(report, indent=1, default=float) + "\n")
        return report
    ib_area = sum(by[n]["area_um2"] for n in IBERT_SET)
    rom_area = sum(by[n]["area_um2"] for n in ROM_SET)
    summary = {
        "nnlut_unit_area_um2": by["nnlut_unit"]["area_um2"],
        "ibert_units_area_um2": ib_area,
        "area_ratio_nnlut_over_ibert": by["nnlut_unit"]["area_um2"] / ib_area,
        "rom_units_area_um2": rom_area,
        "area_ratio_roms_over_ibert": rom_area / ib_area,
        "ibert_set": list(IBERT_SET),
        "rom_set": list(ROM_SET),
    }
    report = {"tools": tools.versions(), "library": "OSU 0.18um (qflow-tech-osu018)", "units": records,
              "summary": summary, "seconds": time.perf_counter() - t0, "vectors_per_unit": vectors,
              "power_note": f"OpenSTA total power at {1000 / PERIOD_NS:.0f} MHz with switching activity {ACTIVITY} on every "
                            "net; the programmable unit's table registers streaming (clock gates off; with every "
                            "gated clock toggling too: details.power_mw_clocks_all_toggling)",
              "fixed_point_tables": {n: t.meta["errors"] for n, t in tables.items()}}
    atomic_write_text(out / "report.json", json.dumps(report, indent=1, default=float) + "\n")
    return report
