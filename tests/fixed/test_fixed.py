"""Fixed-point and FP16 tables: bit-exact integer evaluation, bounded extra error, exports."""

from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest
import torch

from nnlut import NNLUTError
from nnlut.fixed import FixedFormat, FixedTable, choose_format, quantize_table, to_c_header, to_fp16, to_memh
from nnlut.models import fitted_table

# rounding the breakpoints, slopes and intercepts costs a few output LSBs at most (the output
# rounding itself is half an LSB; exp's 1/1024 input grid adds up to ~3 LSB where it is steep)
EXTRA_LSB = {"gelu": 1.0, "exp": 4.0, "reciprocal": 2.0, "rsqrt": 2.0}


@pytest.fixture(scope="module")
def fixed():
    """Default format: intercepts two guard bits below the output LSB."""
    return {f: quantize_table(fitted_table(f, "nnlut", 16, "full")) for f in EXTRA_LSB}


@pytest.fixture(scope="module")
def fixed_exact():
    """Intercepts at the product's precision: an exact INT32 multiply-add."""
    out = {}
    for f in EXTRA_LSB:
        t = fitted_table(f, "nnlut", 16, "full")
        out[f] = quantize_table(t, choose_format(t, icpt_guard=None))
    return out


def golden(ft: FixedTable, x: int) -> int:
    i = sum(1 for b in ft.bp if x >= b)
    f = ft.fmt
    prod = int(ft.s[i]) * x
    acc = prod // 2 ** (f.in_frac + f.slope_frac - f.t_frac) + int(ft.t[i])  # floor division: a flooring shift
    sh = ft.fmt.shift
    if sh:
        acc = (acc + (1 << (sh - 1))) >> sh
    return max(-(2 ** (ft.fmt.out_bits - 1)), min(2 ** (ft.fmt.out_bits - 1) - 1, acc))


@pytest.mark.parametrize("exact", [False, True])
@pytest.mark.parametrize("name", list(EXTRA_LSB))
def test_integer_core_is_bit_exact(fixed, fixed_exact, name, exact):
    ft = (fixed_exact if exact else fixed)[name]
    assert (ft.fmt.pshift == 0) == exact
    xs = np.concatenate([np.random.default_rng(0).integers(-32768, 32768, 3000), ft.bp, ft.bp - 1, [-32768, 32767, 0]])
    got = ft.eval_int(xs)
    assert [int(v) for v in got] == [golden(ft, int(x)) for x in xs]
    assert torch.equal(ft.eval_int(torch.tensor(xs)), torch.tensor(got))


@pytest.mark.parametrize("exact", [False, True])
@pytest.mark.parametrize("name", list(EXTRA_LSB))
def test_extra_error_over_float_is_a_few_lsb(fixed, fixed_exact, name, exact):
    ft = (fixed_exact if exact else fixed)[name]
    e = ft.meta["errors"]
    assert e["extra_over_float_max_lsb"] <= EXTRA_LSB[name]
    assert e["input_codes"] > 1000
    f = ft.fmt
    assert f.in_bits == 16 and f.slope_bits == 16
    if exact:
        assert f.icpt_bits == 32 and f.pshift == 0
    else:  # output-precision intercepts fit in 20 bits, and cost at most a quarter LSB more
        assert f.shift == 2 and f.icpt_bits <= 20
        assert e["extra_over_float_max_lsb"] <= fixed_exact[name].meta["errors"]["extra_over_float_max_lsb"] + 0.375


def test_intercept_width_is_checked():
    t = fitted_table("reciprocal", "nnlut", 16, "full")
    with pytest.raises(NNLUTError, match="need 19 bits with 2 guard bits; icpt_bits is 16"):
        choose_format(t, icpt_bits=16)
    with pytest.raises(NNLUTError, match="icpt_guard must be"):
        choose_format(t, icpt_guard=-1)
    with pytest.raises(NNLUTError, match="icpt_frac \\(30\\) must be <="):
        FixedFormat(in_frac=8, slope_frac=12, icpt_frac=30)


def test_fixed_table_on_real_inputs_with_scaling(fixed):
    ft = fixed["rsqrt"]
    x = np.geomspace(1e-6, 1e6, 2001)
    rel = np.abs(ft(x) * np.sqrt(x) - 1)
    assert rel.max() < 5e-4  # table 3.6e-4 plus one output LSB (2**-15) relative to >= 0.5
    assert np.isnan(ft(np.array([-1.0])))[0] and ft(np.array([0.0]))[0] == np.inf


def test_bad_formats():
    with pytest.raises(NNLUTError, match="must be >= out_frac"):
        FixedFormat(in_frac=2, slope_frac=2, out_frac=10)
    with pytest.raises(NNLUTError, match="in \\[2, 32\\]"):
        FixedFormat(in_bits=64)
    with pytest.raises(NNLUTError, match="does not fit"):
        FixedTable(FixedFormat(), np.array([0]), np.array([1, 40000]), np.array([0, 0]))


@pytest.mark.skipif(shutil.which("gcc") is None, reason="needs a C compiler")
@pytest.mark.parametrize("name", ["gelu", "exp"])
def test_c_header_compiles_and_matches(tmp_path, fixed, name):
    ft = fixed[name]
    assert ft.fmt.pshift > 0  # exercises the arithmetic shift of negative products
    (tmp_path / "gelu.h").write_text(to_c_header(ft, "gelu"))
    (tmp_path / "main.c").write_text(
        '#include <stdio.h>\n#include "gelu.h"\n'
        "int main(void) { for (long x = -32768; x < 32768; x += 7) printf(\"%d\\n\", gelu_eval((int32_t)x)); return 0; }\n")
    subprocess.run(["gcc", "-std=c99", "-O2", "main.c", "-o", "main"], cwd=tmp_path, check=True)
    out = subprocess.run(["./main"], cwd=tmp_path, check=True, capture_output=True, text=True).stdout.split()
    xs = np.arange(-32768, 32768, 7)
    assert [int(v) for v in out] == ft.eval_int(xs).tolist()


def test_memh_round_trip(fixed):
    ft = fixed["exp"]
    files = to_memh(ft)

    def back(text: str, bits: int) -> list[int]:
        vals = [int(w, 16) for w in text.split()]
        return [v - (1 << bits) if v >= 1 << (bits - 1) else v for v in vals]

    assert back(files["breakpoints.memh"], 16) == ft.bp.tolist()
    assert back(files["slopes.memh"], 16) == ft.s.tolist()
    assert back(files["intercepts.memh"], ft.fmt.icpt_bits) == ft.t.tolist()
    assert back(files["pshift.memh"], 8) == [ft.fmt.pshift] and back(files["shift.memh"], 8) == [ft.fmt.shift]


def test_fp16_table():
    t = fitted_table("gelu", "nnlut", 16, "full")
    h = to_fp16(t)
    x = np.linspace(-8, 8, 20001)
    ref = t(x)
    # FP16 parameters and arithmetic: error ~ a few FP16 ulps of |y| <= 8 (ulp 2**-8 there)
    assert np.max(np.abs(h(x) - ref)) < 0.02
    for a in (h.bp, h.s, h.t):  # every parameter is exact in FP16
        assert np.array_equal(a, a.astype(np.float16).astype(np.float64))
    y = h(torch.tensor([-1e6, 1e6, float("nan")]))
    assert float(y[0]) == 0.0 and torch.isnan(y[2])


def test_models_run_with_fixed_point_tables():
    from nnlut import ApproxConfig, approximate_, restore_
    from nnlut.fixed import HalfTable
    from nnlut.ops import approx_modules
    from tests.models.conftest import batch, tiny_hf

    m = tiny_hf("bert")
    b = batch()
    with torch.no_grad():
        ref = m(**b).last_hidden_state
    kinds = {"int16": FixedTable, "fp16": HalfTable, "bf16": HalfTable, "int8": FixedTable}
    for nf, kind in kinds.items():
        report = approximate_(m, ApproxConfig(number_format=nf))
        assert report.replaced
        tables = [t for mod in approx_modules(m).values() for t in mod.kernel.tables.values()]
        assert tables and all(isinstance(t, kind) and t.meta["number_format"] == nf for t in tables)
        if nf == "int8":  # GQA-LUT's datapath, one power-of-two input scale per table
            assert all(t.fmt.in_bits == 8 and t.fmt.slope_bits == 8 and t.fmt.tshift == t.fmt.in_frac for t in tables)
        with torch.no_grad():
            y = m(**b).last_hidden_state
        restore_(m)
        valid = b["attention_mask"].bool()
        assert float(torch.nn.functional.cosine_similarity(y[valid], ref[valid], dim=-1).min()) > 0.999, nf
    with pytest.raises(NNLUTError, match="unknown number format 'int9'"):
        ApproxConfig(number_format="int9")


def test_fused_fixed_kernel_matches_reference_path(fixed, fixed_exact):
    # float32 CPU tensors take one fused pass; float64 tensors take the torch reference path,
    # whose result rounded to float32 must be the same, bit for bit
    from nnlut.kernels import _cpu

    if not _cpu.available():
        pytest.skip(f"fused kernels unavailable: {_cpu.unavailable_reason()}")
    g = torch.Generator().manual_seed(0)
    sp = torch.tensor([np.nan, np.inf, -np.inf, 0.0, -0.0, 1e-45, 1e-40, 1.2e-38, 3.4e38, -3.4e38, 1.0, -1.0,
                       0.5 / 256, 1.5 / 256, 2.5 / 256, -0.5 / 256, 127.998, 128.0, -128.0, -129.0])
    x = torch.cat([sp, torch.randn(40_000, generator=g) * 6, torch.randn(20_000, generator=g) * 200,
                   torch.exp(torch.randn(20_000, generator=g) * 15),
                   torch.cat([(torch.arange(-300, 300) + 0.5) * 2.0**-k for k in range(6, 16)])])  # half-way codes
    tables = [*fixed.values(), *fixed_exact.values(),
              quantize_table(fitted_table("rsqrt", "nnlut", 16, "paper")),
              quantize_table(fitted_table("silu", "nnlut", 16, "full"))]
    # 20-bit inputs: too wide for the per-code output table, so the kernel searches and multiplies
    for f in ("gelu", "rsqrt", "exp"):
        t = fitted_table(f, "nnlut", 16, "full")
        tables.append(quantize_table(t, choose_format(t, in_bits=20), refit=False))
    assert sum(ft.fmt.in_bits > 18 for ft in tables) == 3
    for ft in tables:
        y = ft(x)
        ref = ft(x.double()).float()
        assert y.dtype == torch.float32
        same = torch.equal(y.isnan(), ref.isnan()) and torch.equal(y.nan_to_num(0.0), ref.nan_to_num(0.0))
        assert same, ft.function


def test_used_fixed_table_copies_and_pickles(fixed):
    # evaluating caches device tensors and packed kernel parameters in meta; copies and
    # pickles leave those out and give the same values
    import copy
    import pickle

    ft = fixed["gelu"]
    x = torch.randn(1000)
    y = ft(x)
    for other in (copy.deepcopy(ft), pickle.loads(pickle.dumps(ft))):
        assert other == ft and not any(k.startswith("_") for k in other.meta)
        assert torch.equal(other(x), y)


def test_fixed_table_equality(fixed):
    a, b = fixed["gelu"], fixed["exp"]
    same = FixedTable(a.fmt, a.bp.copy(), a.s.copy(), a.t.copy(), a.function, a.scaling, a.limits)
    assert a == same and a != b
    moved = FixedTable(a.fmt, a.bp, a.s, a.t + 1, a.function, a.scaling, a.limits)
    assert moved != a
    with pytest.raises(TypeError):
        hash(a)


def test_breakpoints_merged_on_the_input_grid_keep_their_segments():
    # a linear 4-entry exp table on (-256, 0]: its breakpoints -192, -128, -64 all lie below the
    # INT16 input grid, so they merge into one; each side keeps the float segment it had
    import nnlut

    t = nnlut.fit("exp", 4, method="linear")
    ft = quantize_table(t, choose_format(t))
    assert len(ft.bp) == 1 and len(ft.s) == 2 and "merged" in ft.meta["notes"][0]
    x = np.linspace(-8.0, 0.0, 801)
    lsb = 2.0 ** -ft.fmt.out_frac
    assert np.max(np.abs(ft(x) - t(x))) <= 4 * lsb  # the float table's last segment, rounded
    # two breakpoints closer than one input LSB: segments 0, 2 and 3 of the float table remain
    src = nnlut.Table(function="gelu", domain=(-8.0, 8.0), breakpoints=np.array([-1.0, 0.5, 0.5 + 1e-9]),
                      slopes=np.array([0.0, 0.337, 0.337, 1.0205]), intercepts=np.array([0.0, 0.178, 0.178, -0.164]))
    fs = quantize_table(src, choose_format(src), refit=False)
    assert len(fs.bp) == 2 and len(fs.s) == 3
    x = np.array([-3.0, 0.0, 0.25, 2.0, 7.0])
    assert np.max(np.abs(fs(x) - src(x))) <= 4 * 2.0 ** -fs.fmt.out_frac


def test_fixed_table_arrays_are_read_only_copies():
    bp, s, t = np.array([-4, 4]), np.array([0, 8, 16]), np.array([1, 2, 3])
    ft = FixedTable(FixedFormat(), bp, s, t)
    with pytest.raises(ValueError, match="read-only"):
        ft.s[0] = 5
    s[0] = 7  # the caller's array stays the caller's
    assert ft.s[0] == 0 and s.flags.writeable
