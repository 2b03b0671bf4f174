"""The user's own models and files, the eval command in process, and torchrun with two ranks."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from nnlut import NNLUTError
from nnlut.cli import main

pytest.importorskip("transformers", reason="local models are transformers models")

from nnlut.eval._local import build_causal_task, build_classifier_task, model_kind, read_tsv  # noqa: E402


@pytest.mark.parametrize("content,problem", [
    (b"good film\t1\nno tab here\n", "line 2: expected 'text<TAB>label', found no tab"),
    (b"good film\t1\n\nbad\tneg\n", "line 3: label 'neg' is not an integer class index"),
    (b"good film\t2\n", r"line 1: label 2 is outside 0..1 \(the model has 2 classes\)"),
    (b"\t1\n", "line 1: the text is empty"),
    (b"fine\t0\ncaf\xe9\t1\n", r"line 2: not UTF-8 text \(byte 10\)"),
    (b"\n\n", "no 'text<TAB>label' lines"),
])
def test_bad_tsv_files_name_file_line_and_problem(tmp_path, content, problem):
    f = tmp_path / "d.tsv"
    f.write_bytes(content)
    with pytest.raises(NNLUTError, match=f"d.tsv.*{problem}"):
        read_tsv(f, 2)


def test_tsv_texts_may_contain_tabs_label_is_the_last_field(tmp_path):
    f = tmp_path / "d.tsv"
    f.write_text("a\tb\t1\nc\t0\n")
    texts, labels = read_tsv(f, 2)
    assert texts == ["a\tb", "c"] and labels.tolist() == [1, 0]


def test_model_kind(local_models, tmp_path):
    clf, lm, _, _ = local_models
    assert model_kind(clf) == "classifier" and model_kind(lm) == "causal-lm"
    with pytest.raises(NNLUTError, match="no config.json"):
        model_kind(tmp_path)


def test_local_classifier_accuracy_matches_the_model_run_directly(local_models):
    from nnlut.eval._evaluate import EvalConfig
    from nnlut.eval._logits import evaluate_logits

    clf_dir, _, tsv, _ = local_models
    task = build_classifier_task(str(clf_dir), str(tsv), batch_size=8)
    res = evaluate_logits(task, [EvalConfig("fp32", None)])["configs"]["fp32"]
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(clf_dir)
    model = AutoModelForSequenceClassification.from_pretrained(clf_dir).eval()
    texts, labels = read_tsv(tsv, 2)
    with torch.no_grad():  # one text at a time: no padding at all
        pred = [model(**tok(t, return_tensors="pt")).logits.argmax(-1).item() for t in texts]
    assert res["accuracy"] == pytest.approx(float(np.mean(np.array(pred) == labels)))


def test_local_causal_lm_perplexity_matches_its_own_loss(local_models):
    from nnlut.eval._evaluate import EvalConfig
    from nnlut.eval._lm_eval import evaluate_lm

    _, lm_dir, _, txt = local_models
    task = build_causal_task(str(lm_dir), str(txt), context=32, limit=6)
    ppl = evaluate_lm(task, [EvalConfig("fp32", None)])["configs"]["fp32"]["perplexity"]
    with torch.no_grad():
        loss = task.model(input_ids=task.test, labels=task.test).loss.item()
    assert ppl == pytest.approx(np.exp(loss), rel=1e-5)
    with pytest.raises(NNLUTError, match="context must be in 2..128 tokens for this model, got 4096"):
        build_causal_task(str(lm_dir), str(txt), context=4096)


def test_eval_command_local_classifier_json_and_one_line_errors(local_models, tmp_path, capsys):
    clf_dir, _, tsv, _ = local_models
    out = tmp_path / "r.json"
    assert main(["eval", "--model", str(clf_dir), "--data", str(tsv), "--configs", "linear16-all",
                 "--json", str(out)]) == 0
    r = json.loads(out.read_text())["configs"]["linear16-all"]
    assert set(r) >= {"accuracy", "delta_accuracy_pt", "delta_ci_pt", "mcnemar", "indistinguishable"}
    assert "Δ 95% CI" in capsys.readouterr().out
    bad = tmp_path / "bad.tsv"
    bad.write_text("good\t1\nbad film\n")
    assert main(["eval", "--model", str(clf_dir), "--data", str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "bad.tsv line 2: expected 'text<TAB>label'" in err
    assert main(["eval", "--model", "lm", "--data", str(tsv)]) == 2
    assert "--data goes with a local model folder" in capsys.readouterr().err


def _single(argv: list[str]) -> dict:
    n = torch.get_num_threads()
    torch.set_num_threads(1)  # as each torchrun worker runs (OMP_NUM_THREADS=1)
    try:
        assert main(argv) == 0
    finally:
        torch.set_num_threads(n)
    return json.loads(Path(argv[argv.index("--json") + 1]).read_text())["configs"]


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("torchrun", path=os.path.dirname(sys.executable)) is None, reason="torchrun not installed")
def test_torchrun_two_ranks_give_the_numbers_of_one_process(local_models, tmp_path):
    clf_dir, lm_dir, tsv, txt = local_models
    torchrun = shutil.which("torchrun", path=os.path.dirname(sys.executable))
    env = dict(os.environ, NNLUT_PROGRESS="0", OMP_NUM_THREADS="1",
               PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    cases = {
        "clf": ["--model", str(clf_dir), "--data", str(tsv), "--configs", "linear16-all"],
        # calibration on 2 batches: one per rank, observers merged before the refit
        "lm": ["--model", str(lm_dir), "--data", str(txt), "--context", "32", "--limit", "10", "--calibrate", "10",
               "--configs", "linear16-all", "nnlut8-all-calibrated"],
    }
    for name, args in cases.items():
        one = _single(["eval", *args, "--json", str(tmp_path / f"{name}1.json")])
        two_json = tmp_path / f"{name}2.json"
        res = subprocess.run([torchrun, "--standalone", "--nproc_per_node", "2", "-m", "nnlut", "eval", *args,
                              "--json", str(two_json)], env=env, capture_output=True, text=True, timeout=240)
        assert res.returncode == 0, res.stderr[-2000:]
        two = json.loads(two_json.read_text())["configs"]
        for cfg in one:
            for key in ("accuracy", "perplexity", "delta_ci_pt", "delta_perplexity_ci_pct"):
                if key in one[cfg]:
                    assert two[cfg][key] == one[cfg][key], (name, cfg, key)
