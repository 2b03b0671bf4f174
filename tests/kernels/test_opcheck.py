"""torch.library.opcheck on every nnlut custom op (schema, fake kernel, autograd registration,
AOT dispatch with dynamic shapes), with plain inputs and with inputs that require gradients;
the registered gradients against finite differences of the ops' own values."""

from __future__ import annotations

import warnings

import pytest
import torch

from nnlut.fixed import quantize_table, to_fp16
from nnlut.kernels._args import table_args
from nnlut.models import fitted_table

OPS = torch.ops.nnlut
NAMES = ["pwl", "fixed", "half", "softmax", "attention_softmax", "layernorm", "rmsnorm", "flash_attention"]


@pytest.fixture(scope="module")
def tables():
    t = {"gelu": fitted_table("gelu", "nnlut", 16, "full"), "exp": fitted_table("exp", "nnlut", 16, "full"),
         "reciprocal": fitted_table("reciprocal", "nnlut", 16, "full"),
         "rsqrt": fitted_table("rsqrt", "nnlut", 16, "full")}
    t["gelu_int16"] = quantize_table(t["gelu"])
    t["gelu_fp16"] = to_fp16(t["gelu"])
    return t


def _cases(t, dtype=torch.float32):
    a = {k: table_args(v) for k, v in t.items()}
    x = torch.linspace(-4, 4, 96, dtype=dtype).reshape(2, 3, 16)
    s = torch.randn(1, 2, 4, 8, generator=torch.Generator().manual_seed(0), dtype=dtype)
    mask = torch.zeros(1, 1, 1, 8, dtype=dtype)
    w, b = torch.linspace(0.5, 1.5, 16, dtype=dtype), torch.linspace(-0.2, 0.2, 16, dtype=dtype)
    return {
        "pwl": (OPS.pwl.default, (x, *a["gelu"])),
        "fixed": (OPS.fixed.default, (x, *a["gelu_int16"])),
        "half": (OPS.half.default, (x, *a["gelu_fp16"])),
        "softmax": (OPS.softmax.default, (x, -1, *a["exp"], *a["reciprocal"])),
        "attention_softmax": (OPS.attention_softmax.default, (s, 0.5, mask, *a["exp"], *a["reciprocal"])),
        "layernorm": (OPS.layernorm.default, (x, [16], w, b, 1e-5, *a["rsqrt"])),
        "rmsnorm": (OPS.rmsnorm.default, (x, w, 1e-6, 0.0, *a["rsqrt"])),
        "flash_attention": (OPS.flash_attention.default, (s, s[:, :1].clone(), s[:, :1].clone(), mask, None, 0.35,
                                                          0.0, -(1 << 62), 0, *a["exp"], *a["reciprocal"])),
    }


def _with_grad(args):
    """The op's data inputs (not the table tensors, which are float64 or int64) require gradients."""
    return tuple(a.clone().requires_grad_(True) if isinstance(a, torch.Tensor) and a.dtype == torch.float32 else a
                 for a in args)


@pytest.mark.parametrize("grad", [False, True], ids=["plain", "grad"])
@pytest.mark.parametrize("name", NAMES)
def test_opcheck_passes_for_every_op(tables, name, grad):
    op, args = _cases(tables)[name]
    if grad:
        args = _with_grad(args)
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*autograd kernel was not registered.*")
        result = torch.library.opcheck(op, args)
    assert set(result.values()) == {"SUCCESS"}


@pytest.mark.parametrize("name", [n for n in NAMES if n not in ("fixed", "half")])  # quantisation steps, see below
def test_gradients_match_finite_differences(tables, name):
    """d(sum(w * op(x)))/dx from the registered backward against central differences of the
    op's own float64 values, at inputs away from breakpoints (where the op is linear)."""
    op, args = _cases(tables, torch.float64)[name]
    x = args[0].clone().requires_grad_(True)
    w = torch.randn(op(*args).shape, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    (op(x, *args[1:]) * w).sum().backward()
    h = 1e-7
    gen = torch.Generator().manual_seed(2)
    checked = 0
    for _ in range(12):
        d = torch.randn(x.shape, dtype=torch.float64, generator=gen)
        with torch.no_grad():
            lo, mid, hi = ((op(x.detach() + k * h * d, *args[1:]) * w).sum() for k in (-1, 0, 1))
        if abs(float((hi - mid) - (mid - lo))) > 1e-9 * max(1.0, abs(float(mid))):
            continue  # a breakpoint (or a quantisation step) within h along d
        fd = float(hi - lo) / (2 * h)
        assert fd == pytest.approx(float((x.grad * d).sum()), rel=1e-4, abs=1e-6)
        checked += 1
    assert checked >= 3
    assert x.grad.abs().sum() > 0  # never a silent zero


def test_fixed_table_gradient_is_the_segment_slope(tables):
    """A fixed-point table's gradient is the slope of its real-valued segment: close to the float
    table's slope it was quantised from (not zero)."""
    ft, src = tables["gelu_int16"], tables["gelu"]
    x = torch.linspace(-3.9, 3.9, 301, dtype=torch.float32)
    x = x[(x[:, None] - torch.tensor(src.breakpoints.copy()).float()).abs().amin(dim=1) > 1e-2].requires_grad_(True)
    OPS.fixed.default(x, *table_args(ft)).sum().backward()
    xf = x.detach().clone().requires_grad_(True)
    OPS.pwl.default(xf, *table_args(src)).sum().backward()
    assert x.numel() > 250 and torch.allclose(x.grad, xf.grad, atol=2e-3)


def test_compiled_gradient_equals_eager(tables):
    op, args = _cases(tables)["layernorm"]
    x = args[0].clone().requires_grad_(True)
    w = args[2].clone().requires_grad_(True)

    def f(x, w):
        return (op(x, args[1], w, *args[3:]) ** 2).sum()

    f(x, w).backward()
    ge = (x.grad.clone(), w.grad.clone())
    x.grad = w.grad = None
    torch.compile(f, backend="aot_eager", fullgraph=True)(x, w).backward()
    assert torch.allclose(x.grad, ge[0], atol=1e-6) and torch.allclose(w.grad, ge[1], atol=1e-6)
