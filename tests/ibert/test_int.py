"""I-BERT's integer kernels: bit-exact against a pure-Python golden model, and close to the
float functions they approximate."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
import torch

from nnlut import NNLUTError
from nnlut.ibert import (
    IBertGELU,
    IBertLayerNorm,
    IBertSoftmax,
    i_gelu,
    int_gelu,
    int_gelu_factors,
    int_layernorm,
    int_softmax,
    isqrt,
    quantize,
)
from nnlut.ibert._int import exp_requant_constants


# ---------------------------------------------------------------- golden model (Python ints)
def golden_gelu(q: int, s: float) -> tuple[int, float]:
    a, b, c = -0.2888, -1.769, 1.0 / -0.2888
    se = s / 1.4142
    b_int, c_int = math.floor(b * (1 / se)), math.floor(c * (1 / se**2))  # I-BERT's c / tensor
    sign = (q > 0) - (q < 0)
    y = sign * ((min(abs(q), -b_int) + b_int) ** 2 + c_int)
    sig = se**2 * a
    y //= 2**14
    sig *= 2**14
    return q * (y + int(1.0 // sig)), s * sig / 2


def golden_softmax(row: list[int], s: float, exp_bits: int = 16, out_bits: int = 8) -> list[int]:
    b, c = 0.96963238 / 0.35815147, 1.0 / 0.35815147
    m = max(row)
    x0 = math.floor(-0.6931 * (1 / s))
    b_int, c_int = math.floor(b * (1 / s)), math.floor(c * (1 / s**2))
    mult, k = exp_requant_constants(s, exp_bits)  # checked against I-BERT's code in test_reference
    es = []
    for v in row:
        v = max(v - m, 30 * x0)
        z = v // x0
        r = v - x0 * z
        e_full = max(r * (r + b_int) + c_int, 0) * 2 ** (30 - z)  # i-exp's integer output
        es.append(min(max((e_full * mult + 2 ** (k - 1)) >> k, 0), 2 ** (exp_bits - 1) - 1))
    total = sum(es)
    factor = 2**32 // total
    return [(e * factor) // 2 ** (32 - out_bits) for e in es]


def golden_layernorm(row: list[int]) -> list[int]:
    n = len(row)
    mean = round(sum(row) / n)
    y = [v - mean for v in row]
    shift = 0
    while sum((v >> shift) ** 2 for v in y) >= 2**32:
        shift += 1
    var = sum((v >> shift) ** 2 for v in y)
    std = max(math.isqrt(var) * 2**shift, 1)
    factor = 2**31 // std
    return [(v * factor) // 2 for v in y]


# ---------------------------------------------------------------- tests
def test_isqrt_is_floor_sqrt():
    rng = random.Random(0)
    vals = [0, 1, 2, 3, 4, 15, 16, 17, 2**31 - 1, 2**32, 2**52 + 1, 2**62 - 1]
    vals += [k * k for k in (3, 1000, 2**20 + 7, 2**30 + 3)] + [k * k - 1 for k in (3, 1000, 2**30 + 3)]
    vals += [rng.randrange(0, 2**62) for _ in range(2000)]
    got = isqrt(torch.tensor(vals, dtype=torch.int64)).tolist()
    assert got == [math.isqrt(v) for v in vals]
    with pytest.raises(ValueError):
        isqrt(torch.tensor([-1]))


@pytest.mark.parametrize("scale", [3e-4, 1e-3, 2.0**-10])
def test_int_gelu_bit_exact(scale):
    rng = np.random.default_rng(0)
    q = np.concatenate([rng.integers(-32767, 32768, 3000), [0, 1, -1, 32767, -32767]])
    got, gs = int_gelu(torch.tensor(q), scale)
    for qi, gi in zip(q.tolist(), got.tolist(), strict=False):
        want, ws = golden_gelu(qi, scale)
        assert gi == want
    assert gs == pytest.approx(golden_gelu(1, scale)[1], rel=0, abs=0)


def test_int_gelu_at_int32_accumulator_scales_is_exact():
    # s = 8 / 2**31: the output q * (erf + shift) needs up to 77 bits; the factors are exact
    s = 8 / 2**31
    rng = np.random.default_rng(3)
    q = np.concatenate([rng.integers(-(2**31) + 1, 2**31, 2000), [0, 1, -1, 2**31 - 1, -(2**31) + 1]])
    qt, f, so = int_gelu_factors(torch.tensor(q), s)
    for qi, fi in zip(q.tolist(), f.tolist(), strict=True):
        assert qi * fi == golden_gelu(qi, s)[0]
    assert so == golden_gelu(1, s)[1]
    with pytest.raises(NNLUTError, match="needs 7[0-9] bits.*int_gelu_factors"):
        int_gelu(torch.tensor(q), s)
    small = torch.tensor([-(2**14), 5, 2**14])  # the product fits int64 here
    assert int_gelu(small, s)[0].tolist() == [golden_gelu(v, s)[0] for v in small.tolist()]
    for bad in (0.0, -1.0, math.nan, 1e-12):
        with pytest.raises(NNLUTError, match="i-GELU input scale"):
            int_gelu_factors(small, bad)


def test_int_softmax_refuses_scales_beyond_int64():
    q = torch.tensor([[0, -5, -100]])
    assert int_softmax(q, 1e-4)[0].sum() > 0
    for bad in (1e-5, 1e-9):
        with pytest.raises(NNLUTError, match="i-exp input scale .* is too fine"):
            int_softmax(q, bad)
    with pytest.raises(NNLUTError, match="positive finite"):
        int_softmax(q, 0.0)


def test_int_softmax_bit_exact():
    rng = np.random.default_rng(1)
    s = 2.0**-12
    rows = rng.integers(-40000, 20000, (20, 17))
    rows[3, 5:] = -(2**31)  # masked entries, saturated
    got, out_scale = int_softmax(torch.tensor(rows), s)
    assert out_scale == 2.0**-8
    for r, g in zip(rows.tolist(), got.tolist(), strict=False):
        assert g == golden_softmax(r, s)


def test_int_layernorm_bit_exact_without_affine():
    rng = np.random.default_rng(2)
    rows = rng.integers(-(2**21), 2**21, (6, 96))
    rows[2] = 12345  # zero variance
    got, _ = int_layernorm(torch.tensor(rows), 1.0, None, None)
    for r, g in zip(rows.tolist(), got.tolist(), strict=False):
        assert g == golden_layernorm(r)


@torch.no_grad()
def test_ibert_ops_approximate_their_functions():
    x = torch.linspace(-6, 6, 20001)
    g = IBertGELU()(x)
    assert float((g.double() - torch.from_numpy(i_gelu(x.double().numpy()))).abs().max()) < 2e-3  # quantisation only
    assert float((g - torch.nn.functional.gelu(x)).abs().max()) < 0.025  # i-GELU's own error (0.018 on [-4, 4])
    torch.manual_seed(0)
    z = torch.randn(16, 64) * 3
    p = IBertSoftmax()(z)
    assert float((p - torch.softmax(z, -1)).abs().max()) < 0.01  # 8-bit output + i-exp error
    ln = torch.nn.LayerNorm(64)
    h = torch.randn(8, 64) * 4
    # floor(2**31 / std) keeps only ~9 significant bits when a 22-bit input gives std ~ 2**22:
    # I-BERT's LayerNorm output carries a scale error of up to ~0.3%
    y = IBertLayerNorm()(h, (64,), ln.weight, ln.bias, ln.eps)
    assert float(((y - ln(h)).abs() / ln(h).abs().clamp(min=0.1)).max()) < 5e-3


def test_ibert_softmax_masks():
    z = torch.randn(3, 10)
    z[:, 7:] = torch.finfo(torch.float32).min
    z[1, 1:] = -math.inf
    p = IBertSoftmax()(z)
    assert torch.all(p[:, 7:] == 0) and torch.all(p[1, 1:] == 0) and not torch.isnan(p).any()


def test_quantize_saturates_and_rounds():
    # I-BERT's SymmetricQuantFunction clips to [-127, 126] at 8 bits
    q, s = quantize(torch.tensor([-2.0, 0.2, 1.0, 1.265, math.inf, -math.inf, math.nan]), 8, scale=0.01)
    assert q.tolist() == [-127, 20, 100, 126, 126, -127, 0] and s == 0.01
    q, s = quantize(torch.tensor([0.0, 0.0]), 8)
    assert q.tolist() == [0, 0] and s == 1e-8 / 127
