"""Queries whose keys are all masked (padding inside a sliding window) get what the model's own
attention implementation gives them: eager spreads them evenly, SDPA gives zeros."""

from __future__ import annotations

import pytest
import torch

import nnlut

transformers = pytest.importorskip("transformers")


def _model(attn: str):
    cfg = transformers.MistralConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                                     num_key_value_heads=2, intermediate_size=64, vocab_size=100,
                                     max_position_embeddings=64, sliding_window=3)
    torch.manual_seed(0)
    return transformers.MistralForCausalLM._from_config(cfg, attn_implementation=attn).eval()


def _batch():
    ids = torch.randint(3, 97, (2, 10), generator=torch.Generator().manual_seed(1))
    mask = torch.ones_like(ids)
    mask[1, 6:] = 0  # the last queries of row 1 see only padding inside their window
    return {"input_ids": ids, "attention_mask": mask}


@pytest.mark.parametrize("attn", ["eager", "sdpa"])
def test_exact_method_reproduces_fully_masked_queries(attn):
    model, x = _model(attn), _batch()
    with torch.no_grad():
        ref = model(**x).logits
    other = _model("sdpa" if attn == "eager" else "eager")
    with torch.no_grad():
        theirs = other(**x).logits
    pad = ~x["attention_mask"].bool()
    assert (theirs - ref).abs()[pad].max() > 1e-3  # the two implementations do differ there
    nnlut.approximate_(model, nnlut.ApproxConfig(method="exact"))
    with torch.no_grad():
        got = model(**x).logits
    assert (got - ref).abs().max() <= 1e-5 * ref.abs().max()
    nnlut.restore_(model)
    with torch.no_grad():
        assert torch.equal(model(**x).logits, ref)
