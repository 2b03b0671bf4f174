"""Approximated transformers models run the fused LUT attention op, with the values of the
unfused LUT attention up to the summation order: causal models that ran SDPA (masks None, or
boolean with padding), eager models (float masks), encoders, grouped-query heads, sliding
windows; and never the fused op where it does not apply."""

from __future__ import annotations

import pytest
import torch

import nnlut
from nnlut.kernels import _cpu
from nnlut.models import _attention

from .conftest import batch, tiny_hf

transformers = pytest.importorskip("transformers")
pytestmark = pytest.mark.skipif(not _cpu.available(), reason="fused kernels unavailable")


def _main(out):
    return out.logits if hasattr(out, "logits") else out.last_hidden_state


def _both(model, inputs, monkeypatch):
    """(output with the fused op, output of the unfused path, how many calls were fused)."""
    calls = []
    real = _attention._fused

    def counting(*a, **k):
        out = real(*a, **k)
        calls.append(out is not None)
        return out

    with torch.no_grad():
        monkeypatch.setattr(_attention, "_fused", counting)
        fused = _main(model(**inputs))
        monkeypatch.setattr(_attention, "_fused", lambda *a, **k: None)
        unfused = _main(model(**inputs))
    monkeypatch.setattr(_attention, "_fused", real)
    return fused, unfused, sum(calls)


@pytest.mark.parametrize("kind,attn,pad", [("llama", "sdpa", False), ("llama", "sdpa", True), ("llama", "eager", True),
                                           ("bert", "sdpa", True), ("bert", "eager", False)])
def test_fused_equals_unfused(kind, attn, pad, monkeypatch):
    model = tiny_hf(kind, attn)
    nnlut.approximate_(model)
    if attn == "sdpa":
        assert model.config._attn_implementation == "nnlut_lazy_masks"
    fused, unfused, n = _both(model, batch(pad), monkeypatch)
    assert n > 0
    mask = batch(pad)["attention_mask"].bool()
    # padded positions of an SDPA model are zeroed the same way in both; compare the real tokens
    err = (fused - unfused)[mask].abs().max().item()
    assert err <= 1e-5 * unfused[mask].abs().max().item()


def test_sliding_window_and_exact_method(monkeypatch):
    cfg = transformers.MistralConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                                     intermediate_size=64, vocab_size=100, max_position_embeddings=64, sliding_window=3)
    torch.manual_seed(0)
    model = transformers.MistralForCausalLM._from_config(cfg, attn_implementation="sdpa").eval()
    ids = torch.randint(3, 97, (2, 10), generator=torch.Generator().manual_seed(1))
    x = {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
    with torch.no_grad():
        ref = model(**x).logits
    nnlut.approximate_(model)
    fused, unfused, n = _both(model, x, monkeypatch)
    assert n > 0 and (fused - unfused).abs().max() <= 1e-5 * unfused.abs().max()
    nnlut.restore_(model)
    nnlut.approximate_(model, nnlut.ApproxConfig(method="exact"))  # the exact softmax: never the LUT op
    with torch.no_grad():
        got = model(**x).logits
    assert (got - ref).abs().max() <= 1e-5 * ref.abs().max()
    nnlut.restore_(model)
    with torch.no_grad():
        assert torch.equal(model(**x).logits, ref)


def test_not_fused_where_it_does_not_apply(monkeypatch):
    model = tiny_hf("llama", "sdpa")
    nnlut.approximate_(model)
    with torch.no_grad():
        out = model(**batch(False), output_attentions=True)
    assert out.attentions[0] is not None  # the unfused path gives the weights
    sm = model.layers[0].self_attn.softmax
    sm.track = True
    assert _attention._fused(model.layers[0].self_attn, sm, *(torch.randn(1, 4, 3, 8),) * 3, None, None, 0.0, None,
                             None, False) is None
