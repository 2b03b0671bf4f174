"""The decoder LM, the digits ViT and the generic evaluators, on tiny models (seconds)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from nnlut import NNLUTError
from nnlut.models import ApproxConfig

pytest.importorskip("transformers", reason="the evaluation models are transformers models")

from nnlut.eval._evaluate import EvalConfig  # noqa: E402
from nnlut.eval._lm import LMSettings, build_model, chunks, encode, sequence_nll, train_lm  # noqa: E402
from nnlut.eval._lm_eval import LMTask, evaluate_lm, lm_configs, softmax_inputs  # noqa: E402
from nnlut.eval._logits import evaluate_logits  # noqa: E402
from nnlut.eval._vit import ViTSettings, build_vit_task, digits  # noqa: E402

TINY_LM = LMSettings(layers=2, hidden=32, heads=2, intermediate=64, context=48, batch=4, steps=40, lr=1e-2)
TINY_VIT = ViTSettings(layers=1, hidden=32, heads=2, intermediate=64, epochs=6, lr=5e-3)
# an NN-LUT-16 model's perplexity / accuracy against FP32: tables err by ~1e-3 of each op's output
PPL_REL_TOL = 0.01


def test_lm_architecture_is_llama_style():
    m = build_model(LMSettings())
    kinds = {type(x).__name__ for x in m.modules()}
    assert {"LlamaRMSNorm", "LlamaRotaryEmbedding", "LlamaMLP"} <= kinds
    assert m.config.hidden_act == "silu" and m.config.num_hidden_layers >= 4 and m.config.vocab_size == 256


def test_sequence_nll_matches_the_models_own_loss():
    model = build_model(TINY_LM).eval()
    seqs = torch.randint(0, 256, (5, TINY_LM.context), generator=torch.Generator().manual_seed(1))
    nll = sequence_nll(model, seqs, batch_size=2)
    assert nll.shape == (5, TINY_LM.context - 1)
    with torch.no_grad():
        ref = model(input_ids=seqs, labels=seqs).loss.item()  # transformers' mean next-token cross entropy
    assert nll.mean() == pytest.approx(ref, rel=1e-5)


def test_training_learns_a_repetitive_text():
    text = encode("the cat sat on the mat. " * 200)
    model = build_model(TINY_LM)
    meta = train_lm(model, text, TINY_LM)
    nll = sequence_nll(model, chunks(text, TINY_LM.context, 8))
    freq = np.bincount(text, minlength=256) / len(text)
    unigram = math.exp(-np.sum(freq[freq > 0] * np.log(freq[freq > 0])))  # best context-free guess
    assert math.exp(nll.mean()) < 0.8 * unigram
    assert meta["train_seconds"] > 0 and meta["tokens_seen"] == 40 * 4 * 48


def test_lm_settings_are_validated():
    with pytest.raises(NNLUTError, match="hidden size 30 must split into 4 heads"):
        LMSettings(hidden=30, heads=4)
    with pytest.raises(NNLUTError, match="steps must be a positive integer, got 0"):
        LMSettings(steps=0)


@pytest.mark.slow
def test_evaluate_lm_replaces_every_op_and_reports_intervals():
    text = encode("the cat sat on the mat. a dog ran in the fog. " * 60)
    model = build_model(TINY_LM)
    train_lm(model, text, TINY_LM)
    seqs = chunks(text, TINY_LM.context, 12)
    task = LMTask(model, seqs, seqs[:4], {"model": "tiny"})
    names = ["fp32", "nnlut16-all", "nnlut16-all-calibrated", "linear16-all"]
    res = evaluate_lm(task, [c for c in lm_configs(16, 4) if c.name in names])["configs"]
    assert res["fp32"]["delta_perplexity_ci_pct"] == [0.0, 0.0]
    assert res["nnlut16-all"]["replaced"] == {"silu": 2, "rmsnorm": 5, "softmax": 2}
    for name in ("nnlut16-all", "nnlut16-all-calibrated"):
        assert res[name]["perplexity"] == pytest.approx(res["fp32"]["perplexity"], rel=PPL_REL_TOL)
        lo, hi = res[name]["delta_perplexity_ci_pct"]
        assert lo <= res[name]["delta_perplexity_pct"] + 1e-9 and res[name]["delta_perplexity_pct"] <= hi + 1e-9
    assert abs(res["linear16-all"]["delta_perplexity_pct"]) > abs(res["nnlut16-all"]["delta_perplexity_pct"])
    assert model.config.num_hidden_layers == 2 and not any("Approx" in type(m).__name__ for m in model.modules())
    sm = softmax_inputs(model, seqs[:2])
    assert -1e4 < sm["min"] <= sm["q001"] <= sm["q01"] <= 0.0  # masked keys are not counted


@pytest.mark.slow
def test_vit_on_digits_trains_caches_and_evaluates(tmp_path, monkeypatch):
    monkeypatch.setenv("NNLUT_CACHE", str(tmp_path))
    xtr, ytr, xte, yte = digits(0)
    assert xtr.shape[1:] == (1, 8, 8) and len(ytr) + len(yte) == 1797
    assert np.abs(np.bincount(ytr) - np.bincount(yte)).max() <= 1  # stratified halves
    task = build_vit_task(0, limit=300, settings=TINY_VIT)
    again = build_vit_task(0, limit=300, settings=TINY_VIT)  # from the cache
    assert again.meta["train_seconds"] == task.meta["train_seconds"]
    configs = [EvalConfig("fp32", None), EvalConfig("nnlut16-all", ApproxConfig(entries=16)),
               EvalConfig("linear16-all", ApproxConfig(method="linear", entries=16))]
    res = evaluate_logits(task, configs)["configs"]
    with torch.no_grad():
        direct = np.concatenate([task.model(pixel_values=x).logits.argmax(1).numpy() for _, x in task.batches])
    assert res["fp32"]["accuracy"] == pytest.approx(float(np.mean(direct == task.labels)))
    assert res["fp32"]["accuracy"] > 0.5  # ten classes: chance is 0.1
    assert res["nnlut16-all"]["replaced"] == {"gelu": 1, "softmax": 1, "layernorm": 3}
    assert res["nnlut16-all"]["agreement"] > 0.97
    lo, hi = res["nnlut16-all"]["delta_ci_pt"]
    assert lo <= res["nnlut16-all"]["delta_accuracy_pt"] <= hi
