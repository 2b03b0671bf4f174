"""The kernel backend interface: registration, priority, declining a call, table keys, and
tables that hold no kernel state."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

import nnlut
from nnlut import NNLUTError
from nnlut.core._eval import evaluate_reference
from nnlut.kernels import Backend, _cpu, backends, register_backend, unregister_backend
from nnlut.kernels._args import table_args, table_from_args
from nnlut.kernels._backend import backend_for


@pytest.fixture
def table():
    # y = x below 0, 2x - 1 from 0: an exact two-segment table, no fit needed
    return nnlut.Table([0.0], [1.0, 2.0], [0.0, -1.0])


def test_builtin_backends_in_priority_order():
    names = [b.name for b in backends()]
    assert names.index("cpu") < names.index("reference") and names[-1] == "reference"
    assert backend_for("pwl", torch.zeros(3, dtype=torch.float64)).name == "reference"
    assert backend_for("rmsnorm", torch.zeros(3, dtype=torch.float64)).name == "reference"
    if _cpu.available():  # the C kernels read float32 rows
        assert backend_for("rmsnorm", torch.zeros(3)).name == "cpu"


def test_a_registered_backend_takes_what_it_supports_and_declines_the_rest(table):
    calls = []

    def pwl(t, x):
        calls.append(x.shape)
        if x.numel() > 4:
            return None  # declined: the next backend gets the call
        return evaluate_reference(t, x) + 100.0

    register_backend(Backend("toy", lambda op, x: x.dtype == torch.float64, {"pwl": pwl}, priority=99))
    try:
        x = torch.tensor([-1.0, 0.5], dtype=torch.float64)
        assert torch.equal(table(x), torch.tensor([99.0, 100.0], dtype=torch.float64))
        long = torch.linspace(-2, 2, 9, dtype=torch.float64)
        assert torch.equal(table(long), evaluate_reference(table, long))
        table(x.float())  # not supported: never offered
        assert calls == [(2,), (9,)]
    finally:
        unregister_backend("toy")
    assert "toy" not in [b.name for b in backends()]


def test_bad_backends_are_refused():
    with pytest.raises(NNLUTError, match=r"unknown op\(s\) \['gelu'\]"):
        Backend("bad", lambda op, x: True, {"gelu": lambda t, x: x})
    with pytest.raises(NNLUTError, match="takes a Backend"):
        register_backend("cpu")  # type: ignore[arg-type]
    with pytest.raises(NNLUTError, match="no backend 'nope'"):
        unregister_backend("nope")


def test_op_arguments_carry_the_table(table):
    """A table's op arguments are its numbers and layout: they give back the table itself while
    it lives, and an equal table from a copy of the tensors (another process's graph)."""
    bp, s, t, layout = table_args(table)
    assert table_args(table)[0] is bp and table_from_args(bp, s, t, layout) is table
    assert bp.dtype == torch.float64 and torch.equal(bp, torch.tensor(table.breakpoints.copy()))
    rebuilt = table_from_args(bp.clone(), s.clone(), t.clone(), layout)
    assert rebuilt == table
    x = torch.linspace(-6, 6, 1001)
    assert torch.equal(rebuilt(x), table(x))
    copy = pickle.loads(pickle.dumps(table))
    assert table_args(copy)[3] == layout and table_args(copy)[0] is not bp
    with pytest.raises(NNLUTError, match="float and fixed-point tables"):
        table_args(3.0)
    with pytest.raises(NNLUTError, match="1-D torch.float64"):
        table_from_args(bp.float() + 1, s, t, layout)
    with pytest.raises(NNLUTError, match="JSON object"):
        table_from_args(bp.clone(), s, t, "{not json")


def test_changed_tensors_give_the_changed_table(table):
    """A module buffer updated in place (calibration) is read again, not served from a cache."""
    bp, s, t, layout = (a.clone() if isinstance(a, torch.Tensor) else a for a in table_args(table))
    before = table_from_args(bp, s, t, layout)
    t += 0.5
    after = table_from_args(bp, s, t, layout)
    assert np.allclose(after.intercepts, before.intercepts + 0.5)


def test_tables_are_frozen_and_hold_no_kernel_state(table):
    x = torch.randn(100)
    table(x)
    with pytest.raises(NNLUTError, match="Table is immutable: cannot set 'domain'"):
        table.domain = (-1.0, 1.0)
    with pytest.raises(NNLUTError, match="immutable"):
        del table.slopes
    assert not hasattr(table, "__dict__")
    assert set(table.__getstate__()) == set(nnlut.Table._FIELDS)
