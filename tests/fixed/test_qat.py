"""Quantisation-aware fitting: exact recovery, optimality against brute force, published and
rounded baselines, bit-exact exports."""

from __future__ import annotations

import itertools
import shutil
import subprocess

import numpy as np
import pytest

import nnlut
from nnlut.fixed import FixedTable, choose_format, gqa_format, quantize_table, to_c_header
from nnlut.fixed._fitq import fit_quantized
from nnlut.fixed._qat import Problem, fit_codes
from nnlut.models import fitted_table

# GQA-LUT's shipped tables (DAC 2024), every INT8 code in range: (max |error|, mean |error|);
# published figures quoted from the project's issue tracker, not recomputed here
GQA = {("gelu", 16, 4): (0.0141, 0.003168), ("exp", 8, 3): (0.0138, 0.003753)}
GQA_RANGE = {"gelu": (-4.0, 4.0), "exp": (-8.0, 0.0)}
# the rounded INT16 tables' own max error may grow over the float table's by at most this
ADDED_LSB = 0.5


def test_piecewise_linear_target_is_recovered_exactly():
    fmt = gqa_format(4)
    rng = np.random.default_rng(3)
    codes = np.arange(-100, 101)
    bp = np.array([-40, 7, 55])
    s, t = rng.integers(-100, 100, 4), rng.integers(-100, 100, 4)
    target = FixedTable(fmt, bp, s, t)
    fx = target.eval_int(codes) * 2.0**-fmt.out_frac
    got = FixedTable(fmt, *fit_codes(Problem(fmt, codes, fx), 4))
    assert np.array_equal(got.eval_int(codes), target.eval_int(codes))
    assert got.bp.tolist() == bp.tolist()


def _brute_cost(fmt, codes, fx, i, j) -> float:
    s = np.arange(-128, 128)[:, None, None]
    t = np.arange(-128, 128)[None, :, None]
    y = (s * codes[None, None, i:j] + (t << fmt.tshift)) * 2.0**-fmt.out_frac
    return float(np.min(np.max(np.abs(y - fx[i:j]), axis=2)))


def test_partition_and_parameters_are_optimal_against_brute_force():
    fmt = gqa_format(3)
    codes = np.arange(-6, 6)
    fx = nnlut.get_function("gelu")(codes / 8.0)
    m, n = len(codes), 3
    cost = {(i, j): _brute_cost(fmt, codes, fx, i, j) for i in range(m) for j in range(i + 1, m + 1)}
    best = min(max(cost[(0, a)], cost[(a, b)], cost[(b, m)]) for a, b in itertools.combinations(range(1, m), 2))
    prob = Problem(fmt, codes, fx)
    got = FixedTable(fmt, *fit_codes(prob, n))
    err = np.max(np.abs(got.eval_int(codes) * 2.0**-fmt.out_frac - fx))
    assert err == pytest.approx(best, rel=2e-4)  # the bisection stops at a relative 1e-4


@pytest.mark.parametrize("func, n, p", list(GQA))
def test_int8_beats_gqa_lut_in_its_format(func, n, p):
    ft = nnlut.fit(func, n, format=f"int8:{p}", domain=GQA_RANGE[func])
    lo, hi = GQA_RANGE[func]
    codes = np.arange(-128, 128)
    codes = codes[(codes / 2**p >= lo) & (codes / 2**p <= hi)]
    err = np.abs(ft(codes / 2.0**p) - nnlut.get_function(func)(codes / 2.0**p))  # through the public call
    gmax, gmean = GQA[(func, n, p)]
    assert err.max() <= gmax and err.mean() <= gmean
    assert err.max() == pytest.approx(ft.meta["errors"]["max_abs"])
    assert ft.entries == n


def _added_lsb(ft) -> float:
    e = ft.meta["errors"]
    lsb = 2.0**-ft.fmt.out_frac
    return e["max_abs_lsb"] - e["float_table_max_abs"] / lsb


@pytest.mark.parametrize("func", [pytest.param("exp", marks=pytest.mark.slow), pytest.param("gelu", marks=pytest.mark.slow),
                                  pytest.param("reciprocal", marks=pytest.mark.slow),
                                  pytest.param("rsqrt", marks=pytest.mark.slow)])
def test_int16_quantization_aware_adds_at_most_half_an_lsb(func):
    table = fitted_table(func, "nnlut", 16, "full")
    fmt = choose_format(table)
    qat = fit_quantized(table, fmt)
    assert qat.fmt == fmt and qat.entries <= 16
    assert _added_lsb(qat) <= ADDED_LSB
    assert qat.meta["errors"]["max_abs"] <= quantize_table(table, fmt).meta["errors"]["max_abs"] + 1e-12


@pytest.mark.skipif(shutil.which("gcc") is None, reason="needs a C compiler")
def test_int8_c_header_is_bit_exact(tmp_path):
    ft = nnlut.fit("gelu", 8, format="int8:5", domain=(-4.0, 4.0))
    assert ft.fmt.tshift == 5
    (tmp_path / "t.h").write_text(to_c_header(ft, "t"))
    (tmp_path / "main.c").write_text(
        '#include <stdio.h>\n#include "t.h"\n'
        "int main(void) { for (long x = -128; x < 128; ++x) printf(\"%d\\n\", t_eval((int32_t)x)); return 0; }\n")
    subprocess.run(["gcc", "-std=c99", "-O2", "main.c", "-o", "main"], cwd=tmp_path, check=True)
    out = subprocess.run(["./main"], cwd=tmp_path, check=True, capture_output=True, text=True).stdout.split()
    assert [int(v) for v in out] == ft.eval_int(np.arange(-128, 128)).tolist()
