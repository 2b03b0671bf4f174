"""The NPU model: GEMM counts against hand calculations, trends, config validation."""

from __future__ import annotations

import json
import math

import pytest

from nnlut import NNLUTError
from nnlut.system import (
    BERT_BASE,
    EncoderShape,
    Gemm,
    NPUConfig,
    encoder_ops,
    gemm_compute_cycles,
    simulate,
    speedups,
    sweep,
)


def test_gemm_cycles_hand_calculations():
    # one tile: K <= R, N <= C -> 2R + C + M - 2
    assert gemm_compute_cycles(Gemm("g", M=10, K=4, N=4), 4, 4) == 2 * 4 + 4 + 10 - 2
    # K = 9 on R = 4 -> 3 row folds; N = 5 on C = 4 -> 2 column folds
    assert gemm_compute_cycles(Gemm("g", M=7, K=9, N=5), 4, 4) == 3 * 2 * (8 + 4 + 7 - 2)
    # counts multiply
    assert gemm_compute_cycles(Gemm("g", M=7, K=9, N=5, count=3), 4, 4) == 3 * 3 * 2 * 17
    # BERT-base FFN up-projection on 128x128 at 128 tokens: 6 row folds x 24 column folds x (256+128+128-2)
    assert gemm_compute_cycles(Gemm("ffn_up", 128, 768, 3072), 128, 128) == 6 * 24 * 510


def test_workload_shapes():
    gemms, vec = encoder_ops(BERT_BASE, 128, batch=2)
    by = {g.name: g for g in gemms}
    assert (by["qkv"].M, by["qkv"].K, by["qkv"].N, by["qkv"].count) == (256, 768, 768, 36)
    assert (by["scores"].M, by["scores"].K, by["scores"].N, by["scores"].count) == (128, 64, 128, 2 * 12 * 12)
    ops = {v.op: v for v in vec}
    assert ops["softmax"].elements == 2 * 12 * 128 * 128 * 12 and ops["softmax"].rows == 2 * 12 * 128 * 12
    assert ops["gelu"].elements == 256 * 3072 * 12
    assert ops["layernorm"].rows == 256 * 25


def test_trends():
    cfg = NPUConfig(array_rows=64, array_cols=64, vector_lanes=128)
    recs = sweep(BERT_BASE, [16, 64, 256, 1024, 4096], cfg)
    ib = [r for r in recs if r["design"] == "ibert"]
    shares = [r["nonlinear_share"] for r in ib]
    assert all(a < b for a, b in zip(shares, shares[1:], strict=False))  # softmax grows as L^2
    totals = [r["total"] for r in ib]
    assert all(a < b for a, b in zip(totals, totals[1:], strict=False))
    sp = speedups(recs)
    assert all(v > 1 for v in sp.values())
    for r in recs:
        assert math.isclose(r["total"], sum(r["cycles"].values()), rel_tol=1e-6)
    # more lanes never slow the vector ops down
    wide = simulate(BERT_BASE, 256, "ibert", NPUConfig(array_rows=64, array_cols=64, vector_lanes=512))
    narrow = simulate(BERT_BASE, 256, "ibert", cfg)
    assert wide["cycles"]["softmax"] < narrow["cycles"]["softmax"] and wide["cycles"]["gemm"] == narrow["cycles"]["gemm"]


def test_kernel_costs_come_from_the_kernels():
    from nnlut.system import kernel_costs

    ib, nn = kernel_costs("ibert"), kernel_costs("nnlut")
    assert nn["gelu"].lut_per_element == 1 and nn["gelu"].per_element == 0
    assert ib["gelu"].per_element >= 8  # sign, abs, min, adds, square, multiplies, shift
    assert ib["softmax"].divides_per_row == 1  # floor(2**32 / sum)
    assert ib["layernorm"].divides_per_row >= 3  # Newton i-sqrt and floor(2**31 / std)
    assert nn["softmax"].lut_per_row == 1 and nn["layernorm"].lut_per_row == 1


@pytest.mark.parametrize(
    "data,match",
    [
        ({"array_rows": 0}, "array_rows must be a positive integer"),
        ({"vector_lanes": 2.5}, "vector_lanes must be a positive integer"),
        ({"dram_bytes_per_cycle": -1}, "dram_bytes_per_cycle must be a positive number"),
        ({"clock_mhz": float("nan")}, "clock_mhz"),
        ({"lanes": 4}, "unknown NPU config key"),
        ([1, 2], "must be a JSON object"),
    ],
)
def test_config_validation(data, match):
    with pytest.raises(NNLUTError, match=match):
        NPUConfig.from_dict(data)


def test_config_file_errors(tmp_path):
    with pytest.raises(NNLUTError, match="does not exist"):
        NPUConfig.load(str(tmp_path / "none.json"))
    p = tmp_path / "bad.json"
    p.write_text("{oops")
    with pytest.raises(NNLUTError, match="not valid JSON"):
        NPUConfig.load(str(p))
    p.write_text(json.dumps({"array_rows": 32, "array_cols": 32}))
    assert NPUConfig.load(str(p)).array_rows == 32
    with pytest.raises(NNLUTError, match="multiple of"):
        EncoderShape("x", 2, 100, 3, 10)


def test_fit_reaches_the_paper_shares():
    from nnlut.system import fit_npu

    fit = fit_npu()
    assert abs(fit["ibert_share_16"] - 0.177) <= 0.02 and abs(fit["ibert_share_1024"] - 0.378) <= 0.02
    lo, hi = fit["sensitivity"]["speedup_1024"]
    assert 1.0 < lo <= fit["speedup_1024"] <= hi


def test_cli_sim(tmp_path, capsys):
    from nnlut.cli import main

    cfg = tmp_path / "npu.json"
    cfg.write_text(json.dumps({"array_rows": 32, "array_cols": 32, "vector_lanes": 64}))
    out = tmp_path / "sim.json"
    assert main(["sim", "--config", str(cfg), "--seq", "16", "128", "--json", str(out)]) == 0
    data = json.loads(out.read_text())
    assert {(r["seq_len"], r["design"]) for r in data["records"]} == {(16, "ibert"), (16, "nnlut"), (128, "ibert"),
                                                                     (128, "nnlut")}
    for r in data["records"]:
        assert set(r["cycles"]) == {"gemm", "gelu", "softmax", "layernorm", "other"}
        assert 0 < r["nonlinear_share"] < 1 and r["total"] > 0
    assert main(["sim", "--config", str(tmp_path / "missing.json")]) == 2
    assert "does not exist" in capsys.readouterr().err
