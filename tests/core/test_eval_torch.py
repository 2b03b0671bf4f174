"""Torch evaluation agrees with numpy, for every dtype, shape and available device."""

from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name,kw", [("gelu", {}), ("exp", {}), ("rsqrt", {}), ("reciprocal", {"range_reduction": True})])
def test_float64_torch_equals_numpy(fitted, name, kw, device):
    table = fitted(name, **kw)
    lo, hi = table.meta["eval_domain"]
    x = np.linspace(lo - 1 if lo <= 0 else lo / 2, hi * 1.5 if hi > 0 else hi + 1, 5001)
    y_np = table(x)
    y_t = table(torch.tensor(x, dtype=torch.float64, device=device))
    assert y_t.dtype == torch.float64 and y_t.device.type == device
    np.testing.assert_array_equal(y_t.cpu().numpy(), y_np)


@pytest.mark.parametrize("device", DEVICES)
def test_float32_matches_numpy_float32(fitted, device):
    table = fitted("gelu")
    x = np.random.default_rng(0).uniform(-8, 8, (7, 33)).astype(np.float32)
    y_t = table(torch.tensor(x, device=device))
    assert y_t.shape == (7, 33) and y_t.dtype == torch.float32
    np.testing.assert_array_equal(y_t.cpu().numpy(), table(x))


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_half_dtypes_compute_in_float32(fitted, dtype):
    table = fitted("gelu")
    dt = getattr(torch, dtype)
    x = torch.linspace(-6, 6, 1001).to(dt)
    y = table(x)
    assert y.dtype == dt
    assert torch.equal(y, table(x.float()).to(dt))


def test_special_values_torch(fitted):
    table = fitted("gelu")
    y = table(torch.tensor([math.nan, math.inf, -math.inf, 1e4, -1e4]))
    assert math.isnan(y[0]) and y[1] == math.inf and y[2] == 0 and y[3] == 1e4 and y[4] == 0


def test_integer_tensor_is_rejected(fitted):
    from nnlut import NNLUTError

    with pytest.raises(NNLUTError, match="floating-point"):
        fitted("gelu")(torch.arange(4))
