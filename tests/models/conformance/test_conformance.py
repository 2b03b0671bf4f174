"""Every family of ``families.FAMILIES`` on its tiny random-init config, against the original.

- ``method="exact"`` is the identity: the approximated model gives the original's outputs
  (whatever its attention passes: position biases, soft-capping, sliding windows, GQA,
  cross-attention), under the eager and SDPA attention implementations, and ``restore_``
  gives them back bit for bit.
- 16-entry NN-LUT tables on every op stay within cosine 0.999 of the exact model.
- Greedy generation with the KV cache is token-identical under ``exact``, and cached equals
  uncached.
- deepcopy and pickle keep the approximation; bfloat16 models run and stay close.
"""

from __future__ import annotations

import copy
import pickle

import pytest
import torch

import nnlut
from nnlut import ApproxConfig

from .families import FAMILIES, output

pytest.importorskip("transformers")
pytestmark = pytest.mark.models

# exact identity: op order is the original's, so outputs agree to float32 rounding of a few
# reassociated sums (GQA repeats, fused masks); 1e-6 relative to the output's scale
EXACT_RTOL = 1e-6
# NN-LUT-16 on every op: the target on tiny random-init models
NNLUT16_COSINE = 0.999
# bfloat16 (8-bit mantissa) model with tables against the same model exact in bfloat16
BF16_COSINE = 0.99


def _family(name: str, attn: str = "eager"):
    fam = FAMILIES[name]
    why = fam.available(attn)
    if why:
        pytest.skip(why)
    return fam


def _cases():
    return [(n, a) for n, f in FAMILIES.items() for a in f.attn]


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.float() - b.float()).abs().max() / b.float().abs().max().clamp_min(1e-30))


def _cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.float().flatten(1), b.float().flatten(1)
    return float(torch.nn.functional.cosine_similarity(a, b, dim=1).min())


@pytest.mark.parametrize(("name", "attn"), _cases())
def test_exact_method_is_the_identity(name, attn):
    fam = _family(name, attn)
    model, x = fam.build(attn), fam.inputs()
    ref = output(model, x)
    nnlut.approximate_(model, ApproxConfig(method="exact"))
    got = output(model, x)
    assert _rel(got, ref) <= EXACT_RTOL
    nnlut.restore_(model)
    assert torch.equal(output(model, x), ref)
    assert model.config._attn_implementation == attn


@pytest.mark.parametrize("name", list(FAMILIES))
def test_nnlut16_on_every_op_is_close(name):
    fam = _family(name)
    model, x = fam.build("eager"), fam.inputs()
    ref = output(model, x)
    report = nnlut.approximate_(model)
    assert report.replaced
    assert _cosine(output(model, x), ref) >= NNLUT16_COSINE


@pytest.mark.parametrize("name", [n for n, f in FAMILIES.items() if f.kind in ("causal", "seq2seq", "audio")])
def test_greedy_generation_exact_and_cached_equals_uncached(name):
    fam = _family(name)
    model, x = fam.build("sdpa" if "sdpa" in fam.attn else "eager"), fam.inputs()
    x = {k: v for k, v in x.items() if k != "decoder_input_ids"}
    gen = dict(max_new_tokens=6, do_sample=False, min_new_tokens=6, pad_token_id=0)
    with torch.no_grad():
        ref = model.generate(**x, **gen)
        nnlut.approximate_(model, ApproxConfig(method="exact"))
        got = model.generate(**x, **gen)
        uncached = model.generate(**x, **gen, use_cache=False)
    assert torch.equal(got, ref)
    assert torch.equal(uncached, got)
    nnlut.restore_(model)
    nnlut.approximate_(model)
    with torch.no_grad():  # with tables: the cache changes nothing either
        assert torch.equal(model.generate(**x, **gen), model.generate(**x, **gen, use_cache=False))


@pytest.mark.parametrize("name", list(FAMILIES))
def test_deepcopy_and_pickle_keep_the_approximation(name):
    fam = _family(name)
    model, x = fam.build("eager"), fam.inputs()
    nnlut.approximate_(model)
    y = output(model, x)
    for clone in (copy.deepcopy(model), pickle.loads(pickle.dumps(model))):
        assert torch.equal(output(clone, x), y)
        nnlut.restore_(clone)
        assert not torch.equal(output(clone, x), y)  # the clone restores on its own


@pytest.mark.parametrize("name", [n for n in ("bert", "llama", "gemma2", "t5", "whisper") if n in FAMILIES])
def test_bfloat16_models(name):
    fam = _family(name)
    model, x = fam.build("eager", torch.bfloat16), fam.inputs(torch.bfloat16)
    ref = output(model, x)
    nnlut.approximate_(model)
    y = output(model, x)
    assert y.dtype == torch.bfloat16 and bool(torch.isfinite(y).all())
    assert _cosine(y, ref) >= BF16_COSINE
