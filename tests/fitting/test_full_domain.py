"""Full-domain errors: every finite FP16/BF16 input and an FP32 sweep, against float64 references."""

from __future__ import annotations

import math
import struct

import numpy as np
import pytest

import nnlut
from nnlut import NNLUTError
from nnlut.fitting import full_domain_errors
from nnlut.fitting._full import bf16_inputs, fp16_inputs, fp32_inputs


def test_input_sets_are_every_finite_value():
    # independent decoding of the bit patterns with struct, not numpy views
    h = fp16_inputs()
    ref16 = [struct.unpack("<e", struct.pack("<H", b))[0] for b in range(2**16)]
    ref16 = np.array([v for v in ref16 if math.isfinite(v)])
    assert len(h) == 63488 and np.array_equal(np.sort(h), np.sort(ref16))
    b = bf16_inputs()
    refb = [struct.unpack("<f", struct.pack("<I", bits << 16))[0] for bits in range(2**16)]
    refb = np.array([v for v in refb if math.isfinite(v)])
    assert len(b) == 65280 and np.array_equal(np.sort(b), np.sort(refb))
    s = fp32_inputs(1000)
    fi = np.finfo(np.float32)
    pos = s[s > 0]
    assert pos.min() == float(fi.tiny) and pos.max() == float(fi.max)
    assert np.array_equal(np.float32(s).astype(np.float64), s)  # every sweep value is an FP32 value
    assert np.array_equal(-s[s < 0][::-1], pos)  # both signs
    ratios = np.diff(np.log(pos))
    assert ratios.max() < 1.2 * ratios.mean()  # log-spaced


def _reference(table, fn, xs, largest):
    """Max/mean abs and floored relative error by a plain loop over the points, in Python floats."""
    ae, re = [], []
    for x, t in zip(xs.tolist(), table(xs).tolist(), strict=True):
        f = fn(x)
        if not math.isfinite(f) or abs(f) > largest:
            continue
        ae.append(abs(t - f))
        re.append(abs(t - f) / max(abs(f), 2.0**-14))
    return max(ae), sum(ae) / len(ae), max(re), sum(re) / len(re), len(ae)


@pytest.mark.parametrize("name,fn", [("gelu", lambda x: 0.5 * x * (1 + math.erf(x / math.sqrt(2)))),
                                     ("reciprocal", lambda x: 1.0 / x if x != 0 else math.inf)])
def test_errors_match_an_independent_loop_on_fp16(name, fn):
    table = nnlut.fit(name, 8, method="linear")
    e = table.meta["errors"]["full_domain"]
    ref = _reference(table, fn, fp16_inputs(), 65504.0)
    got = e["fp16"]
    assert got["points"] == ref[4]
    assert got["max_abs"] == pytest.approx(ref[0], rel=1e-9)
    assert got["mean_abs"] == pytest.approx(ref[1], rel=1e-9)
    assert got["max_rel"] == pytest.approx(ref[2], rel=1e-9)
    assert got["mean_rel"] == pytest.approx(ref[3], rel=1e-9)
    assert got["nonfinite_outputs"] == 0


def test_tails_keep_far_inputs_at_the_in_domain_level():
    # GELU's asymptote tails: the worst error over every FP16 and FP32 input is the in-domain one
    t = nnlut.fit("gelu", 8, method="linear")
    inside = t.meta["errors"]["max_abs"]
    full = t.meta["errors"]["full_domain"]
    for fmt in ("fp16", "bf16", "fp32"):
        assert full[fmt]["max_abs"] == pytest.approx(inside, rel=1e-3)
        assert full[fmt]["excluded"] == 0


def test_a_table_without_tails_fails_far_away():
    # the same function fitted on (-5, 5) with inputs clamped there: GELU(60000) is far off
    spec = nnlut.FunctionSpec("gelu_clamped", nnlut.get_function("gelu").fn, (-5.0, 5.0))
    t = nnlut.fit(spec, 8, method="linear")
    full = t.meta["errors"]["full_domain"]
    assert full["fp16"]["max_abs"] > 6e4 and full["fp16"]["argmax_abs"] == 65504.0
    assert full["fp32"]["max_abs"] > 1e38


def test_range_reduction_holds_the_relative_error_everywhere():
    t = nnlut.fit("reciprocal", 8, range_reduction=True)
    inside = t.meta["errors"]["max_rel"]
    full = t.meta["errors"]["full_domain"]
    for fmt in ("fp16", "bf16", "fp32"):
        assert full[fmt]["max_rel"] <= inside * 1.001
    # 1/x overflows FP16 below 2^-16: those subnormal inputs (and +-0) are excluded, not counted
    tiny = fp16_inputs()
    assert full["fp16"]["excluded"] == int(np.sum(~(np.abs(1.0 / np.where(tiny == 0, 1e-300, tiny)) <= 65504.0)))


def test_exp_covers_its_softmax_inputs_and_rsqrt_leaves_out_negatives():
    e = nnlut.fit("exp", 8, method="linear").meta["errors"]["full_domain"]
    assert e["inputs"] == ["-inf", 0.0]
    assert e["fp16"]["points"] + e["fp16"]["excluded"] == 31743 + 2  # the negative values, -0 and +0
    r = nnlut.fit("rsqrt", 8, range_reduction=True).meta["errors"]["full_domain"]
    assert r["fp16"]["excluded"] == 31743 + 2  # negatives (NaN) and +-0 (infinite)
    assert r["fp16"]["max_rel"] < 0.01


def test_fixed_and_half_tables(tmp_path):
    ft = nnlut.fit("gelu", 8, format="int16", method="linear")
    e = ft.meta["errors"]["full_domain"]
    # the integer input saturates at +-16: beyond it GELU(x) = x is lost, as the exact check shows
    x = fp16_inputs()
    ref = np.abs(ft(x) - nnlut.get_function("gelu")(x))
    assert e["fp16"]["max_abs"] == pytest.approx(float(ref.max()), rel=1e-12)
    ht = nnlut.fit("rsqrt", 8, format="fp16", range_reduction=True)
    assert ht.meta["errors"]["full_domain"]["fp16"]["max_rel"] < 0.05
    ht.save(str(tmp_path / "h.json"))  # strict JSON: nothing non-finite in the errors
    assert nnlut.load(str(tmp_path / "h.json")).meta["errors"]["full_domain"]["fp16"]["points"] > 0


def test_non_finite_outputs_are_counted_not_hidden():
    def bad(x):
        return np.where(np.asarray(x) > 100, np.inf, 0.0)

    e = full_domain_errors(bad, "gelu", formats=("fp16",))
    assert e["fp16"]["nonfinite_outputs"] == int(np.sum(fp16_inputs() > 100))


def test_bad_arguments_are_one_line_errors():
    with pytest.raises(NNLUTError, match="format 'fp8' is unknown"):
        full_domain_errors(nnlut.fit("tanh", 4, method="linear"), formats=("fp8",))
    with pytest.raises(NNLUTError, match="names none"):
        full_domain_errors(nnlut.Table([0.0], [0.0, 1.0], [0.0, 0.0]))


@pytest.mark.parametrize("fmt", [None, "int16", "int8", "fp16"])
def test_infinite_and_nan_inputs_give_the_function_limits(fmt):
    kw = {"method": "linear"} if fmt != "int8" else {}
    for name, at_inf in (("tanh", (-1.0, 1.0)), ("gelu", (0.0, math.inf))):
        t = nnlut.fit(name, 4, format=fmt, **kw)
        sp = t.meta["errors"]["full_domain"]["specials"]
        assert sp["match"], (name, fmt, sp)
        got = t(np.array([-np.inf, np.inf, np.nan]))
        assert got[0] == at_inf[0] and got[1] == at_inf[1] and np.isnan(got[2])
