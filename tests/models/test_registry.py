"""A toy op and a toy method, registered here alone, swapped into a model by approximate_."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import nnlut
from nnlut import ApproxConfig, NNLUTError
from nnlut.models import MethodSpec, OpSpec, register_method, register_op, unregister
from nnlut.ops import ApproxOp


class TanhNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.lin = nn.Linear(8, 8)
        self.act = nn.Tanh()
        self.gelu = nn.GELU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.gelu(self.act(self.lin(x)))


class ApproxTanh(ApproxOp):
    """Module face of the toy op: calls its kernel."""

    op = "tanh"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.kernel(x)


class TableKernel:
    """Kernel of the toy op under any table method: evaluates the 'act' table."""

    def __init__(self, method: str, tables):
        self.method, self.tables = method, dict(tables)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.tables["act"](x)

    def describe(self) -> str:
        return f"{self.method}(act:{self.tables['act'].entries})"


class HalfKernel:
    """Kernel of the toy method: half the exact activation (easy to tell apart)."""

    method = "half"
    tables: dict = {}

    def __init__(self, op: str, function: str | None) -> None:
        self.function = function  # activation faces read it
        self.fn = torch.tanh if op == "tanh" else (lambda x: nn.functional.gelu(x, approximate="tanh"
                                                                                 if function == "gelu_tanh" else "none"))

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return 0.5 * self.fn(x)

    def describe(self) -> str:
        return "half"


@pytest.fixture
def toy_registry():
    def find(name, module, verify):
        return {"function": "tanh"} if isinstance(module, nn.Tanh) else None

    register_op(OpSpec("tanh", {"act": "tanh"}, find, lambda k, s: ApproxTanh(k),
                       kernel=lambda method, tables, fn: TableKernel(method, tables)))
    register_method(MethodSpec("half", lambda op, tables, fn: HalfKernel(op, fn)))
    yield
    unregister("tanh")
    unregister("half")


def test_toy_op_with_fitted_tables(toy_registry):
    model = TanhNet().eval()
    x = torch.linspace(-3, 3, 64).reshape(8, 8)
    with torch.no_grad():
        ref = model(x)
    report = nnlut.approximate_(model, ApproxConfig(ops=("tanh",), method="linear", entries=8))
    assert report.counts() == {"tanh": 1} and isinstance(model.act, ApproxTanh)
    assert model.act.kernel.tables["act"].function == "tanh" and model.act.kernel.tables["act"].entries == 8
    table = model.act.kernel.tables["act"]
    with torch.no_grad():
        y = model(x)
        h = model.lin(x).double().numpy()
    want = nn.functional.gelu(torch.from_numpy(table(h)).float())  # the table, evaluated in float64 numpy
    assert torch.allclose(y, want, atol=1e-6) and not torch.equal(y, ref)
    nnlut.restore_(model)
    with torch.no_grad():
        assert torch.equal(model(x), ref)


def test_toy_method_on_toy_and_builtin_ops(toy_registry):
    model = TanhNet().eval()
    x = torch.randn(4, 8)
    with torch.no_grad():
        h = torch.tanh(model.lin(x))
        report = nnlut.approximate_(model, ApproxConfig(method="half"))
        assert report.counts() == {"tanh": 1, "gelu": 1}
        assert torch.allclose(model(x), 0.5 * nn.functional.gelu(0.5 * h), atol=1e-6)
    with pytest.raises(NNLUTError, match="number_format applies to table methods"):
        ApproxConfig(method="half", number_format="int16")


def test_registry_errors(toy_registry):
    with pytest.raises(NNLUTError, match="op 'tanh' is already registered"):
        register_op(OpSpec("tanh", {}, lambda *a: None, lambda k, s: None))
    with pytest.raises(NNLUTError, match="'gelu' is built in"):
        unregister("gelu")
    with pytest.raises(NNLUTError, match="unknown op.*'cosh'.*allowed: gelu, silu, softmax, layernorm, rmsnorm, tanh"):
        ApproxConfig(ops=("cosh",))


def test_unregistered_names_are_unknown():
    with pytest.raises(NNLUTError, match="method 'half' is unknown"):
        ApproxConfig(method="half")
