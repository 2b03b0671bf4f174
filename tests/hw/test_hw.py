"""The hardware flow: every generated unit matches the Python golden model in simulation
(RTL and gate level), is lint-clean, synthesizes and times. Skipped without the tools."""

from __future__ import annotations

import json

import pytest

from nnlut.hw import missing_tools, run_flow

pytestmark = [pytest.mark.hw, pytest.mark.skipif(bool(missing_tools()),
                                                 reason=f"hardware tools missing: {', '.join(missing_tools())}")]

VECTORS = 400  # the full flow (nnlut hw) uses 10,000 per unit; tests keep the suite fast


@pytest.fixture(scope="module")
def rtl_report(tmp_path_factory):
    return run_flow(str(tmp_path_factory.mktemp("hw")), vectors=VECTORS, gate_level=False)


def test_every_unit_matches_the_golden_model(rtl_report):
    names = {u["name"] for u in rtl_report["units"]}
    assert {"nnlut_unit", "ibert_gelu", "ibert_exp", "ibert_div32", "ibert_div31", "ibert_isqrt"} <= names
    for u in rtl_report["units"]:
        assert u["sim_vectors"] >= VECTORS and u["sim_passed"] == u["sim_vectors"], u["name"]
        assert u["sim_mismatches"] == 0 and u["lint_warnings"] == []


def test_costs_are_measured(rtl_report):
    by = {u["name"]: u for u in rtl_report["units"]}
    for u in rtl_report["units"]:
        assert u["area_um2"] > 1000 and 1 < u["fmax_mhz"] < 2000 and u["power_mw"] > 0
    assert by["nnlut_unit"]["latency_cycles"] == 2 and by["nnlut_unit"]["cycles_per_element"] == 1
    assert by["ibert_div32"]["latency_cycles"] == 34
    s = rtl_report["summary"]
    assert s["area_ratio_nnlut_over_ibert"] == pytest.approx(by["nnlut_unit"]["area_um2"] / s["ibert_units_area_um2"])
    # the design target: one programmable unit in at most 0.4x the area of I-BERT's five units
    assert s["area_ratio_nnlut_over_ibert"] <= 0.4
    nn = by["nnlut_unit"]
    assert 0 < nn["power_mw"] < nn["details"]["power_mw_clocks_all_toggling"]  # gated clocks still when streaming


def test_gate_level_and_report_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a relative output folder, as `nnlut run --out results` gives
    rep = run_flow("out", vectors=200, gate_level=True, only=("nnlut_unit", "ibert_gelu"))
    tmp_path = tmp_path / "out"
    for u in rep["units"]:
        assert u["gate_sim_mismatches"] == 0 and u["gate_sim_vectors"] >= 200
    data = json.loads((tmp_path / "report.json").read_text())
    for key in ("name", "top", "verilog", "area_um2", "fmax_mhz", "power_mw", "latency_cycles", "sim_vectors",
                "sim_mismatches"):
        assert all(key in u for u in data["units"])
    assert (tmp_path / data["units"][0]["verilog"]).exists()
    assert "yosys" in data["tools"]["yosys"].lower()
