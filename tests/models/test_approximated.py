"""``nnlut.approximated``: approximated inside the block, the original model after it, also
when the block raises."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import nnlut
from nnlut import ApproxConfig, NNLUTError
from nnlut.ops import ApproxOp


def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(8, 16), nn.GELU(), nn.LayerNorm(16), nn.Linear(16, 4), nn.Softmax(-1)).eval()


def _approx_count(model: nn.Module) -> int:
    return sum(isinstance(m, ApproxOp) for m in model.modules())


@torch.no_grad()
def test_inside_the_block_approximated_after_it_the_original():
    model, x = _net(), torch.randn(32, 8)
    ref = model(x)
    with nnlut.approximated(model, ApproxConfig(entries=8)) as report:
        assert report.counts() == {"gelu": 1, "layernorm": 1, "softmax": 1} and _approx_count(model) == 3
        inside = model(x)
        assert nnlut.models.approximation_report(model) is report
    assert not torch.equal(inside, ref) and torch.allclose(inside, ref, atol=0.05)
    assert _approx_count(model) == 0 and torch.equal(model(x), ref)


@torch.no_grad()
def test_restored_when_the_block_raises():
    model, x = _net(), torch.randn(4, 8)
    ref = model(x)
    with pytest.raises(RuntimeError, match="boom"), nnlut.approximated(model, ApproxConfig(ops=["gelu"])):
        assert _approx_count(model) == 1
        raise RuntimeError("boom")
    assert _approx_count(model) == 0 and torch.equal(model(x), ref)
    nnlut.approximate_(model)  # nothing left behind: the model can be approximated again
    nnlut.restore_(model)


def test_a_failed_swap_changes_nothing_and_a_block_may_restore_itself():
    model = _net()
    with pytest.raises(NNLUTError, match="the model has no silu"), nnlut.approximated(model, ApproxConfig(ops=["silu"])):
        pytest.fail("the block must not run")
    assert _approx_count(model) == 0
    with nnlut.approximated(model):
        nnlut.restore_(model)
    assert _approx_count(model) == 0
