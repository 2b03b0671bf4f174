"""Execution modes and accounting on the conformance families: the report names every
non-linear call left exact, unknown attention features are refused up front, and approximated
models compile, export and load in a fresh process."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from torch.overrides import TorchFunctionMode

import nnlut
from nnlut import ApproxConfig, NNLUTError
from nnlut.ops import ApproxOp

from .families import FAMILIES, output

pytest.importorskip("transformers")
pytestmark = pytest.mark.models
ROOT = Path(__file__).resolve().parents[3]

# compiled (inductor) against eager: the same kernels, fused differently: float32 rounding
COMPILE_ATOL = 1e-5
F = torch.nn.functional
_NONLINEAR = {F.gelu: "gelu", F.silu: "silu", F.softmax: "softmax", torch.softmax: "softmax",
              torch.Tensor.softmax: "softmax", F.layer_norm: "layer_norm", torch.rsqrt: "rsqrt",
              torch.Tensor.rsqrt: "rsqrt", torch.tanh: "tanh", torch.Tensor.tanh: "tanh", F.relu: "relu",
              torch.sigmoid: "sigmoid", torch.Tensor.sigmoid: "sigmoid", F.sigmoid: "sigmoid"}


class _Calls(TorchFunctionMode):
    """Records (innermost module path, function) for every non-linear torch call."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.names = {id(m): n for n, m in model.named_modules()}
        self.stack: list[torch.nn.Module] = []
        self.calls: list[tuple[tuple[str, ...], str, bool]] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if func in _NONLINEAR:
            path = tuple(self.names.get(id(m), "?") for m in self.stack)
            self.calls.append((path, _NONLINEAR[func], any(isinstance(m, ApproxOp) for m in self.stack)))
        return func(*args, **(kwargs or {}))


def _traced(model, x):
    calls = _Calls(model)

    def enter(module, args):
        calls.stack.append(module)

    def leave(module, args, out):
        calls.stack.pop()

    pre = torch.nn.modules.module.register_module_forward_pre_hook(enter)
    post = torch.nn.modules.module.register_module_forward_hook(leave)
    try:
        with calls, torch.no_grad():
            model(**x)
    finally:
        pre.remove()
        post.remove()
    return calls.calls


@pytest.mark.parametrize("name", list(FAMILIES))
def test_report_accounts_for_every_nonlinear_call(name):
    fam = FAMILIES[name]
    if fam.available():
        pytest.skip(fam.available())
    model, x = fam.build("eager"), fam.inputs()
    report = nnlut.approximate_(model)
    named = {r["name"] for r in report.left_exact} | {"<model>"}
    missed = [(path[-1] if path else "<model>", fn) for path, fn, inside in _traced(model, x)
              if not inside and not any(p in named for p in (*path, "<model>" if len(path) <= 1 else ""))]
    assert not missed, f"non-linear calls neither replaced nor reported: {sorted(set(missed))}"
    # and what is reported is really there: each named module computes something non-linear
    assert all(r["why"] for r in report.left_exact)


def test_unknown_attention_feature_is_refused_before_any_forward(monkeypatch):
    from transformers.models.llama import modeling_llama

    def eager_with_slopes(module, query, key, value, attention_mask, scaling, dropout=0.0, alibi_slopes=None,
                          **kw):
        raise AssertionError("never called")

    monkeypatch.setattr(modeling_llama, "eager_attention_forward", eager_with_slopes)
    model = FAMILIES["llama"].build("eager")
    with pytest.raises(NNLUTError, match=r"'model.layers.0.self_attn' \(LlamaAttention\) uses alibi_slopes in .*"
                                         r"overrides=\{'model.layers.0.self_attn.softmax': None\}"):
        nnlut.approximate_(model)
    report = nnlut.approximate_(model, ApproxConfig(ops=("rmsnorm", "silu")))
    assert "softmax" not in report.counts()
    assert any(r["op"] == "softmax" and "not in config.ops" in r["why"] for r in report.left_exact)


# one family per process: a second export in the same process trips over table parameter
# caches filled while tracing the first (a kernel-cache limitation, not a model one)
@pytest.mark.parametrize("name", ["t5"])
def test_torch_export(name):
    fam = FAMILIES[name]
    model, x = fam.build("eager"), fam.inputs()
    if fam.kind != "encoder":
        x = {**x, "use_cache": False}
    nnlut.approximate_(model)
    ref = output(model, x)
    program = torch.export.export(model, (), x, strict=False)
    with torch.no_grad():
        got = program.module()(**x)
    got = got.logits if hasattr(got, "logits") else got.last_hidden_state
    assert float((got - ref).abs().max()) <= COMPILE_ATOL


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:`torch.jit.script_method` is deprecated:DeprecationWarning")  # torch's own
@pytest.mark.parametrize("name", ["bert", "phi3"])
def test_torch_compile_inductor_equals_eager(name):
    # phi3 applies its SiLU to a chunk (a non-contiguous view) of the gate-up projection
    fam = FAMILIES[name]
    model, x = fam.build("eager"), fam.inputs()
    nnlut.approximate_(model)
    ref = output(model, x)
    torch._dynamo.reset()
    got = output(torch.compile(model, backend="inductor"), x)
    assert float((got - ref).abs().max()) <= COMPILE_ATOL


def test_torch_save_then_load_in_a_fresh_process(tmp_path):
    fam = FAMILIES["llama"]
    model, x = fam.build("sdpa"), fam.inputs()
    nnlut.approximate_(model)
    torch.save({"model": model, "inputs": x, "out": output(model, x)}, tmp_path / "m.pt")
    script = textwrap.dedent(f"""
        import torch
        from tests.models.conformance.families import output
        d = torch.load({str(tmp_path / 'm.pt')!r}, weights_only=False)
        assert torch.equal(output(d["model"], d["inputs"]), d["out"]), "different output after load"
        import nnlut
        nnlut.restore_(d["model"])
        assert d["model"].config._attn_implementation == "sdpa"
        assert not torch.equal(output(d["model"], d["inputs"]), d["out"])
    """)
    env = {"PYTHONPATH": f"{ROOT / 'src'}:{ROOT}", "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    run = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]


def test_save_pretrained_plus_config_gives_the_approximated_model_back(tmp_path, fitted):
    fam = FAMILIES["bert"]
    model, x = fam.build("sdpa"), fam.inputs()
    cfg = ApproxConfig(entries=16, tables={"gelu": fitted("gelu", 8, method="linear")})
    nnlut.approximate_(model, cfg)
    y = output(model, x)
    model.save_pretrained(tmp_path)
    (tmp_path / "nnlut.json").write_text(cfg.to_json())
    loaded = type(model).from_pretrained(tmp_path).eval()
    assert not torch.equal(output(loaded, x), y)  # from_pretrained alone: the exact model
    nnlut.approximate_(loaded, ApproxConfig.from_json((tmp_path / "nnlut.json").read_text()))
    assert torch.equal(output(loaded, x), y)
