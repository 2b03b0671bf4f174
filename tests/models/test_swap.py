"""approximate_ / restore_: what is replaced, exactness of undo, overrides, errors."""

from __future__ import annotations

import pytest
import torch

import nnlut
from nnlut import ApproxConfig, NNLUTError, approximate_, restore_
from nnlut.ops import ApproxOp, approx_modules
from tests.models.conftest import batch, tiny_hf


def _out(model, inputs):
    with torch.no_grad():
        out = model(**inputs) if isinstance(inputs, dict) else model(inputs)
    return out.last_hidden_state if hasattr(out, "last_hidden_state") else out


def test_toy_swap_and_exact_restore(toy):
    x = torch.randn(2, 5, 16)
    ref = _out(toy, x)
    keys = list(toy.state_dict())
    params = {n: p for n, p in toy.named_parameters()}
    report = approximate_(toy)
    assert report.counts() == {"softmax": 1, "gelu": 1, "layernorm": 1}
    assert isinstance(toy.act, ApproxOp) and isinstance(toy.softmax, ApproxOp) and isinstance(toy.norm, ApproxOp)
    # swaps share the original parameters; each table is three buffers of its module
    tables = [k for k in toy.state_dict() if k not in keys]
    assert [k for k in toy.state_dict() if k in keys] == keys
    assert sorted(tables) == sorted(f"{m}.{r}_{p}" for m, r in (("softmax", "exp"), ("softmax", "reciprocal"),
                                                                 ("act", "act"), ("norm", "rsqrt"))
                                    for p in ("breakpoints", "slopes", "intercepts"))
    assert all(p is params[n] for n, p in toy.named_parameters())
    y = _out(toy, x)
    assert not torch.equal(y, ref) and float((y - ref).abs().max()) < 0.02
    restore_(toy)
    assert torch.equal(_out(toy, x), ref)
    assert isinstance(toy.act, torch.nn.GELU) and not approx_modules(toy)
    assert list(toy.state_dict()) == keys


def test_ops_subset_and_method(toy):
    report = approximate_(toy, ApproxConfig(ops=("gelu",), method="linear", entries=8))
    assert report.counts() == {"gelu": 1}
    assert toy.act.kernel.method == "linear" and toy.act.kernel.tables["act"].entries == 8
    assert isinstance(toy.norm, torch.nn.LayerNorm)


def test_overrides_by_exact_name_regex_and_skip(toy):
    cfg = ApproxConfig(overrides={"norm": None, r"soft.*": ApproxConfig(method="exponential")})
    report = approximate_(toy, cfg)
    assert "norm" in report.skipped and isinstance(toy.norm, torch.nn.LayerNorm)
    assert toy.softmax.kernel.method == "exponential" and toy.act.kernel.method == "nnlut"


def test_errors(toy):
    with pytest.raises(NNLUTError, match="has no rmsnorm; it has: gelu, layernorm, softmax"):
        approximate_(toy, ApproxConfig(ops=("rmsnorm",)))
    with pytest.raises(NNLUTError, match="match no replaced op.*named like"):
        approximate_(toy, ApproxConfig(overrides={"encoder.*": None}))
    assert not approx_modules(toy)  # a failed call leaves the model as it was
    approximate_(toy)
    with pytest.raises(NNLUTError, match="already approximated"):
        approximate_(toy)
    restore_(toy)
    with pytest.raises(NNLUTError, match="nothing to restore"):
        restore_(toy)
    with pytest.raises(NNLUTError, match="nn.Module"):
        approximate_("model")


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"ops": ("gelu", "tanh")}, "unknown op"),
        ({"method": "magic"}, "method 'magic' is unknown"),
        ({"entries": 1}, "entries must be"),
        ({"scaling": "half"}, "scaling 'half'"),
        ({"overrides": {"(": None}}, "not a valid regular expression"),
        ({"overrides": {"x": "linear"}}, "must be an ApproxConfig"),
        ({"ops": ()}, "ops is empty"),
    ],
)
def test_bad_configs(kwargs, match):
    with pytest.raises(NNLUTError, match=match):
        ApproxConfig(**kwargs)


def test_config_json_round_trip():
    from nnlut.models import fitted_table

    cfg = ApproxConfig(ops=("gelu", "softmax"), method="linear", entries=8,
                       overrides={"a.b": None, "x.*": ApproxConfig(entries=4)},
                       tables={"gelu": fitted_table("gelu", "nnlut", 16, "full")})  # shipped: no fit
    back = ApproxConfig.from_dict(__import__("json").loads(cfg.to_json()))
    assert back.to_dict() == cfg.to_dict()
    with pytest.raises(NNLUTError, match="unknown config key"):
        ApproxConfig.from_dict({"method": "nnlut", "colour": 1})
    with pytest.raises(NNLUTError, match="unknown config version"):
        ApproxConfig.from_dict({"version": 7})


def test_shared_and_per_module_tables():
    model = tiny_hf("bert")
    approximate_(model)
    acts = [m for m in approx_modules(model).values() if m.op == "gelu"]
    assert len(acts) == 2 and acts[0].kernel.tables["act"] is acts[1].kernel.tables["act"]
    restore_(model)
    approximate_(model, ApproxConfig(share_tables=False))
    acts = [m for m in approx_modules(model).values() if m.op == "gelu"]
    assert acts[0].kernel.tables["act"] is not acts[1].kernel.tables["act"]
    assert acts[0].kernel.tables["act"] == acts[1].kernel.tables["act"]


def test_user_tables_are_used():
    model = tiny_hf("bert")
    g8 = nnlut.fit("gelu", 8, method="linear")  # any table of the user's: a linear fit is quick
    approximate_(model, ApproxConfig(ops=("gelu",), tables={"gelu": g8}))
    assert all(m.kernel.tables["act"] is g8 for m in approx_modules(model).values())


@pytest.mark.parametrize("kind,attn", [("bert", "eager"), ("bert", "sdpa"), ("roberta", "sdpa"), ("distilbert", "sdpa"),
                                       ("mpnet", "eager"), ("llama", "sdpa")])
def test_hf_models(kind, attn):
    model = tiny_hf(kind, attn)
    inputs = batch(pad=kind != "llama")
    original_impl = getattr(model.config, "_attn_implementation", None)
    ref = _out(model, inputs)
    report = approximate_(model)
    counts = report.counts()
    assert counts.get("softmax") == 2
    if kind == "llama":
        assert counts.get("silu") == 2 and counts.get("rmsnorm") == 5
    else:
        assert counts.get("gelu") == 2 and counts.get("layernorm", 0) >= 4
    y = _out(model, inputs)
    valid = inputs["attention_mask"].bool()
    cos = torch.nn.functional.cosine_similarity(y[valid], ref[valid], dim=-1)
    assert float(cos.min()) > 0.999
    restore_(model)
    assert getattr(model.config, "_attn_implementation", None) == original_impl
    assert torch.equal(_out(model, inputs), ref)


def test_padding_gets_zero_attention():
    model = tiny_hf("bert", "sdpa")
    approximate_(model, ApproxConfig(ops=("softmax",)))
    inputs = batch()
    with torch.no_grad():
        out = model(**inputs, output_attentions=True)
    for att in out.attentions:
        assert torch.all(att[1, :, :, 6:] == 0) and torch.all(att[2, :, :, 3:] == 0)
        assert not torch.isnan(att).any()


def test_ibert_and_exact_methods_on_bert():
    model = tiny_hf("bert")
    inputs = batch()
    ref = _out(model, inputs)
    approximate_(model, ApproxConfig(method="exact"))
    assert torch.allclose(_out(model, inputs), ref, atol=1e-5)  # same plumbing, exact kernels
    restore_(model)
    approximate_(model, ApproxConfig(method="ibert"))
    y = _out(model, inputs)
    valid = inputs["attention_mask"].bool()
    assert float(torch.nn.functional.cosine_similarity(y[valid], ref[valid], dim=-1).min()) > 0.99
    restore_(model)
    with pytest.raises(NNLUTError, match="I-BERT has no integer kernel"):
        approximate_(tiny_hf("llama"), ApproxConfig(method="ibert", ops=("silu",)))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_models(dtype):
    model = tiny_hf("bert", "eager", dtype)
    inputs = batch()
    ref = _out(model, inputs).float()
    approximate_(model)
    y = _out(model, inputs)
    assert y.dtype == dtype
    valid = inputs["attention_mask"].bool()
    assert float(torch.nn.functional.cosine_similarity(y.float()[valid], ref[valid], dim=-1).min()) > 0.99


def test_unknown_rmsnorm_variant_is_left_exact_and_reported():
    class WeirdRMSNorm(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.weight = torch.nn.Parameter(torch.ones(8))
            self.eps = 1e-6

        def forward(self, x):
            return x / (x.abs().mean(-1, keepdim=True) + self.eps) * self.weight

    model = torch.nn.Sequential(torch.nn.Linear(8, 8), WeirdRMSNorm())
    x = torch.randn(4, 8)
    ref = model(x).detach()
    report = approximate_(model)
    assert report.counts() == {}
    (entry,) = report.left_exact
    assert entry["op"] == "WeirdRMSNorm" and "no normalisation nnlut recognises" in entry["why"]
    # not swapped for an RMSNorm: its own forward runs, its division on the reciprocal table
    assert float((model(x).detach() - ref).abs().max()) <= 0.01 * float(ref.abs().max())
    restore_(model)
    assert torch.equal(model(x), ref)


def test_weights_untouched_by_swap_and_forward(toy):
    before = {k: v.clone() for k, v in toy.state_dict().items()}
    approximate_(toy)
    _out(toy, torch.randn(2, 5, 16))
    restore_(toy)
    assert all(torch.equal(before[k], v) for k, v in toy.state_dict().items())


def test_attention_matmuls_per_batch_match_torch_matmul():
    from nnlut.models._attention import _context, _scores

    g = torch.Generator().manual_seed(0)
    hid = torch.randn(3, 7, 4 * 8, generator=g)
    q = hid.view(3, 7, 4, 8).transpose(1, 2)  # the heads-split layout HuggingFace passes
    k = torch.randn(3, 9, 4, 8, generator=g).transpose(1, 2)
    v = torch.randn(3, 9, 4, 8, generator=g).transpose(1, 2)
    with torch.no_grad():
        s = _scores(q, k)
        assert s.is_contiguous() and torch.allclose(s, q @ k.transpose(2, 3), atol=1e-5)
        p = torch.softmax(s, -1)
        c = _context(p, v)
        assert c.shape == (3, 7, 4, 8) and c.is_contiguous()
        assert torch.allclose(c, (p @ v).transpose(1, 2), atol=1e-5)
    s = _scores(q.requires_grad_(), k)  # with autograd: the plain matmul path
    assert s.requires_grad and torch.allclose(s.detach(), q.detach() @ k.transpose(2, 3), atol=1e-5)


def test_streamed_attention_equals_batched_path(monkeypatch):
    # where the fused attention op does not apply (here: turned off; tests/models/
    # test_fused_attention.py covers it), attention without output_attentions runs one batch
    # element at a time (scores in a scratch buffer, softmax in place); with it, over the whole
    # batch, keeping the weights. Both take the same products and rows: equal hidden states.
    # (eager: its additive float mask is one the streamed path takes)
    from nnlut.models import _attention as _hf

    model = tiny_hf("bert", "eager")
    approximate_(model)
    inputs = batch()
    calls = []
    orig = _hf._streamed

    def spy(*a, **k):
        out = orig(*a, **k)
        calls.append(out is not None)
        return out

    monkeypatch.setattr(_hf, "_fused", lambda *a, **k: None)
    monkeypatch.setattr(_hf, "_streamed", spy)
    with torch.no_grad():
        streamed = model(**inputs)
        batched = model(**inputs, output_attentions=True)
    assert calls and all(calls)  # only the first forward asked for the streamed path
    assert streamed.attentions is None and batched.attentions is not None
    assert torch.equal(streamed.last_hidden_state, batched.last_hidden_state)
