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


def summary_lines(report: dict) -> list[str]:
    """The area and latency comparisons of the report's summary, one sentence each."""
    s = report.get("summary")
    if not s:
        return []
    lines = [f"NN-LUT unit (programmable, serves gelu/exp/reciprocal/rsqrt): {s['nnlut_unit_area_um2']:.0f} um2 = "
             f"{s['area_ratio_nnlut_over_ibert']:.2f}x the I-BERT units it replaces ({' + '.join(s['ibert_set'])}: "
             f"{s['ibert_units_area_um2']:.0f} um2); four hard-wired NN-LUT units: {s['area_ratio_roms_over_ibert']:.2f}x"]
    for fmt, what in (("int8", "INT8 NN-LUT unit (programmable, GQA-LUT's int8:P datapath)"),
                      ("fp16", "FP16-parameter NN-LUT unit (programmable)")):
        if f"{fmt}_unit_area_um2" in s:
            lines.append(f"{what}: {s[f'{fmt}_unit_area_um2']:.0f} um2 = {s[f'area_ratio_{fmt}_over_int16_unit']:.2f}x "
                         f"the INT16 unit, {s[f'area_ratio_{fmt}_over_ibert']:.2f}x the I-BERT units")
    lines.append(f"fastest NN-LUT GELU ({s['gelu_fastest_nnlut_unit']}): "
                 f"{s['gelu_latency_ratio_fastest_vs_ibert']:.2f}x i-GELU's latency, each at its best clock")
    return lines
