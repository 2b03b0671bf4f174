"""The NPU built from measured units: unit timing in NPU cycles, op cycles against hand
calculations, the vectorised fit against the scalar model, the shipped figures reaching the
paper's three points, report loading errors and the CLI."""

from __future__ import annotations

import json

import pytest

from nnlut import NNLUTError
from nnlut.system import BERT_BASE, HWNPU, UnitTiming, explain, fit_hw, load_units, simulate_hw
from nnlut.system._hwnpu import BYTES_PER_ELEMENT, LENGTHS, PAPER, TOLERANCES, op_cycles

NAMES = ("nnlut_unit", "ibert_gelu", "ibert_exp", "ibert_div32", "ibert_div31", "ibert_isqrt")


def _units(**over):
    base = {"nnlut_unit": (2, 1, 100.0), "ibert_gelu": (3, 1, 120.0), "ibert_exp": (3, 1, 110.0),
            "ibert_div32": (34, 34, 150.0), "ibert_div31": (33, 33, 150.0), "ibert_isqrt": (300, 150, 150.0)}
    base.update(over)
    return {n: UnitTiming(n, *v) for n, v in base.items()}


def test_unit_timing_in_npu_cycles():
    u = UnitTiming("u", 3, 1, 100.0)
    assert float(u.npu_cycles(200.0, False)) == 2.0  # one result per own cycle, the NPU clock twice as fast
    assert float(u.npu_cycles(200.0, True)) == 6.0  # the lane waits the whole 3-cycle latency
    assert u.latency_ns == pytest.approx(30.0)
    with pytest.raises(NNLUTError, match="fmax_mhz must be a positive number"):
        UnitTiming("u", 3, 1, 0.0)


def test_op_cycles_hand_calculation():
    units = _units()
    v = 4  # around the functions, per element: row max, subtract it, sum, normalising multiply
    # 1000 elements in 10 rows on 10 lanes at the unit's clock: exp 1 cycle per element,
    # the row's reciprocal waits the unit's 2-cycle latency
    r = op_cycles(units, "nnlut", "softmax", 1000, 10, 10, 100.0, False, float("inf"), 1)
    assert float(r["units"]) == pytest.approx(1000 * 1 / 10 + 10 * 2)
    assert float(r["around"]) == pytest.approx(1000 * v / 10)
    assert float(r["cycles"]) == pytest.approx(float(r["units"] + r["around"]))
    # I-BERT: i-exp per element, then an iterative divider per row (its mean cycles at its clock)
    ib = op_cycles(units, "ibert", "softmax", 1000, 10, 10, 100.0, False, float("inf"), 1)
    assert float(ib["units"]) == pytest.approx(1000 * (100 / 110) / 10 + 10 * 34 * 100 / 150)
    # a narrow SRAM port bounds both designs alike
    slow = op_cycles(units, "nnlut", "softmax", 1000, 10, 10, 100.0, False, 1.0, 1)
    assert float(slow["cycles"]) == 1000 * BYTES_PER_ELEMENT["softmax"]


def test_fit_agrees_with_the_scalar_model():
    units = _units()
    grid = {"array": (32, 128), "vector_lanes": (16, 256), "clock_mhz": (100.0, 200.0), "blocking": (False, True),
            "sram_bytes_per_cycle": (64.0, float("inf")), "row_units": (1, 16), "dram_bytes_per_cycle": (64.0,),
            "batch": (1, 8)}
    fit = fit_hw(units, grid)
    assert fit["searched"] == 2 * 2 * 2 * 2 * 2 * 2 * 2
    npu = HWNPU(**fit["npu"])
    ib16 = simulate_hw(units, npu, BERT_BASE, 16, "ibert")
    ib = simulate_hw(units, npu, BERT_BASE, 1024, "ibert")
    nn = simulate_hw(units, npu, BERT_BASE, 1024, "nnlut")
    assert fit["figures"]["ibert_share_16"] == pytest.approx(ib16["nonlinear_share"], rel=1e-6)
    assert fit["figures"]["nnlut_share_1024"] == pytest.approx(nn["nonlinear_share"], rel=1e-6)
    assert fit["figures"]["speedup_1024"] == pytest.approx(ib["total"] / nn["total"], rel=1e-6)
    top = max(simulate_hw(units, npu, BERT_BASE, L, "ibert")["total"] / simulate_hw(units, npu, BERT_BASE, L, "nnlut")
              ["total"] for L in LENGTHS)
    assert fit["figures"]["speedup_max"] == pytest.approx(top, rel=1e-6)
    for k in PAPER:
        assert fit["residuals"][k] == pytest.approx(fit["figures"][k] - PAPER[k])
    # a slower NN-LUT unit can only lower the speedup on the same NPU
    slower = _units(nnlut_unit=(2, 1, 50.0))
    assert simulate_hw(slower, npu, BERT_BASE, 1024, "nnlut")["total"] >= nn["total"]


def test_shipped_units_reach_the_paper():
    units, source = load_units()
    assert source.endswith("measured_units.json") and set(NAMES) <= set(units)
    fit = fit_hw(units)
    for k, tol in TOLERANCES.items():  # 2 pt on I-BERT's shares, 3 pt on NN-LUT's, 0.05 / 0.03 on the speedups
        assert abs(fit["residuals"][k]) <= tol, (k, fit["figures"][k])
    npu = HWNPU(**fit["npu"])
    # the paper's "up to 26%": at or below 1.26x +- 0.03 at every length up to 1024
    for L in (16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512, 768, 1024):
        sp = simulate_hw(units, npu, BERT_BASE, L, "ibert")["total"] / simulate_hw(units, npu, BERT_BASE, L, "nnlut")["total"]
        assert 1 < sp <= PAPER["speedup_max"] + TOLERANCES["speedup_max"], (L, sp)
    ex = explain(units, npu)
    assert ex["nonlinear_gain"] > 1
    for d in ("ibert", "nnlut"):
        assert ex[d]["units"] + ex[d]["around"] > 0 and set(ex[d]["bound"]) == {"gelu", "softmax", "layernorm"}


def test_load_units_errors(tmp_path):
    with pytest.raises(NNLUTError, match="no hardware report"):
        load_units(tmp_path)
    (tmp_path / "report.json").write_text("{oops")
    with pytest.raises(NNLUTError, match="not readable JSON"):
        load_units(tmp_path)
    (tmp_path / "report.json").write_text(json.dumps({"units": [{"name": "nnlut_unit", "latency_cycles": 2,
                                                                 "cycles_per_element": 1, "fmax_mhz": 90}]}))
    with pytest.raises(NNLUTError, match="lacks the unit"):
        load_units(tmp_path)


def test_cli_sim_from_units(tmp_path, capsys):
    from nnlut.cli import main

    rep = {"units": [{"name": n, "latency_cycles": u.latency_cycles, "cycles_per_element": u.cycles_per_element,
                      "fmax_mhz": u.fmax_mhz} for n, u in _units().items()]}
    (tmp_path / "report.json").write_text(json.dumps(rep))
    out = tmp_path / "sim.json"
    assert main(["sim", "--hw", str(tmp_path), "--seq", "16", "1024", "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "residual" in text and "NN-LUT share at 1024" in text
    data = json.loads(out.read_text())
    assert data["units_source"].endswith("report.json")
    assert {(r["seq_len"], r["design"]) for r in data["records"]} == {(16, "ibert"), (16, "nnlut"), (1024, "ibert"),
                                                                     (1024, "nnlut")}
    assert main(["sim", "--hw", str(tmp_path), "--config", str(tmp_path / "x.json")]) == 2
    assert "exclude each other" in capsys.readouterr().err
