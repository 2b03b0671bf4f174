"""``nnlut hw``: generate every unit, verify it against the Python golden model in RTL and at
gate level, synthesize it to the OSU 0.18um library and measure area, fmax and power."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import numpy as np

from .._errors import NNLUTError
from .._logging import logger, progress
from ..core._io import atomic_write_text
from ..fixed import FixedTable, choose_format, quantize_table
from . import _activity as act
from . import _rtl_fp16, _rtl_int8  # noqa: F401  (register the INT8 and FP16 units)
from . import _rtl_nnlut as rnn
from . import _testbench as tbm
from . import _tools as tools
from ._units import UNIT_BUILDERS, BuildContext, Unit

VECTORS = 10_000
ACTIVITY = 0.1
PERIOD_NS = 10.0  # power is reported at 100 MHz
ICPT_BITS, ICPT_GUARD = 20, 2  # the NN-LUT unit's intercept registers
POWER_VECTORS = {"stream": 2000, "sequential": 200}  # real inputs per unit in the power simulation
TB_PERIOD_NS = 100.0  # the testbenches' clock


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


def build_units(entries: int = 16, seed: int = 0, vectors: int = VECTORS,
                tables: dict[str, FixedTable] | None = None) -> list[Unit]:
    """Every registered unit with its Verilog, testbench and ``vectors`` golden vectors (edge
    values first); ``tables`` are the fixed-point paper tables (made from ``entries`` when not
    given)."""
    ctx = BuildContext(tables if tables is not None else paper_tables(entries), np.random.default_rng(seed), vectors,
                       entries)
    return [u for builder in UNIT_BUILDERS.values() for u in builder(ctx)]


# I-BERT units a design needs for the functions one NN-LUT unit serves
IBERT_SET = ("ibert_gelu", "ibert_exp", "ibert_div32", "ibert_isqrt", "ibert_div31")
ROM_SET = ("nnlut_rom_gelu", "nnlut_rom_exp", "nnlut_rom_reciprocal", "nnlut_rom_rsqrt")


# the per-function comparison: NN-LUT's hard-wired unit against the I-BERT units that compute
# the same function (a chain of units runs one after the other: latency, energy and cycles add)
FUNCTION_PAIRS = {
    "gelu": (("nnlut_rom_gelu",), ("ibert_gelu",)),
    "exp": (("nnlut_rom_exp",), ("ibert_exp",)),
    "reciprocal": (("nnlut_rom_reciprocal",), ("ibert_div32",)),
    "rsqrt": (("nnlut_rom_rsqrt",), ("ibert_isqrt", "ibert_div31")),
}


# further NN-LUT designs beside each function's pair: the 1-cycle hard-wired GELU, the INT8
# hard-wired units, and the programmable units (their energy measured on GELU inputs)
NNLUT_VARIANTS: dict[str, dict[str, tuple[str, ...]]] = {
    "nnlut 1-cycle": {"gelu": ("nnlut_rom_gelu_1c",)},
    "nnlut int8": {fn: (f"nnlut_int8_rom_{fn}",) for fn in FUNCTION_PAIRS},
    **{f"{n} (programmable)": {"gelu": (n,)}
       for n in ("nnlut_unit", "nnlut_unit_p3", "nnlut_int8_unit", "nnlut_fp16_unit")},
}


def _summary(by: dict[str, dict[str, Any]]) -> dict[str, Any] | None:
    """Areas of the programmable units against I-BERT's five units and against each other, and
    the best NN-LUT GELU latency against i-GELU's."""
    if not all(n in by for n in ("nnlut_unit", *IBERT_SET, *ROM_SET)):
        return None
    ib_area = sum(by[n]["area_um2"] for n in IBERT_SET)
    rom_area = sum(by[n]["area_um2"] for n in ROM_SET)
    nn = by["nnlut_unit"]["area_um2"]
    s: dict[str, Any] = {"nnlut_unit_area_um2": nn, "ibert_units_area_um2": ib_area,
                         "area_ratio_nnlut_over_ibert": nn / ib_area, "rom_units_area_um2": rom_area,
                         "area_ratio_roms_over_ibert": rom_area / ib_area, "ibert_set": list(IBERT_SET),
                         "rom_set": list(ROM_SET)}
    for fmt in ("int8", "fp16"):
        u = by.get(f"nnlut_{fmt}_unit")
        if u is not None:
            s[f"{fmt}_unit_area_um2"] = u["area_um2"]
            s[f"area_ratio_{fmt}_over_int16_unit"] = u["area_um2"] / nn
            s[f"area_ratio_{fmt}_over_ibert"] = u["area_um2"] / ib_area
    gelu = [n for n in ("nnlut_rom_gelu", "nnlut_rom_gelu_1c") if n in by]
    best = min(gelu, key=lambda n: by[n]["latency_ns"])
    s["gelu_fastest_nnlut_unit"] = best
    s["gelu_latency_ratio_fastest_vs_ibert"] = by[best]["latency_ns"] / by["ibert_gelu"]["latency_ns"]
    return s


def _simulated_energy(u: Unit, out: Path, inputs: dict[str, np.ndarray], cellv: Path,
                      n: int | None = None) -> dict[str, Any]:
    """Gate-level simulation of the unit on ``n`` real inputs (default POWER_VECTORS) with a VCD
    of its nets, per-net activities into OpenSTA: power at PERIOD_NS and energy per element."""
    n = n or POWER_VECTORS[u.kind]
    lines, n_vec = u.real_lines(inputs, n)
    hexfile, vcd = f"{u.top}_power.hex", f"{u.top}_power.vcd"
    tbm.write_lines(out / hexfile, lines)
    (out / f"tb_{u.top}_power.v").write_text(u.make_tb(len(lines), n_vec, hexfile, vcd))
    p, f, simout = tools.simulate([cellv, out / f"{u.top}_netlist.v", out / f"tb_{u.top}_power.v"], "tb", out,
                                  f"{u.top} gate level, real inputs")
    m = re.search(r"window (\d+) (\d+)", simout)
    if not m:
        raise NNLUTError(f"the power testbench of {u.top} printed no activity window")
    t0, t1 = float(m.group(1)), float(m.group(2))
    activity = act.vcd_activity(out / vcd, "tb.dut", t0, t1, TB_PERIOD_NS)
    nets, ports = tools.sta_nets(u.top, out)
    tcl, hit = act.activity_tcl(activity, nets, ports)
    gates = rnn.CLOCK_GATE_CELL if u.extra.get("programmable") else None
    if gates:  # the window has no table writes: the clock-gate enables must have been still
        still = [n for n, (a, _) in activity.items() if n.startswith("wen") and a > 0]
        if still:
            raise NNLUTError(f"{u.top}: table-register enables toggled while streaming ({', '.join(still[:3])})")
    power_w = tools.simulated_power(u.top, out, PERIOD_NS, tcl, gates)
    (out / vcd).unlink()  # large; the per-net activities stay in <top>_activity.tcl
    cycles = (t1 - t0) / TB_PERIOD_NS
    return {"activity": "simulated", "power_inputs": u.extra.get("power_inputs"), "power_vectors": n_vec,
            "power_vectors_mismatches": f, "nets_with_activity": hit, "nets": len(nets),
            "power_mw": 1000 * power_w, "cycles_per_element_simulated": cycles / n_vec,
            "energy_pj_per_element": 1000 * power_w * PERIOD_NS * cycles / n_vec}


def _run_unit(u: Unit, out: Path, gate_level: bool, inputs: dict[str, np.ndarray] | None, combinational: bool,
              power_vectors: int | None) -> dict[str, Any]:
    vfile = out / f"{u.top}.v"
    vfile.write_text(u.verilog)
    (out / f"tb_{u.top}.v").write_text(u.tb)
    tbm.write_lines(out / u.hexfile, u.hexlines)
    lint = tools.lint(vfile, u.top, out)
    p, f, simout = tools.simulate([vfile, out / f"tb_{u.top}.v"], "tb", out, f"{u.top} RTL")
    area, netlist, cells = tools.synthesize(vfile, u.top, out)
    cellv = tools.cell_models()
    gp = gf = None
    if gate_level:
        gp, gf, _ = tools.simulate([cellv, netlist, out / f"tb_{u.top}.v"], "tb", out, f"{u.top} gate level")  # type: ignore[list-item]
    gated = rnn.CLOCK_GATE_CELL if u.extra.get("programmable") else None
    sta = tools.timing_and_power(netlist, u.top, out, PERIOD_NS, ACTIVITY, clock_gates=gated)
    # streaming, the table registers are written only when a table is loaded: their gated
    # clocks are still (the all-toggling figure goes into the unit's details)
    power_w = sta.get("power_w_gates_off", sta["power_w_at_period"])
    if gated:
        u.extra["power_mw_clocks_all_toggling"] = 1000 * sta["power_w_at_period"]
    cycles, per_element = float(u.latency), 1.0
    if u.kind == "sequential":
        m = re.search(r"cycles: mean (\d+) max (\d+)", simout)
        cycles = float(m.group(2)) if m else float(u.latency)
        per_element = float(m.group(1)) if m else cycles
    comb = None
    if combinational and u.comb_verilog is not None:  # the un-pipelined datapath: input to output in one cycle
        cname = f"{u.top}_comb"
        (out / f"{cname}.v").write_text(u.comb_verilog)
        _, cnet, _ = tools.synthesize(out / f"{cname}.v", cname, out)
        comb = tools.timing_and_power(cnet, cname, out, PERIOD_NS, ACTIVITY)["critical_path_ns"]
    vectorless = {"activity": f"vectorless {ACTIVITY}", "power_mw": 1000 * power_w,
                  "energy_pj_per_element": 1000 * power_w * per_element * PERIOD_NS}
    rec = {
        "name": u.name, "top": u.top, "verilog": vfile.name, "netlist": netlist.name, "role": u.role,
        "functions": u.functions, "area_um2": area, "cells": sum(cells.values()),
        "fmax_mhz": sta["fmax_mhz"], "critical_path_ns": sta["critical_path_ns"],
        "latency_cycles": cycles, "cycles_per_element": per_element,
        # at the unit's own best clock: the paper's delay comparison
        "latency_ns": cycles * sta["critical_path_ns"], "combinational_delay_ns": comb,
        "power_clock_mhz": 1000 / PERIOD_NS, "switching_activity": ACTIVITY, "vectorless": vectorless,
        "lint_warnings": lint, "sim_vectors": u.vectors, "sim_passed": p, "sim_mismatches": f,
        "gate_sim_vectors": u.vectors if gate_level else 0, "gate_sim_mismatches": gf if gate_level else None,
    }
    if gate_level and inputs is not None:
        sim = _simulated_energy(u, out, inputs, cellv, power_vectors)  # type: ignore[arg-type]
        rec.update(sim)
    else:
        rec.update(vectorless)
    if u.extra:
        rec["details"] = u.extra
    logger.info("%s: %d/%d vectors, area %.0f um2, fmax %.1f MHz, %.2f pJ/element (%s)", u.top, p, p + f, area,
                sta["fmax_mhz"], rec["energy_pj_per_element"], rec["activity"])
    return rec


def function_table(by: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Per function: the hard-wired NN-LUT unit against I-BERT's unit(s), and the programmable
    unit(s) beside them (area, latency in ns at each unit's best clock, combinational delay,
    energy per element, cycles)."""
    rows = []

    def row(fn: str, design: str, names: tuple[str, ...]) -> dict[str, Any]:
        us = [by[n] for n in names]
        combs = [u["combinational_delay_ns"] for u in us]
        return {"function": fn, "design": design, "units": list(names), "area_um2": sum(u["area_um2"] for u in us),
                "latency_ns": sum(u["latency_ns"] for u in us), "latency_cycles": sum(u["latency_cycles"] for u in us),
                "combinational_delay_ns": None if None in combs else sum(combs),
                "energy_pj_per_element": sum(u["energy_pj_per_element"] for u in us),
                "activity": "+".join(sorted({u["activity"] for u in us}))}

    def versus(r: dict[str, Any], ib: dict[str, Any]) -> dict[str, Any]:
        r["latency_ratio_vs_ibert"] = r["latency_ns"] / ib["latency_ns"]
        r["energy_ratio_vs_ibert"] = r["energy_pj_per_element"] / ib["energy_pj_per_element"]
        return r

    for fn, (nn, ib) in FUNCTION_PAIRS.items():
        if all(n in by for n in nn + ib):
            b = row(fn, "ibert", ib)
            rows += [versus(row(fn, "nnlut", nn), b), b]
            rows += [versus(row(fn, design, units[fn]), b) for design, units in NNLUT_VARIANTS.items()
                     if fn in units and all(n in by for n in units[fn])]
    return rows


def run_flow(out_dir: str, *, entries: int = 16, gate_level: bool = True, seed: int = 0, vectors: int = VECTORS,
             only: tuple[str, ...] | None = None, real_inputs: bool = True, combinational: bool = True,
             power_vectors: int | None = None) -> dict[str, Any]:
    """Generate, simulate (RTL and gate level), synthesize and time every unit; with
    ``gate_level`` and ``real_inputs``, energy comes from a gate-level simulation on
    ``power_vectors`` inputs recorded in MiniLM (default POWER_VECTORS; needs transformers and
    the sentiment data), else from OpenSTA's vectorless estimate; ``combinational`` also
    synthesizes and times each pipelined unit un-pipelined; ``only``: the names of the units to
    run (default all; the summary needs the NN-LUT and I-BERT sets). Writes ``report.json`` into
    ``out_dir`` and returns it."""
    lack = tools.missing()
    if lack:
        raise NNLUTError("the hardware flow needs " + ", ".join(lack) + " (scripts/setup.sh installs them)")
    out = Path(out_dir).resolve()  # the tools run inside this folder: every path must be absolute
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    tables = paper_tables(entries)
    units = build_units(entries, seed, vectors, tables)
    if only is not None:
        unknown = sorted(set(only) - {u.name for u in units})
        if unknown:
            raise NNLUTError(f"unknown hardware unit(s) {', '.join(unknown)}; allowed: {', '.join(u.name for u in units)}")
        units = [u for u in units if u.name in only]
    inputs = act.record_inputs() if gate_level and real_inputs else None
    records = [_run_unit(u, out, gate_level, inputs, combinational, power_vectors)
               for u in progress(units, desc="hardware units")]
    by = {r["name"]: r for r in records}
    report: dict[str, Any] = {"tools": tools.versions(), "library": "OSU 0.18um (qflow-tech-osu018)", "units": records,
                              "functions": function_table(by), "summary": None, "vectors_per_unit": vectors,
                              "power_note": _power_note(inputs is not None),
                              "fixed_point_tables": {n: t.meta["errors"] for n, t in tables.items()}}
    report["summary"] = _summary(by)
    report["seconds"] = time.perf_counter() - t0
    atomic_write_text(out / "report.json", json.dumps(report, indent=1, default=float) + "\n")
    return report


def _power_note(simulated: bool) -> str:
    clock = f"OpenSTA total power at {1000 / PERIOD_NS:.0f} MHz"
    if simulated:
        return (f"{clock} from per-net switching activity of a gate-level simulation on inputs recorded in MiniLM "
                f"on {act.SENTENCES} movie-review sentences ({POWER_VECTORS['stream']} values per streaming unit, "
                f"{POWER_VECTORS['sequential']} per iterative unit; the programmable unit programmed for GELU); "
                f"each unit's 'vectorless' entry keeps the estimate with activity {ACTIVITY} on every net")
    return (f"{clock} with switching activity {ACTIVITY} on every net; the programmable unit's table registers "
            "streaming (clock gates off; with every gated clock toggling too: details.power_mw_clocks_all_toggling)")
