"""Rows of the hardware report's two tables (per unit, per function), for the CLI and the study report."""

from __future__ import annotations


def hw_rows(report: dict) -> tuple[list[str], list[list]]:
    """One row per unit: area, clock, latency, energy (simulated and vectorless), mismatches."""
    headers = ["unit", "functions", "area um2", "fmax MHz", "latency", "latency ns", "comb. ns", "cycles/elem",
               "power mW", "energy pJ/elem", "vectorless pJ", "vectors", "RTL mism.", "gate mism."]
    rows = [[u["name"], "+".join(u["functions"]), u["area_um2"], u["fmax_mhz"], u["latency_cycles"], u["latency_ns"],
             "-" if u.get("combinational_delay_ns") is None else u["combinational_delay_ns"], u["cycles_per_element"],
             u["power_mw"], u["energy_pj_per_element"], u["vectorless"]["energy_pj_per_element"], u["sim_vectors"],
             u["sim_mismatches"], "-" if u["gate_sim_mismatches"] is None else u["gate_sim_mismatches"]]
            for u in report["units"]]
    return headers, rows


def function_rows(report: dict) -> tuple[list[str], list[list]]:
    """The per-function comparison: NN-LUT's unit against I-BERT's, each at its best clock."""
    headers = ["function", "design", "units", "area um2", "cycles", "latency ns", "comb. ns", "energy pJ/elem",
               "latency x", "energy x"]
    rows = [[r["function"], r["design"], "+".join(r["units"]), r["area_um2"], r["latency_cycles"], r["latency_ns"],
             "-" if r["combinational_delay_ns"] is None else r["combinational_delay_ns"], r["energy_pj_per_element"],
             r.get("latency_ratio_vs_ibert", "-"), r.get("energy_ratio_vs_ibert", "-")] for r in report["functions"]]
    return headers, rows
