"""The fused LUT attention op: the values of the unfused LUT attention up to the summation order,
in every feature it takes (masks, bands, grouped heads, biases, soft-capping, bfloat16, views),
one node to torch.compile and torch.export, a differentiable composite, clear errors.

Tolerance: 5e-5 of max |v| in float32. The fused kernel sums q.k, the row sum and probs @ v in
other orders than torch's matmul and the unfused kernel; with scores of magnitude ~10 and head
dims up to 128 that moves scores by ~1e-6 and the probabilities by about as much relative. The
LUT softmax's own deviation from the exact softmax is ~1e-3, and rescaling partial sums by the
exp table (a running maximum) would move the result by that much: the test below shows it is
more than 20x the tolerance, so the tolerance tells the two apart.
"""

from __future__ import annotations

import pytest
import torch

from nnlut import NNLUTError
from nnlut.core._eval import evaluate_reference
from nnlut.kernels import _cpu, _flash
from nnlut.models import fitted_table

pytestmark = pytest.mark.skipif(not _cpu.available(), reason=f"fused kernels unavailable: {_cpu.unavailable_reason()}")

EXP = fitted_table("exp", "nnlut", 16, "none")
REC = fitted_table("reciprocal", "nnlut", 16, "full")
FMIN = torch.finfo(torch.float32).min


def _ref(q, k, v, mask=None, bias=None, softcap=0.0, lo=-_flash.NO_BAND, hi=_flash.NO_BAND, scale=None):
    """The unfused LUT attention on float32 copies (tables by their reference evaluation)."""
    scale = q.shape[-1] ** -0.5 if scale is None else scale
    return _flash.composite(q.float(), k.float(), v.float(), mask, bias, scale, softcap, lo, hi,
                            lambda u: evaluate_reference(EXP, u), lambda u: evaluate_reference(REC, u))


def _qkv(b=2, h=4, hk=4, lq=37, lk=53, d=32, dv=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(b, h, lq, d, generator=g) * 2, torch.randn(b, hk, lk, d, generator=g) * 2,
            torch.randn(b, hk, lk, dv, generator=g))


def _close(out, ref, v):
    assert out.shape == ref.shape and out.is_contiguous()
    assert torch.equal(out.isnan(), ref.isnan())  # a row of -inf scores is NaN, as in the unfused path
    err = (out.float() - ref).nan_to_num(0.0).abs().max().item()
    assert err <= 5e-5 * v.abs().max().item(), err


@pytest.mark.parametrize("shape", [dict(), dict(lq=1, lk=7), dict(lq=64, lk=64, d=64, dv=64), dict(lq=33, lk=200, d=128,
                                   dv=128), dict(d=16, dv=8), dict(h=8, hk=2), dict(h=6, hk=1), dict(b=1, lq=130, lk=1)])
def test_equals_unfused(shape):
    q, k, v = _qkv(**shape)
    _close(_flash.flash_attention(q, k, v, EXP, REC), _ref(q, k, v), v)


@pytest.mark.parametrize("causal,window", [(True, None), (True, 9), (False, 5)])
def test_bands(causal, window):
    q, k, v = _qkv(lq=100, lk=140)
    lo, hi = _flash.band(causal, window, 140, 100)
    out = _flash.flash_attention(q, k, v, EXP, REC, lo=lo, hi=hi)
    # the band is what the equivalent boolean mask gives
    d = torch.arange(140)[None, :] - torch.arange(100)[:, None] - 40
    keep = ((d <= 0) if causal else torch.ones_like(d, dtype=torch.bool)) & ((d > -window) if window else True)
    _close(out, _ref(q, k, v, mask=keep[None, None]), v)


def test_masks_boolean_float_and_fully_masked_rows():
    q, k, v = _qkv(lq=40, lk=150)
    keep = torch.rand(2, 1, 40, 160, generator=torch.Generator().manual_seed(3)) > 0.5
    keep[0, 0, 5] = False  # a query whose keys are all masked: an even spread, as the unfused path
    keep[1, 0, :, 64:128] = False  # a whole tile masked: left out
    _close(_flash.flash_attention(q, k, v, EXP, REC, mask=keep), _ref(q, k, v, mask=keep), v)
    additive = torch.zeros(2, 1, 40, 150).masked_fill(~keep[..., :150], FMIN)
    _close(_flash.flash_attention(q, k, v, EXP, REC, mask=additive), _ref(q, k, v, mask=additive), v)
    per_head = torch.randn(2, 4, 40, 150) * 3  # an additive float mask per head, not only 0 / min
    _close(_flash.flash_attention(q, k, v, EXP, REC, mask=per_head), _ref(q, k, v, mask=per_head), v)
    bf = additive.to(torch.bfloat16)  # float32's minimum is -inf in bfloat16: the fully masked row is NaN
    _close(_flash.flash_attention(q, k, v, EXP, REC, mask=bf), _ref(q, k, v, mask=bf), v)


def test_bias_and_softcap():
    q, k, v = _qkv()
    bias = torch.randn(1, 4, 37, 53)
    _close(_flash.flash_attention(q, k, v, EXP, REC, bias=bias, softcap=5.0, scale=0.3),
           _ref(q, k, v, bias=bias, softcap=5.0, scale=0.3), v)


def test_views_read_in_place():
    # transformers' heads-split projections: (batch, tokens, heads, dim) viewed as (batch, heads, ...)
    g = torch.Generator().manual_seed(5)
    q, k, v = (torch.randn(2, 45, 4, 32, generator=g).transpose(1, 2) for _ in range(3))
    _close(_flash.flash_attention(q, k, v, EXP, REC), _ref(q, k, v), v)


def test_bfloat16_rounds_only_its_output():
    q, k, v = (t.to(torch.bfloat16) for t in _qkv())
    out = _flash.flash_attention(q, k, v, EXP, REC)
    assert out.dtype == torch.bfloat16
    ref = _ref(q, k, v)  # float32 on the bfloat16 values
    assert ((out.float() - ref).abs() <= ref.abs() * 2.0**-8 + 1e-6).all()


def test_tolerance_is_below_the_table_error():
    q, k, v = _qkv(lq=64, lk=256)
    lut = _flash.flash_attention(q, k, v, EXP, REC)
    exact = torch.nn.functional.scaled_dot_product_attention(q, k, v).transpose(1, 2)
    assert (lut - exact).abs().max().item() > 20 * 5e-5 * v.abs().max().item()


def test_kernel_runs_not_the_composite(monkeypatch):
    def refuse(*a, **k):
        raise AssertionError("composite used")

    monkeypatch.setattr(_flash, "composite", refuse)
    q, k, v = _qkv()
    _flash.flash_attention(q, k, v, EXP, REC, mask=torch.ones(1, 1, 37, 53, dtype=torch.bool), bias=torch.zeros(2, 4, 37, 53))


def test_exp_table_without_zero_floor_takes_the_composite():
    import nnlut

    # clamped at -8: 0.02 far below zero, where every fitted exp table gives 0
    exp = nnlut.Table([-4.0, -1.0], [0.01, 0.1, 1.0], [0.1, 0.4, 1.0], domain=(-8.0, 0.0), tails=("clamp", "extend"))
    assert not _flash.zero_floor(exp) and _flash.zero_floor(EXP)
    q, k, v = _qkv()
    out = _flash.flash_attention(q, k, v, exp, REC, lo=-_flash.NO_BAND, hi=0)
    ref = _flash.composite(q, k, v, None, None, 32**-0.5, 0.0, -_flash.NO_BAND, 0, lambda u: evaluate_reference(exp, u),
                           lambda u: evaluate_reference(REC, u))
    assert torch.isfinite(ref).all() and torch.allclose(out, ref, atol=1e-6)


def test_gradients_take_the_composite():
    q, k, v = (t.requires_grad_() for t in _qkv(b=1, h=2, hk=2, lq=5, lk=6, d=8, dv=8))
    _flash.flash_attention(q, k, v, EXP, REC).sum().backward()
    assert q.grad is not None and torch.isfinite(q.grad).all()


def test_one_node_compiled_and_exported():
    class Attn(torch.nn.Module):
        def forward(self, q, k, v):
            return _flash.flash_attention(q, k, v, EXP, REC, lo=-_flash.NO_BAND, hi=0)

    q, k, v = _qkv(lq=20, lk=20)
    m = Attn()
    eager = m(q, k, v)
    ep = torch.export.export(m, (q, k, v))
    nodes = [n for n in ep.graph.nodes if n.op == "call_function"]
    assert [str(n.target) for n in nodes] == ["nnlut.flash_attention.default"]
    assert torch.equal(ep.module()(q, k, v), eager)
    assert torch.equal(torch.compile(m, backend="eager", fullgraph=True)(q, k, v), eager)


def test_opcheck():
    from nnlut.kernels._args import table_args

    q, k, v = _qkv(b=1, h=2, hk=1, lq=9, lk=11, d=8, dv=8)
    mask = torch.rand(1, 1, 9, 11, generator=torch.Generator().manual_seed(2)) > 0.3
    torch.library.opcheck(torch.ops.nnlut.flash_attention.default,
                          (q, k, v, mask, None, 0.35, 0.0, -_flash.NO_BAND, 0, *table_args(EXP),
                           *table_args(REC)),
                          test_utils=("test_schema", "test_faketensor"))


@pytest.mark.parametrize("bad", [dict(k=torch.randn(2, 3, 53, 32)), dict(v=torch.randn(2, 4, 52, 32)),
                                 dict(q=torch.randn(2, 4, 37)), dict(k=torch.randn(2, 4, 53, 32, dtype=torch.float64))])
def test_bad_shapes_are_refused(bad):
    q, k, v = _qkv()
    args = {"q": q, "k": k, "v": v, **bad}
    with pytest.raises(NNLUTError, match="flash attention"):
        _flash.flash_attention(args["q"], args["k"], args["v"], EXP, REC)
