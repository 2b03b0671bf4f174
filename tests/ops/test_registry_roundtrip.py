"""A new op (tanh) and a new method (chord tables), registered in this file alone, taken
through every method, ``calibrate``, ``save_calibration``, ``load_calibration`` into a fresh
model and ``restore_``; and the clear errors where a kernel is missing."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
import torch
from torch import nn

import nnlut
from nnlut import ApproxConfig, NNLUTError
from nnlut.calibration import calibrate, load_calibration, save_calibration
from nnlut.core import Table, get_function
from nnlut.models import METHODS, OPS, MethodSpec, OpSpec, register_method, register_op, unregister
from nnlut.ops import ApproxOp, Kernel, register_kernel


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.lin = nn.Linear(8, 8)
        self.act = nn.Tanh()
        self.out = nn.Linear(8, 8)
        self.gelu = nn.GELU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.gelu(self.out(self.act(self.lin(x))))


class ApproxTanh(ApproxOp):
    op = "tanh"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.observers:
            self._observe({"act": x})
        return self.kernel(x)


@dataclass(frozen=True)
class TanhKernel(Kernel):
    """The toy op's kernel: its ``act`` table, or torch.tanh without tables."""

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.tables["act"](x) if self.tables else torch.tanh(x)


def chord(function: str, entries: int, scaling: str, seed: int) -> Table:
    """The toy method's fit: chords between equally spaced knots of the default domain, inputs
    saturated at its edges."""
    spec = get_function(function)
    lo, hi = spec.domain
    x = np.linspace(lo, hi, entries + 1)
    y = spec(x)
    s = np.diff(y) / np.diff(x)
    return Table(x[1:-1], s, y[:-1] - s * x[:-1], domain=(lo, hi), tails=("clamp", "clamp"), function=function)


def _find_tanh(name, module, verify):
    return {"function": "tanh"} if isinstance(module, nn.Tanh) else None


@pytest.fixture
def toy():
    register_op(OpSpec("tanh", {"act": "tanh"}, _find_tanh, lambda k, s: ApproxTanh(k),
                       kernel=lambda method, tables, fn: TanhKernel(method, tables)))
    register_method(MethodSpec("chord", fitted=True, fit=chord))
    yield
    for name in ("tanh", "chord", "tanh_plain"):
        if name in OPS or name in METHODS:
            unregister(name)


def _run(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(x)


def test_name_lists_are_live_views(toy):
    assert "tanh" in OPS and "chord" in METHODS and list(OPS)[-1] == "tanh"
    unregister("chord")
    assert "chord" not in METHODS
    with pytest.raises(NNLUTError, match="method 'chord' is unknown"):
        ApproxConfig(method="chord")


def test_missing_kernels_are_clear_errors(toy):
    model, x = Net().eval(), torch.randn(4, 8)
    with pytest.raises(NNLUTError, match="op 'tanh' has no kernel for method 'exact'.*register_kernel"):
        nnlut.approximate_(model, ApproxConfig(ops=["tanh"], method="exact"))
    with pytest.raises(NNLUTError, match="I-BERT has no integer kernel for tanh"):
        nnlut.approximate_(model, ApproxConfig(ops=["tanh"], method="ibert"))
    # the same op replaced by a spec without a kernel: the old spec's kernel goes with it
    register_op(OpSpec("tanh", {"act": "tanh"}, _find_tanh, lambda k, s: ApproxTanh(k)), overwrite=True)
    with pytest.raises(NNLUTError, match="op 'tanh' has no kernel that reads tables.*nnlut.ops.TABLES"):
        nnlut.approximate_(model, ApproxConfig(ops=["tanh"]))
    unregister("tanh")  # the same modules, found by another op that gives no kernel
    register_op(OpSpec("tanh_plain", {"act": "tanh"}, _find_tanh, lambda k, s: ApproxTanh(k)))
    with pytest.raises(NNLUTError, match="op 'tanh_plain' has no kernel that reads tables"):
        nnlut.approximate_(model, ApproxConfig(ops=["tanh_plain"]))
    assert not isinstance(model.act, ApproxOp) and torch.equal(_run(model, x), _run(Net().eval(), x))


def test_every_method_calibrate_save_load_restore(toy, tmp_path):
    register_kernel("tanh", "exact", lambda op, method, tables, fn: TanhKernel("exact"))
    x = torch.linspace(-2.5, 2.5, 64).reshape(8, 8)
    ref = _run(Net().eval(), x)
    for method in METHODS:
        model = Net().eval()
        if method == "ibert":
            with pytest.raises(NNLUTError, match="I-BERT has no integer kernel for tanh"):
                nnlut.approximate_(model, ApproxConfig(ops=["tanh"], method=method))
            continue
        report = nnlut.approximate_(model, ApproxConfig(ops=["tanh"], method=method))
        assert report.counts() == {"tanh": 1} and isinstance(model.act, ApproxTanh)
        y = _run(model, x)
        if method == "exact":
            assert torch.equal(y, ref)
        else:
            table = model.act.kernel.tables["act"]
            assert table.function == "tanh" and model.act.kernel.method == method
            h = _run(model.lin, x).double().numpy()
            grid = np.linspace(-4, 4, 4001)
            err = float(np.max(np.abs(table(grid) - np.tanh(grid))))  # the table's own error
            # tanh -> Linear -> GELU: the output moves by at most |W| * err * max|GELU'| (< 1.13)
            bound = float(model.out.weight.detach().abs().sum(1).max()) * max(err, float(np.max(np.abs(table(h) - np.tanh(h)))))
            assert 0 < float((y - ref).abs().max()) <= 1.13 * bound + 1e-6
        if method == "chord":
            assert table == chord("tanh", 16, "full", 0)
        nnlut.restore_(model)
        assert torch.equal(_run(model, x), ref)

    # the new method on the new op and a built-in one (their modules; no call tables): calibration refits both
    model = Net().eval()
    report = nnlut.approximate_(model, ApproxConfig(method="chord", entries=8, share_tables=False, calls=False))
    assert report.counts() == {"tanh": 1, "gelu": 1}
    before = {n: m.kernel.tables["act"] for n, m in (("act", model.act), ("gelu", model.gelu))}
    gen = torch.Generator().manual_seed(1)
    cal = calibrate(model, [2 * torch.randn(16, 8, generator=gen) for _ in range(4)])
    assert {t["function"] for t in cal.tables} == {"tanh", "gelu"}
    assert model.act.kernel.tables["act"] != before["act"] and model.gelu.kernel.tables["act"] != before["gelu"]
    y = _run(model, x)
    folder = save_calibration(model, tmp_path / "cal")

    fresh = Net().eval()
    loaded = load_calibration(fresh, folder)
    assert loaded.counts() == {"tanh": 1, "gelu": 1}
    assert fresh.act.kernel.method == "chord" and fresh.act.kernel.tables["act"] == model.act.kernel.tables["act"]
    assert torch.equal(_run(fresh, x), y) and not torch.equal(y, ref)
    nnlut.restore_(fresh)
    assert torch.equal(_run(fresh, x), ref)


def test_a_fitted_method_needs_a_fit():
    with pytest.raises(NNLUTError, match="method 'nofit' has fitted tables but no fit.*MethodSpec\\(fit="):
        register_method(MethodSpec("nofit", fitted=True))
    assert "nofit" not in METHODS


def test_a_fit_of_the_wrong_function_is_refused(toy):
    register_method(MethodSpec("bad", fitted=True, fit=lambda f, n, sc, seed: chord("gelu", n, sc, seed)))
    try:
        with pytest.raises(NNLUTError, match="method 'bad'.s fit must return a 16-entry tanh table, got a 16-entry gelu"):
            nnlut.approximate_(Net().eval(), ApproxConfig(ops=["tanh"], method="bad"))
    finally:
        unregister("bad")
