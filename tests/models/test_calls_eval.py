"""The evaluation result records what the evaluated model ran on tables: the dispatch-level
coverage of one batch, with the exact work left per op."""

from __future__ import annotations

import pytest
import torch

from nnlut.models import ApproxConfig

pytest.importorskip("transformers")

from nnlut.cli._eval import _coverage_lines  # noqa: E402
from nnlut.eval._evaluate import COVERAGE_ITEMS, EvalConfig  # noqa: E402
from nnlut.eval._lm import LMSettings, build_model  # noqa: E402
from nnlut.eval._lm_eval import LMTask, evaluate_lm  # noqa: E402
from nnlut.eval._logits import LogitsTask, evaluate_logits  # noqa: E402

LM = LMSettings(layers=2, hidden=32, heads=2, intermediate=64, context=24, batch=4, steps=1)
CONFIGS = [EvalConfig("fp32", None), EvalConfig("all", ApproxConfig()),
           EvalConfig("softmax-modules", ApproxConfig(ops=("softmax",), calls=False))]


def test_lm_evaluation_records_the_coverage_of_one_batch():
    torch.manual_seed(0)
    model = build_model(LM).eval()
    seqs = torch.randint(0, 256, (10, LM.context), generator=torch.Generator().manual_seed(0))
    res = evaluate_lm(LMTask(model, seqs, seqs[:4], {"model": "tiny"}), CONFIGS)["configs"]
    assert "coverage" not in res["fp32"]
    full = res["all"]["coverage"]
    assert full["coverage"] == 1.0 and full["exact_elements"] == 0 and full["exact_by_op"] == {}
    assert full["items"] == COVERAGE_ITEMS and full["table_elements"] > 0
    # softmax modules only: the SiLU and every RMSNorm's rsqrt are left exact, counted as
    # arithmetic gives them (8 sequences of 24 tokens; 2 layers of 64 SiLUs; 2 norms a layer + 1)
    part = res["softmax-modules"]["coverage"]
    tokens = COVERAGE_ITEMS * LM.context
    assert part["exact_by_op"] == {"silu": tokens * LM.intermediate * LM.layers, "rsqrt": tokens * (2 * LM.layers + 1)}
    softmax = COVERAGE_ITEMS * LM.heads * LM.context * LM.context * LM.layers  # one exp per score
    assert part["table_elements"] == softmax
    assert part["coverage"] == pytest.approx(softmax / (softmax + sum(part["exact_by_op"].values())))
    assert part["exact_sites"] == sorted({f"model.layers.{i}.{m}" for i in range(2) for m in (
        "mlp.act_fn", "input_layernorm", "post_attention_layernorm")} | {"model.norm"})
    # what nnlut eval prints
    (line,) = _coverage_lines({"configs": res})
    silu = tokens * LM.intermediate * LM.layers
    assert f"one batch of {COVERAGE_ITEMS}" in line and "all 100.00%" in line
    assert f"softmax-modules {part['coverage']:.2%} (exact: silu {silu}, rsqrt " in line


def test_logits_evaluation_records_coverage_with_the_tasks_own_forward():
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    model = transformers.ViTForImageClassification(transformers.ViTConfig(
        hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64, image_size=8, patch_size=4,
        num_channels=1, num_labels=3)).eval()
    g = torch.Generator().manual_seed(0)
    batches = [(torch.arange(12), torch.randn(12, 1, 8, 8, generator=g))]
    task = LogitsTask(model, lambda m, x: m(pixel_values=x).logits, batches, torch.randint(0, 3, (12,)).numpy(),
                      {"model": "tiny vit"})
    res = evaluate_logits(task, CONFIGS[:2])["configs"]
    cov = res["all"]["coverage"]
    assert cov["coverage"] == 1.0 and cov["items"] == COVERAGE_ITEMS
    # 8 images of 4 patches + the class token, one layer: GELU on 5 x 64 values each
    assert cov["table_by_op"]["pwl:gelu"] == COVERAGE_ITEMS * 5 * 64
