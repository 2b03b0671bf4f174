"""torch.library.opcheck on every nnlut custom op (schema, fake kernel, dispatch consistency)
with plain (no-gradient) inputs."""

from __future__ import annotations

import pytest
import torch

from nnlut.fixed import quantize_table
from nnlut.kernels._backend import key_of
from nnlut.models import fitted_table

OPS = torch.ops.nnlut
TESTS = ("test_schema", "test_faketensor", "test_aot_dispatch_static")


@pytest.fixture(scope="module")
def keys():
    t = {"gelu": fitted_table("gelu", "nnlut", 16, "full"), "exp": fitted_table("exp", "nnlut", 16, "full"),
         "reciprocal": fitted_table("reciprocal", "nnlut", 16, "full"),
         "rsqrt": fitted_table("rsqrt", "nnlut", 16, "full")}
    t["gelu_int16"] = quantize_table(t["gelu"])
    return t, {k: key_of(v) for k, v in t.items()}


def _cases(k):
    x = torch.linspace(-4, 4, 96).reshape(2, 3, 16)
    s = torch.randn(1, 2, 4, 8, generator=torch.Generator().manual_seed(0))
    mask = torch.zeros(1, 1, 1, 8)
    w, b = torch.linspace(0.5, 1.5, 16), torch.linspace(-0.2, 0.2, 16)
    return {
        "pwl": (OPS.pwl.default, (x, k["gelu"])),
        "fixed": (OPS.fixed.default, (x, k["gelu_int16"])),
        "softmax": (OPS.softmax.default, (x, -1, k["exp"], k["reciprocal"])),
        "attention_softmax": (OPS.attention_softmax.default, (s, 0.5, mask, k["exp"], k["reciprocal"])),
        "layernorm": (OPS.layernorm.default, (x, [16], w, b, 1e-5, k["rsqrt"])),
        "rmsnorm": (OPS.rmsnorm.default, (x, w, 1e-6, 0.0, k["rsqrt"])),
    }


@pytest.mark.parametrize("name", ["pwl", "fixed", "softmax", "attention_softmax", "layernorm", "rmsnorm"])
def test_opcheck_passes_for_every_op(keys, name):
    tables, k = keys  # tables kept alive so their keys stay valid
    op, args = _cases(k)[name]
    torch.library.opcheck(op, args, test_utils=TESTS)


def test_pwl_op_gradient_is_the_segment_slope(keys):
    """Against central differences of the op's own forward values, away from breakpoints."""
    _, k = keys
    x = torch.linspace(-4, 4, 257, dtype=torch.float64).requires_grad_(True)
    OPS.pwl.default(x, k["gelu"]).sum().backward()
    h = 1e-7
    with torch.no_grad():
        xd = x.detach()
        lo, mid, hi = (OPS.pwl.default(v, k["gelu"]) for v in (xd - h, xd, xd + h))
        fd = (hi - lo) / (2 * h)
        straight = ((hi - mid) - (mid - lo)).abs() < 1e-12  # no breakpoint within h
    assert straight.sum() > 200
    assert torch.allclose(x.grad[straight], fd[straight], rtol=1e-5, atol=1e-7)
    assert x.grad.abs().sum() > 0


def test_pwl_op_autograd_registration_passes_opcheck(keys):
    _, k = keys
    x = torch.linspace(-4, 4, 96).reshape(2, 3, 16).requires_grad_(True)
    torch.library.opcheck(OPS.pwl.default, (x, k["gelu"]), test_utils=("test_autograd_registration",))
