"""Tables as module buffers: in state_dict, moved by .to(), loaded, edited, exported by name."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from nnlut import ApproxConfig, approximate_, restore_
from nnlut.core import Table

PARTS = ("breakpoints", "slopes", "intercepts")


def _run(model, x):
    with torch.no_grad():
        return model(x)


def test_buffers_hold_the_tables_values(toy):
    approximate_(toy)
    for name, role in (("act", "act"), ("softmax", "exp"), ("softmax", "reciprocal"), ("norm", "rsqrt")):
        module = getattr(toy, name)
        table = module.kernel.tables[role]
        for part, want in zip(PARTS, (table.breakpoints, table.slopes, table.intercepts), strict=True):
            buf = getattr(module, f"{role}_{part}")
            assert buf.dtype == torch.float64
            np.testing.assert_array_equal(buf.numpy(), want)
    # fixed-point tables: their integer codes
    restore_(toy)
    approximate_(toy, ApproxConfig(number_format="int16"))
    ft = toy.act.kernel.tables["act"]
    assert toy.act.act_breakpoints.dtype == torch.int64
    np.testing.assert_array_equal(toy.act.act_slopes.numpy(), ft.s)


def test_original_state_dict_loads_strictly_and_keeps_tables(toy):
    original = {k: v.clone() for k, v in toy.state_dict().items()}
    approximate_(toy)
    x = torch.randn(2, 5, 16)
    y = _run(toy, x)
    toy.load_state_dict(original)  # strict: the table buffers may be missing
    assert torch.equal(_run(toy, x), y)


def test_loaded_tables_become_the_kernels_tables(toy):
    x = torch.randn(2, 5, 16)
    a = copy.deepcopy(toy)
    approximate_(a)
    approximate_(toy)
    t = a.act.kernel.tables["act"]
    edited = t.replace(intercepts=t.intercepts + 0.05)
    a.act.set_kernel(a.act.kernel.with_tables({"act": edited}))
    ya = _run(a, x)
    assert not torch.equal(ya, _run(toy, x))
    toy.load_state_dict(a.state_dict())
    assert toy.act.kernel.tables["act"] == edited
    assert torch.equal(_run(toy, x), ya)


def test_in_place_writes_are_the_table(toy):
    approximate_(toy)
    x = torch.randn(3, 64, dtype=torch.float32) * 4
    t = toy.act.kernel.tables["act"]
    with torch.no_grad():
        toy.act.act_slopes.mul_(0.5)
    want = Table(t.breakpoints, t.slopes * 0.5, t.intercepts, domain=t.domain, tails=t.tails, limits=t.limits)
    y = _run(toy.act, x)
    np.testing.assert_allclose(y.double().numpy(), want(x.double()).numpy(), rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(toy.act.kernel.tables["act"].slopes, t.slopes * 0.5)


@pytest.mark.parametrize("cast", [torch.float16, torch.bfloat16, torch.float64])
def test_dtype_casts_leave_tables_alone(toy, cast):
    approximate_(toy)
    before = {k: v.clone() for k, v in toy.state_dict().items() if k.endswith(PARTS)}
    toy.to(cast)
    after = {k: v for k, v in toy.state_dict().items() if k.endswith(PARTS)}
    assert before.keys() == after.keys()
    assert all(after[k].dtype == before[k].dtype and torch.equal(after[k], before[k]) for k in before)
    assert toy.q.weight.dtype == cast
    y = _run(toy, torch.randn(2, 5, 16, dtype=cast))
    assert y.dtype == cast and torch.isfinite(y).all()


def test_deepcopy_and_set_kernel_keep_outputs(toy):
    approximate_(toy)
    x = torch.randn(2, 5, 16)
    y = _run(toy, x)
    assert torch.equal(_run(copy.deepcopy(toy), x), y)
    exact = toy.act.kernel.__class__("exact", function="gelu")
    toy.act.set_kernel(exact)  # no tables: no buffers
    assert not [k for k in toy.state_dict() if k.startswith("act.")]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_buffers_move_with_the_model(toy):
    approximate_(toy)
    x = torch.randn(2, 5, 16)
    y = _run(toy, x)
    toy.cuda()
    assert toy.act.act_breakpoints.is_cuda and toy.act.act_breakpoints.dtype == torch.float64
    torch.testing.assert_close(_run(toy, x.cuda()).cpu(), y, rtol=1e-5, atol=1e-5)


def test_export_reads_tables_from_named_buffers(toy):
    approximate_(toy)
    x = torch.randn(2, 5, 16)
    program = torch.export.export(toy, (x,))
    sig = program.graph_signature
    targets = set(sig.inputs_to_buffers.values())
    for name, role in (("act", "act"), ("softmax", "exp"), ("softmax", "reciprocal"), ("norm", "rsqrt")):
        assert {f"{name}.{role}_{p}" for p in PARTS} <= targets
    assert not [n for n in program.graph.nodes if n.op == "placeholder" and n.name.startswith("c_")]  # no constants
    nodes = [n for n in program.graph.nodes if n.op == "call_function" and str(n.target).startswith("nnlut.")]
    assert len(nodes) == 3
    by_node = {n.name: sig.inputs_to_buffers.get(n.name) for n in program.graph.nodes if n.op == "placeholder"}
    for node in nodes:
        read = [by_node.get(a.name) for a in node.args if isinstance(a, torch.fx.Node) and by_node.get(a.name)]
        assert read and all(r.split(".")[0] in ("act", "softmax", "norm") for r in read)
    assert torch.equal(program.module()(x), _run(toy, x))
    # the program's state_dict carries the tables
    assert torch.equal(program.state_dict["act.act_slopes"], toy.act.act_slopes)
