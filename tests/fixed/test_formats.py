"""Number formats as data: spec strings, the generalised integer datapath, BF16/FP16 tables."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from nnlut import NNLUTError
from nnlut.fixed import FixedFormat, FixedSpec, FixedTable, FloatFormat, gqa_format, parse_format, to_half
from nnlut.fixed._half import round_to
from nnlut.models import fitted_table


def test_spec_strings_name_formats():
    assert isinstance(parse_format("int16"), FixedSpec) and parse_format("int16").in_bits == 16
    assert parse_format("fp16") == FloatFormat("fp16") and parse_format("BF16") == FloatFormat("bf16")
    f = parse_format("int8:3")
    assert f == gqa_format(3)
    # GQA-LUT's datapath: INT8 in at 2**-3, 8-bit Q.6 slopes and intercepts, unrounded output
    assert (f.in_bits, f.in_frac, f.slope_bits, f.slope_frac, f.icpt_bits, f.t_frac) == (8, 3, 8, 6, 8, 6)
    assert f.pshift == 0 and f.tshift == 3 and f.shift == 0
    assert parse_format(f) is f


@pytest.mark.parametrize("spec", ["int9", "int8:8", "int8:-1", "int16:4", "fp16:2", "", 16, None])
def test_bad_spec_is_one_line(spec):
    with pytest.raises(NNLUTError) as e:
        parse_format(spec)
    assert "\n" not in str(e.value) and "int8:P" in str(e.value)


def golden(fmt: FixedFormat, bp, s, t, x: int) -> int:
    """The datapath in Python integers, from the format's fields alone."""
    i = sum(1 for b in bp if x >= b)
    prod = int(s[i]) * x
    acc_frac = fmt.acc_frac if fmt.acc_frac is not None else fmt.t_frac
    acc = prod // 2 ** (fmt.in_frac + fmt.slope_frac - acc_frac) + int(t[i]) * 2 ** (acc_frac - fmt.t_frac)
    sh = acc_frac - fmt.out_frac
    if sh:
        acc = (acc + (2 ** (sh - 1) if fmt.rounding == "half_up" else 0)) // 2**sh
    return max(-(2 ** (fmt.out_bits - 1)), min(2 ** (fmt.out_bits - 1) - 1, acc))


@pytest.mark.parametrize("fmt", [
    gqa_format(5),
    FixedFormat(in_bits=10, in_frac=4, slope_bits=9, slope_frac=7, icpt_bits=9, icpt_frac=5, acc_frac=8, out_bits=12,
                out_frac=6, rounding="floor"),
    FixedFormat(in_bits=10, in_frac=4, slope_bits=9, slope_frac=7, icpt_bits=9, icpt_frac=5, acc_frac=8, out_bits=8,
                out_frac=6),
])
def test_general_datapath_is_bit_exact(fmt):
    rng = np.random.default_rng(1)
    lo, hi = fmt.codes
    bp = np.sort(rng.choice(np.arange(lo + 1, hi), 5, replace=False))
    s = rng.integers(-(2 ** (fmt.slope_bits - 1)), 2 ** (fmt.slope_bits - 1), 6)
    t = rng.integers(-(2 ** (fmt.icpt_bits - 1)), 2 ** (fmt.icpt_bits - 1), 6)
    ft = FixedTable(fmt, bp, s, t)
    xs = np.arange(lo, hi + 1)
    got = ft.eval_int(xs)
    assert got.tolist() == [golden(fmt, bp, s, t, int(x)) for x in xs]
    assert torch.equal(ft.eval_int(torch.tensor(xs)), torch.tensor(got))
    # real inputs: quantised to the grid, output scaled by 2**-out_frac, torch and numpy alike
    xr = xs / 2.0**fmt.in_frac
    assert np.array_equal(ft(xr), got * 2.0**-fmt.out_frac)
    assert torch.equal(ft(torch.tensor(xr, dtype=torch.float32)), torch.tensor(got * 2.0**-fmt.out_frac, dtype=torch.float32))


def test_format_checks_name_the_field():
    with pytest.raises(NNLUTError, match=r"acc_frac \(3\) must be >= icpt_frac \(6\)"):
        FixedFormat(in_bits=8, in_frac=2, slope_bits=8, slope_frac=6, icpt_bits=8, icpt_frac=6, acc_frac=3, out_frac=3)
    with pytest.raises(NNLUTError, match="rounding 'even' is unknown"):
        FixedFormat(rounding="even")
    with pytest.raises(NNLUTError, match="unknown fixed-point format field"):
        FixedFormat.from_dict({"in_bits": 8, "wat": 1})


def test_bf16_rounding_matches_torch():
    rng = np.random.default_rng(2)
    x = np.concatenate([rng.standard_normal(5000) * 10.0 ** rng.integers(-40, 38, 5000), [0.0, -0.0, 1e-45, 3.4e38]])
    x = x.astype(np.float32).astype(np.float64)  # torch rounds from float32: start exactly there
    ref = torch.tensor(x, dtype=torch.float32).to(torch.bfloat16).double().numpy()
    assert np.array_equal(round_to(x, "bf16"), ref)
    ref16 = torch.tensor(x, dtype=torch.float32).to(torch.float16).double().numpy()
    assert np.array_equal(round_to(x, "fp16"), ref16)


@pytest.mark.parametrize("precision, dtype", [("bf16", torch.bfloat16), ("fp16", torch.float16)])
def test_half_table_is_a_half_precision_mac(precision, dtype):
    t = fitted_table("gelu", "nnlut", 16, "full")
    h = to_half(t, precision)
    x = torch.linspace(-4.5, 4.5, 3001, dtype=torch.float64)
    # an independent reference: torch's own half-precision arithmetic, one rounding per op
    xh = x.to(dtype)
    idx = torch.searchsorted(torch.tensor(h.bp, dtype=dtype), xh, right=True)
    ref = torch.tensor(h.s, dtype=dtype)[idx] * xh + torch.tensor(h.t, dtype=dtype)[idx]
    assert torch.equal(h(x), ref.double())
    assert h == to_half(t, precision) and h != to_half(t, "fp16" if precision == "bf16" else "bf16")
