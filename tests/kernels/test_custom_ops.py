"""The LUT ops as torch custom ops: torch.compile (inductor and eager backends) gives the eager
values on contiguous and non-contiguous inputs, torch.export shows one node per op, and
torch.jit.trace records the ops themselves."""

from __future__ import annotations

import copy
import pickle

import pytest
import torch

from nnlut.fixed import quantize_table
from nnlut.models import fitted_table
from nnlut.ops import lut_activation, lut_attention_softmax, lut_layernorm, lut_rmsnorm, lut_softmax

DTYPES = [torch.float32, torch.bfloat16, torch.float16]
OP_NAMES = ["pwl", "fixed", "softmax", "attention_softmax", "layernorm", "rmsnorm"]


@pytest.fixture(scope="module")
def tables():
    return {"gelu": fitted_table("gelu", "nnlut", 16, "full"), "exp": fitted_table("exp", "nnlut", 16, "full"),
            "reciprocal": fitted_table("reciprocal", "nnlut", 16, "full"),
            "rsqrt": fitted_table("rsqrt", "nnlut", 16, "full"),
            "gelu_int16": quantize_table(fitted_table("gelu", "nnlut", 16, "full"))}


class AllOps(torch.nn.Module):
    """Every LUT op on its input, once on contiguous tensors and once on views of them."""

    def __init__(self, tables: dict, contiguous: bool) -> None:
        super().__init__()
        self.t = tables
        self.contiguous = contiguous
        self.norm_w = torch.nn.Parameter(torch.linspace(0.5, 1.5, 32), requires_grad=False)
        self.norm_b = torch.nn.Parameter(torch.linspace(-0.2, 0.2, 32), requires_grad=False)

    def _view(self, x: torch.Tensor) -> torch.Tensor:
        # (rows, 64) -> a chunk view of (rows, 32) with row stride 64, or its contiguous copy
        v = x.chunk(2, -1)[0]
        return v.contiguous() if self.contiguous else v

    def forward(self, x: torch.Tensor, scores: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, ...]:
        t = self.t
        v = self._view(x)
        s = scores.transpose(-1, -2)  # non-contiguous (batch, heads, queries, keys)
        s = s.contiguous() if self.contiguous else s
        return (
            lut_activation(v, t["gelu"]),
            lut_activation(v, t["gelu_int16"]),
            lut_softmax(v, -1, t["exp"], t["reciprocal"]),
            lut_softmax(v, 0, t["exp"], t["reciprocal"]),
            lut_attention_softmax(s, 0.125, mask, t["exp"], t["reciprocal"]),
            lut_layernorm(v, (32,), self.norm_w, self.norm_b, 1e-5, t["rsqrt"]),
            lut_rmsnorm(v, self.norm_w, 1e-6, t["rsqrt"]),
        )


def _inputs(dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    x = (torch.randn(24, 64, generator=g) * 3).to(dtype)
    scores = (torch.randn(2, 3, 9, 10, generator=g) * 4).to(dtype)  # transposed in the model
    mask = torch.zeros(2, 1, 1, 9, dtype=dtype)
    mask[1, ..., 6:] = torch.finfo(dtype).min
    return x, scores, mask


def _max_diff(a: tuple[torch.Tensor, ...], b: tuple[torch.Tensor, ...]) -> float:
    out = 0.0
    for u, v in zip(a, b, strict=True):
        assert u.shape == v.shape and u.dtype == v.dtype
        out = max(out, float((u.double() - v.double()).abs().nan_to_num(0.0).max()))
    return out


@pytest.mark.parametrize("contiguous", [True, False], ids=["contiguous", "views"])
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: str(d).replace("torch.", ""))
def test_views_give_the_values_of_contiguous_copies(tables, dtype, contiguous):
    x, scores, mask = _inputs(dtype)
    got = AllOps(tables, contiguous)(x, scores, mask)
    ref = AllOps(tables, True)(x, scores, mask)
    assert _max_diff(got, ref) == 0.0


# inductor's own code calls a deprecated torch.jit API while it compiles
TORCH_INTERNAL = pytest.mark.filterwarnings("ignore:`torch.jit.script_method` is deprecated:DeprecationWarning")


@TORCH_INTERNAL
@pytest.mark.parametrize("backend", ["eager", pytest.param("inductor", marks=pytest.mark.slow)])
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: str(d).replace("torch.", ""))
def test_compile_equals_eager(tables, backend, dtype):
    torch._dynamo.reset()
    x, scores, mask = _inputs(dtype)
    for contiguous in (True, False):
        m = AllOps(tables, contiguous)
        ref = m(x, scores, mask)
        got = torch.compile(m, backend=backend, fullgraph=True)(x, scores, mask)
        # the ops run the same kernels in both modes: equal, not just close
        assert _max_diff(got, ref) == 0.0, (backend, dtype, contiguous)


def test_export_shows_one_node_per_op(tables):
    x, scores, mask = _inputs(torch.float32)
    ep = torch.export.export(AllOps(tables, False), (x, scores, mask))
    called = [n.target for n in ep.graph.nodes if n.op == "call_function"]
    nnlut_ops = [str(t).split(".")[1] for t in called if str(t).startswith("nnlut.")]
    assert sorted(nnlut_ops) == sorted(["pwl", "fixed", "softmax", "softmax", "attention_softmax", "layernorm",
                                        "rmsnorm"])
    # nothing of the tables' evaluation leaks into the graph around the ops
    assert not any("searchsorted" in str(t) or "frexp" in str(t) for t in called)
    got = ep.module()(x, scores, mask)
    assert _max_diff(got, AllOps(tables, False)(x, scores, mask)) == 0.0


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # torch.jit itself is deprecated in this torch
def test_jit_trace_records_the_ops_and_gives_eager_values(tables):
    m = AllOps(tables, False)
    x, scores, mask = _inputs(torch.float32)
    traced = torch.jit.trace(m, (x, scores, mask), check_trace=False)
    kinds = {n.kind() for n in traced.inlined_graph.nodes()}
    assert {f"nnlut::{name}" for name in OP_NAMES} <= kinds
    x2, s2 = x.flip(0) * 0.7, scores.flip(1) * 1.3  # other values, same shapes
    assert _max_diff(traced(x2, s2, mask), m(x2, s2, mask)) == 0.0


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_jit_trace_keeps_working_after_its_table_is_dropped(tables):
    """The trace holds the table's numbers (the op's tensor arguments), not a reference to it."""
    import gc

    held = {"table": tables["gelu"].replace()}  # a table of its own, collected below
    traced = torch.jit.trace(lambda x: lut_activation(x, held["table"]), (torch.randn(5),), check_trace=False)
    x = torch.randn(50) * 4
    want = held["table"](x)
    held.clear()
    gc.collect()
    assert torch.equal(traced(x), want)


def test_modules_holding_tables_survive_deepcopy_pickle_and_save(tables, tmp_path):
    m = AllOps(tables, False)
    x, scores, mask = _inputs(torch.float32)
    ref = m(x, scores, mask)
    for other in (copy.deepcopy(m), pickle.loads(pickle.dumps(m))):
        assert _max_diff(other(x, scores, mask), ref) == 0.0
    torch.save(m, tmp_path / "m.pt")
    loaded = torch.load(tmp_path / "m.pt", weights_only=False)
    assert _max_diff(loaded(x, scores, mask), ref) == 0.0


def test_gradients_flow_through_the_reference_form(tables):
    x = torch.randn(4, 32, requires_grad=True)
    w = torch.ones(32, requires_grad=True)
    y = lut_layernorm(lut_activation(x, tables["gelu"]), (32,), w, None, 1e-5, tables["rsqrt"])
    lut_softmax(y, -1, tables["exp"], tables["reciprocal"]).square().sum().backward()
    assert x.grad is not None and w.grad is not None and bool(torch.isfinite(x.grad).all())
    # the activation's gradient is the slope of the segment each input falls in
    g = tables["gelu"]
    xs = torch.randn(50, requires_grad=True)
    lut_activation(xs, g).sum().backward()
    idx = torch.searchsorted(torch.tensor(g.breakpoints, dtype=torch.float32), xs.detach(), right=True)
    assert torch.equal(xs.grad, torch.tensor(g.slopes, dtype=torch.float32)[idx])


@TORCH_INTERNAL
@pytest.mark.parametrize("backend", ["eager", pytest.param("inductor", marks=pytest.mark.slow)])
def test_compile_of_new_and_swapped_tables(tables, backend):
    # a table first seen inside torch.compile gets its tensors there; a swapped table recompiles
    torch._dynamo.reset()
    holder = {"t": tables["gelu"].replace()}
    f = torch.compile(lambda x: lut_activation(x, holder["t"]), backend=backend, fullgraph=True)
    x = torch.randn(40) * 4
    assert torch.equal(f(x), holder["t"](x))
    holder["t"] = tables["gelu"].replace(slopes=tables["gelu"].slopes * 2)
    assert torch.equal(f(x), holder["t"](x))
