"""Table-aware fine-tuning: training a model's own weights with 4-entry tables in place.

The reference is the original model (PyTorch's own GELU, softmax and LayerNorm): a small
classifier is trained on a synthetic task, approximated with 4-entry tables (which costs it
accuracy), then fine-tuned to match the original's logits while its forward runs on the
tables. The gradients flow through the ops' registered backward (the segment slope of each
table), for float, fixed-point (INT16) and FP16 tables.
"""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

import nnlut
from tests.models.conftest import ToyBlock


class Classifier(nn.Module):
    def __init__(self, d: int = 16, classes: int = 2) -> None:
        super().__init__()
        self.block = ToyBlock(d)
        self.head = nn.Linear(d, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.block(x).mean(1))


def _task(n: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Sequences of 6 tokens; the label says whether a sum of products and magnitudes is large."""
    x = torch.randn(n, 6, 16, generator=gen)
    y = ((x[..., 0] * x[..., 1]).sum(1) + x[..., 2].abs().sum(1) > 4.7).long()
    return x, y


def _steps(model: nn.Module, steps: int, lr: float, loss_of, n: int, gen: torch.Generator) -> None:
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    for _ in range(steps):
        idx = torch.randint(0, n, (128,), generator=gen)
        loss = loss_of(model, idx)
        opt.zero_grad()
        loss.backward()
        opt.step()


@pytest.fixture(scope="module")
def trained():
    """(original classifier trained for 300 steps, train inputs, train labels, held-out inputs, labels)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny tensors: one thread is the fastest, and shares the machine
    try:
        torch.manual_seed(0)
        gen = torch.Generator().manual_seed(0)
        xt, yt = _task(2048, gen)
        xv, yv = _task(1024, gen)
        model = Classifier()
        _steps(model, 300, 3e-3, lambda m, i: nn.functional.cross_entropy(m(xt[i]), yt[i]), len(xt), gen)
        yield model.eval(), xt, yt, xv, yv
    finally:
        torch.set_num_threads(threads)


@pytest.fixture
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        return float((model(x).argmax(1) == y).float().mean())


def _distance(model: nn.Module, x: torch.Tensor, target: torch.Tensor) -> float:
    with torch.no_grad():
        return float(nn.functional.mse_loss(model(x), target))


def test_fine_tuning_with_4_entry_tables_recovers_the_original(trained, one_thread):
    original, xt, yt, xv, yv = trained
    acc0 = _accuracy(original, xv, yv)
    assert acc0 > 0.8  # the task is learnt
    with torch.no_grad():
        teacher_t, teacher_v = original(xt), original(xv)

    student = copy.deepcopy(original).train()
    report = nnlut.approximate_(student, nnlut.ApproxConfig(entries=4))
    assert {r["op"] for r in report.replaced} >= {"gelu", "softmax", "layernorm"}
    d1, acc1 = _distance(student, xv, teacher_v), _accuracy(student, xv, yv)
    agree1 = _accuracy(student, xv, teacher_v.argmax(1))
    assert d1 > 1e-4 and agree1 < 0.99  # 4-entry tables change the model

    gen = torch.Generator().manual_seed(1)
    _steps(student, 200, 3e-3, lambda m, i: nn.functional.mse_loss(m(xt[i]), teacher_t[i]), len(xt), gen)
    d2, acc2 = _distance(student, xv, teacher_v), _accuracy(student, xv, yv)
    agree2 = _accuracy(student, xv, teacher_v.argmax(1))
    assert d2 < 0.5 * d1  # most of the distance to the original is recovered
    assert agree2 > agree1 and agree2 > 0.98
    assert abs(acc2 - acc0) < abs(acc1 - acc0) or abs(acc2 - acc0) < 0.005
    # the weights adapted to the tables: with the exact functions back they are further off
    nnlut.restore_(student)
    assert _distance(student, xv, teacher_v) > 2 * d2


def _grads(model: nn.Module, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    model.zero_grad()
    nn.functional.mse_loss(model(x), target).backward()
    return torch.cat([p.grad.reshape(-1) for p in model.parameters()])


@pytest.mark.parametrize("number_format", ["int16", "int8", "fp16", "bf16"])
def test_fixed_point_and_half_tables_have_gradients_in_a_model(trained, one_thread, number_format):
    original, xt, _, _, _ = trained
    x = xt[:256]
    with torch.no_grad():
        target = original(x) + 0.1 * torch.randn(256, 2, generator=torch.Generator().manual_seed(2))
    floats = copy.deepcopy(original)
    nnlut.approximate_(floats, nnlut.ApproxConfig(entries=4))
    model = copy.deepcopy(original)
    nnlut.approximate_(model, nnlut.ApproxConfig(entries=4, number_format=number_format))
    g = _grads(model, x, target)
    assert torch.isfinite(g).all()
    for name, p in model.named_parameters():  # every weight gets a gradient, none is silently zero
        assert p.grad.abs().max() > 0, name
    if number_format != "int8":  # (INT8 tables are fitted again on their coarser input grid)
        # the segment slopes of a rounded table are those of its float source, almost
        ref = _grads(floats, x, target)
        assert float(torch.nn.functional.cosine_similarity(g, ref, dim=0)) > 0.999
    # and a few steps on them reduce the loss
    before = float(nn.functional.mse_loss(model(x).detach(), target))
    _steps(model, 30, 1e-3, lambda m, i: nn.functional.mse_loss(m(x[i]), target[i]), len(x), torch.Generator())
    assert float(nn.functional.mse_loss(model(x).detach(), target)) < 0.9 * before
