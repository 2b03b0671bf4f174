"""Each evaluated configuration runs inside ``nnlut.approximated``: the model is the original
again after it, also when the configuration fails part-way."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from nnlut import ApproxConfig, NNLUTError  # noqa: E402
from nnlut.eval._evaluate import EvalConfig  # noqa: E402
from nnlut.eval._local import build_classifier_task  # noqa: E402
from nnlut.eval._logits import evaluate_logits, run_logits  # noqa: E402
from nnlut.ops import ApproxOp  # noqa: E402


def test_a_failing_configuration_leaves_the_original_model(local_models):
    clf_dir, _, tsv, _ = local_models
    task = build_classifier_task(str(clf_dir), str(tsv), batch_size=8, calibrate_batches=0)
    before = run_logits(task, "before")
    configs = [EvalConfig("fp32", None), EvalConfig("nnlut-calibrated", ApproxConfig(entries=8), calibrate=4)]
    with pytest.raises(NNLUTError, match="needs calibration data"):
        evaluate_logits(task, configs)
    assert not any(isinstance(m, ApproxOp) for m in task.model.modules())
    assert (run_logits(task, "after") == before).all()


def test_each_configuration_is_applied_for_its_run_only(local_models):
    clf_dir, _, tsv, _ = local_models
    task = build_classifier_task(str(clf_dir), str(tsv), batch_size=8)
    before = run_logits(task, "before")
    res = evaluate_logits(task, [EvalConfig("fp32", None), EvalConfig("nnlut4", ApproxConfig(entries=4))])["configs"]
    assert "replaced" not in res["fp32"] and set(res["nnlut4"]["replaced"]) == {"gelu", "layernorm", "softmax"}
    assert not any(isinstance(m, ApproxOp) for m in task.model.modules())
    assert (run_logits(task, "after") == before).all()
