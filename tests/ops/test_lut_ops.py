"""LUT ops against PyTorch: accuracy within named tolerances, masks, dtypes, edge cases."""

from __future__ import annotations

import math

import pytest
import torch

from nnlut.models import fitted_table
from nnlut.ops import lut_activation, lut_layernorm, lut_rmsnorm, lut_softmax

# 16-entry tables: exp has max |error| ~1.07e-3 on [-256, 0]; a probability can move by about
# (table error) / (row sum) plus its share of the summed errors: 0.02 bounds rows of 128.
SOFTMAX_ATOL = 0.02
# GELU/SiLU tables: max |error| 2.1e-3 / 3.7e-3 on their domains, exact asymptotes beyond
ACT_ATOL = {"gelu": 2.2e-3, "silu": 3.7e-3}
# rsqrt with full range reduction: relative error 3.6e-4 -> LayerNorm output relative error
NORM_RTOL = 4e-4


@pytest.fixture(scope="module")
def tables():
    return {f: fitted_table(f, "nnlut", 16, "full") for f in ("gelu", "silu", "exp", "reciprocal", "rsqrt")}


@pytest.mark.parametrize("op", ["gelu", "silu"])
def test_activations(tables, op):
    x = torch.linspace(-50, 50, 100001)
    fn = lut_activation
    ref = torch.nn.functional.gelu(x.double()) if op == "gelu" else torch.nn.functional.silu(x.double())
    assert float((fn(x, tables[op]).double() - ref).abs().max()) <= ACT_ATOL[op]


def test_softmax_accuracy_and_rows_sum_to_one(tables):
    torch.manual_seed(0)
    x = torch.randn(32, 12, 128) * 3
    y = lut_softmax(x, -1, tables["exp"], tables["reciprocal"])
    assert float((y - torch.softmax(x, -1)).abs().max()) <= SOFTMAX_ATOL
    assert float((y.sum(-1) - 1).abs().max()) <= 0.01


def test_softmax_other_dim(tables):
    x = torch.randn(5, 7, 3)
    a = lut_softmax(x, 1, tables["exp"], tables["reciprocal"])
    b = lut_softmax(x.transpose(1, 2), -1, tables["exp"], tables["reciprocal"]).transpose(1, 2)
    assert torch.equal(a, b)


@pytest.mark.parametrize("mask_value", [-math.inf, torch.finfo(torch.float32).min])
def test_softmax_masking(tables, mask_value):
    x = torch.randn(4, 10)
    x[:, 6:] = mask_value
    x[1, 1:] = mask_value  # one finite entry
    y = lut_softmax(x, -1, tables["exp"], tables["reciprocal"])
    assert torch.all(y[:, 6:] == 0)
    assert not torch.isnan(y).any()
    assert float((y[1, 0] - 1).abs()) <= 2e-3


def test_fully_masked_rows_behave_like_torch(tables):
    fmin = torch.finfo(torch.float32).min
    rows = torch.tensor([[fmin] * 6, [-math.inf] * 6])
    y = lut_softmax(rows, -1, tables["exp"], tables["reciprocal"])
    ref = torch.softmax(rows, -1)
    assert torch.allclose(y[0], ref[0], atol=2e-3)  # uniform
    assert torch.isnan(y[1]).all() and torch.isnan(ref[1]).all()


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@torch.no_grad()
def test_half_precision(tables, dtype):
    x = (torch.randn(8, 64) * 2).to(dtype)
    y = lut_softmax(x, -1, tables["exp"], tables["reciprocal"])
    assert y.dtype == dtype
    assert float((y.float() - torch.softmax(x.float(), -1)).abs().max()) <= SOFTMAX_ATOL
    ln = torch.nn.LayerNorm(64).to(dtype)
    z = lut_layernorm(x, (64,), ln.weight, ln.bias, ln.eps, tables["rsqrt"])
    assert z.dtype == dtype
    assert float((z.float() - ln(x).float()).abs().max()) <= 0.02  # bf16 resolution near |z| ~ 3


def test_layernorm_matches_float64_reference(tables):
    torch.manual_seed(0)
    ln = torch.nn.LayerNorm(384)
    with torch.no_grad():
        ln.weight.normal_()
        ln.bias.normal_()
    for scale in (1e-2, 1.0, 300.0):
        x = torch.randn(4, 16, 384) * scale + 5
        xd = x.double()
        core = (xd - xd.mean(-1, keepdim=True)) / torch.sqrt(xd.var(-1, unbiased=False, keepdim=True) + ln.eps)
        w, b = ln.weight.detach().double(), ln.bias.detach().double()
        y = lut_layernorm(x, (384,), ln.weight, ln.bias, ln.eps, tables["rsqrt"]).detach().double()
        ref = core * w + b
        # the table's relative error, float32 rounding of the centred values (|x| ~ 5) and of y
        bound = (NORM_RTOL * core.abs() + 1e-4 / scale + 1e-5) * w.abs() + 1e-6 * (ref.abs() + 1)
        assert torch.all((y - ref).abs() <= bound)


@torch.no_grad()
def test_layernorm_zero_variance_gives_bias(tables):
    ln = torch.nn.LayerNorm(8)
    with torch.no_grad():
        ln.bias.copy_(torch.arange(8.0))
    x = torch.full((3, 8), 2.5)
    y = lut_layernorm(x, (8,), ln.weight, ln.bias, ln.eps, tables["rsqrt"])
    assert torch.equal(y, ln(x))


def test_rmsnorm(tables):
    x = torch.randn(4, 64) * 3
    w = torch.randn(64)
    ref = x * torch.rsqrt((x * x).mean(-1, keepdim=True) + 1e-6) * w
    y = lut_rmsnorm(x, w, 1e-6, tables["rsqrt"])
    assert float(((y - ref).abs() / ref.abs().clamp(min=1e-3)).max()) <= 10 * NORM_RTOL
    assert torch.equal(lut_rmsnorm(torch.zeros(2, 64), w, 1e-6, tables["rsqrt"]), torch.zeros(2, 64))
