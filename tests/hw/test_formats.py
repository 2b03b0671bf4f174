"""The INT8 and FP16-parameter NN-LUT units: golden models against independent arithmetic,
RTL simulation bit-exact on every INT8 code and on FP16 edge cases (infinities, subnormals,
signed zeros, overflow), and gate-level simulation. Skipped without the tools where they run."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from nnlut import NNLUTError
from nnlut.fixed import HalfTable, to_half
from nnlut.hw import _rtl_fp16 as f16
from nnlut.hw import _rtl_int8 as i8
from nnlut.hw import _testbench as tbm
from nnlut.hw import _tools as tools
from nnlut.hw import missing_tools, paper_tables, run_flow
from nnlut.hw._units import stream_lines

needs_tools = pytest.mark.skipif(bool(missing_tools()), reason=f"hardware tools missing: {', '.join(missing_tools())}")


def _simulate(tmp_path: Path, verilog: str, top: str, lines: list[str], n_vec: int, *, in_bits: int, out_bits: int,
              latency: int) -> tuple[int, int]:
    tbm.write_lines(tmp_path / "v.hex", lines)
    (tmp_path / "u.v").write_text(verilog)
    (tmp_path / "tb.v").write_text(tbm.stream_testbench(top, len(lines), n_vec, in_port="x_in", in_bits=in_bits,
                                                        out_port="y_out", out_bits=out_bits, latency=latency,
                                                        has_cfg=True, hexfile="v.hex"))
    p, f, _ = tools.simulate([tmp_path / "u.v", tmp_path / "tb.v"], "tb", tmp_path, top)
    return p, f


# ---------------------------------------------------------------------------- INT8
def test_int8_golden_is_gqa_luts_real_arithmetic():
    # independent of eval_int: s*2^-6 * x*2^-P + t*2^-6, exact in float64, on every code
    for ft in i8.int8_tables(16).values():
        p = ft.fmt.in_frac
        xs = np.arange(-128, 128)
        idx = np.array([sum(int(x) >= int(b) for b in ft.bp) for x in xs])  # the unit's compare: x >= bp[j]
        real = ft.s[idx] * 2.0**-6 * (xs * 2.0**-p) + ft.t[idx] * 2.0**-6
        assert np.array_equal(i8.golden(ft, xs) * 2.0 ** -(p + 6), real)


def test_int8_vectors_hold_every_code():
    ft = i8.int8_tables(16)["gelu"]
    xs = i8.vectors(ft, 300, np.random.default_rng(0))
    assert len(xs) == 300 and set(range(-128, 128)) <= set(xs.tolist())


def test_int8_unit_rejects_other_formats():
    with pytest.raises(NNLUTError, match="GQA-LUT's datapath"):
        i8.check_int8(paper_tables(16)["gelu"])  # the INT16 unit's table
    with pytest.raises(NNLUTError, match="1 or 2 pipeline stages"):
        i8.int8_rom_verilog(i8.int8_tables(16)["gelu"], "x", stages=3)


@needs_tools
def test_int8_unit_every_code_of_every_table_rtl(tmp_path):
    tables = i8.int8_tables(16)
    assert len({ft.fmt.in_frac for ft in tables.values()}) > 1  # tables at different input scales: the shift register works
    xs = np.arange(-128, 128)
    lines = [ln for ft in tables.values() for ln in i8.program(ft) + stream_lines(xs, i8.golden(ft, xs))]
    p, f = _simulate(tmp_path, i8.int8_unit_verilog(16), "nnlut_int8_unit", lines, 256 * len(tables), in_bits=8,
                     out_bits=i8.OUT_BITS, latency=2)
    assert (p, f) == (256 * len(tables), 0)


# ---------------------------------------------------------------------------- FP16
def _round_half(q: Fraction) -> float:
    """Exact rational -> nearest FP16 (ties to even), by brute force over the FP16 grid."""
    if q == 0:
        return 0.0
    sign, q = (-1.0 if q < 0 else 1.0), abs(q)
    e = max(q.numerator.bit_length() - q.denominator.bit_length() - 1, -14)
    while Fraction(2) ** (e + 1) <= q:
        e += 1
    while e > -14 and Fraction(2) ** e > q:
        e -= 1
    ulp = Fraction(2) ** (e - 10)
    n, r = divmod(q, ulp)
    n = int(n) + (1 if r > ulp / 2 or (r == ulp / 2 and int(n) % 2) else 0)
    v = float(n * ulp)
    return sign * (np.inf if v > 65504 else v)


def test_fp16_golden_is_correctly_rounded_multiply_then_add():
    # HalfTable's core against exact rational arithmetic with one rounding after each operation
    ht = f16.fp16_tables(16)["gelu"]
    words = f16.vectors(ht, 400, np.random.default_rng(1))
    words = words[~np.isnan(words.astype(np.uint16).view(np.float16))]
    got = f16.golden(ht, words).astype(np.uint16).view(np.float16).astype(np.float64)
    xs = np.clip(words.astype(np.uint16).view(np.float16).astype(np.float64), -65504, 65504)
    idx = np.searchsorted(ht.bp, xs, side="right")
    for x, i, y in zip(xs, idx, got, strict=True):
        p = _round_half(Fraction(float(ht.s[i])) * Fraction(float(x)))
        ref = p if np.isinf(p) else _round_half(Fraction(p) + Fraction(float(ht.t[i])))
        assert y == ref or (y == 0 and ref == 0), (x, i)


def test_fp16_order_key_orders_like_the_values():
    words = np.arange(1 << 16)
    vals = words.astype(np.uint16).view(np.float16).astype(np.float64)
    ok = ~np.isnan(vals)
    v, k = vals[ok], f16.order_key(words[ok])
    order = np.argsort(k, kind="stable")
    assert np.all(np.diff(v[order]) >= 0)
    assert f16.order_key(np.array([0x8000]))[0] == f16.order_key(np.array([0x0000]))[0]  # -0 == +0
    assert len(np.unique(k)) == len(np.unique(v))


def _adversarial() -> HalfTable:
    """Parameters that reach every path: overflow to infinity, subnormal and underflowing
    products, exact cancellation, signed zeros, the largest finite values."""
    src = f16.fp16_tables(16)["gelu"].source
    bp = np.array([-1000.0, -1.0, -2.0**-20, 0.0, 2.0**-14, 1.0, 300.0])
    s = np.array([-0.0, 65504.0, -30.0, 2.0**-24, -1.5, 2.0**-10, 1.0, -250.0])
    t = np.array([-0.0, 0.0, 65504.0, -0.0, -0.0, -0.0, -1.0, 3.0])
    return HalfTable(bp, s, t, source=src)


@needs_tools
def test_fp16_unit_bit_exact_on_edge_cases_rtl(tmp_path):
    rng = np.random.default_rng(2)
    tables = [_adversarial(), f16.fp16_tables(8)["gelu"], f16.fp16_tables(8)["rsqrt"]]
    lines, n, outs = [], 0, []
    for ht in tables:
        xs = f16.vectors(ht, 1500, rng)
        y = f16.golden(ht, xs)
        outs.append(y)
        lines += f16.program(ht) + stream_lines(xs, y) + [tbm.stream_command(0)] * 4
        n += len(xs)
    y = np.concatenate(outs)
    # the vectors reach infinities, subnormals, both zeros and the NaN output
    assert {0x7C00, 0xFC00, 0x8000, 0x0000, f16.QNAN} <= set(y.tolist())
    assert np.any(((y & 0x7C00) == 0) & ((y & 0x3FF) != 0))
    assert _simulate(tmp_path, f16.fp16_unit_verilog(8), "nnlut_fp16_unit", lines, n, in_bits=16, out_bits=16,
                     latency=3) == (n, 0)


def test_fp16_unit_rejects_bad_tables():
    ht = f16.fp16_tables(16)["gelu"]
    with pytest.raises(NNLUTError, match="fp16 HalfTable"):
        f16.check_fp16(to_half(ht.source, "bf16"))
    with pytest.raises(NNLUTError, match="2 to 64 entries"):
        f16.fp16_unit_verilog(1)


# ---------------------------------------------------------------------------- gate level
@needs_tools
@pytest.mark.hw
@pytest.mark.slow  # three units synthesized, simulated at gate level
def test_new_units_gate_level(tmp_path):
    rep = run_flow(str(tmp_path), vectors=1100, gate_level=True, real_inputs=False, combinational=False,
                   only=("nnlut_int8_unit", "nnlut_fp16_unit", "nnlut_rom_gelu_1c"))
    by = {u["name"]: u for u in rep["units"]}
    assert set(by) == {"nnlut_int8_unit", "nnlut_fp16_unit", "nnlut_rom_gelu_1c"}
    for u in by.values():
        assert u["sim_mismatches"] == 0 and u["gate_sim_mismatches"] == 0 and u["gate_sim_vectors"] >= 1100
        assert u["lint_warnings"] == []
    assert by["nnlut_int8_unit"]["sim_vectors"] >= 4 * 256  # every code of each of the four tables
    assert [by[n]["latency_cycles"] for n in ("nnlut_rom_gelu_1c", "nnlut_int8_unit", "nnlut_fp16_unit")] == [1, 2, 3]


@needs_tools
def test_unknown_unit_name_is_one_clear_error(tmp_path):
    with pytest.raises(NNLUTError, match=r"unknown hardware unit\(s\) nnlut_int4_unit; allowed: .*nnlut_int8_unit"):
        run_flow(str(tmp_path), only=("nnlut_int8_unit", "nnlut_int4_unit"), gate_level=False)
