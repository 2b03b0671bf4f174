"""Empty inputs behave as torch does: an empty last dimension or zero rows give an empty
result of the same shape, never an exception."""

from __future__ import annotations

import pytest
import torch

import nnlut
from nnlut.ops import approx_modules
from nnlut.ops._lut import lut_softmax
from tests.models.conftest import ToyBlock


@pytest.mark.parametrize("shape", [(3, 0), (0, 5), (2, 0, 4), (0,), (4, 3, 0)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
def test_lut_softmax_of_empty_tensors(fitted, shape, dtype):
    x = torch.randn(shape).to(dtype)
    y = lut_softmax(x, -1, fitted("exp", 8, method="linear"), fitted("reciprocal", 8, method="linear"))
    want = torch.softmax(x, -1)
    assert y.shape == want.shape and y.dtype == want.dtype


@pytest.mark.parametrize("shape", [(0, 7, 16), (2, 0, 16)])
def test_approximated_model_on_empty_batches(shape):
    torch.manual_seed(0)
    ref = ToyBlock().eval()
    model = ToyBlock().eval()
    model.load_state_dict(ref.state_dict())
    nnlut.approximate_(model, nnlut.ApproxConfig(entries=4, method="linear"))
    x = torch.randn(shape)
    with torch.no_grad():
        assert model(x).shape == ref(x).shape
    softmax = next(m for m in approx_modules(model).values() if m.op == "softmax")
    assert softmax(torch.randn(3, 0)).shape == (3, 0)
