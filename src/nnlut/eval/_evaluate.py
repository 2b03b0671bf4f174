"""Task accuracy of a model with approximated ops, against its FP32 self.

For each configuration (exact FP32; NN-LUT on each op alone and on all ops; linear and
exponential mode; I-BERT), the model is approximated in place, run on the movie-review test
half (and the other sentiment sets), and restored. Reported per configuration: accuracy, its
change against FP32, prediction agreement with FP32, cosine of the mean-pooled final hidden
states against FP32 (mean and min over sentences), per-op output error (on the first batches)
and, for the extra sets, accuracy and the Pearson correlation of the predicted score (logit
difference) with the human mean scores.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from .._errors import NNLUTError
from .._logging import logger
from ..models import ApproxConfig, ApproxReport, approximated
from ..ops._modules import track_errors
from ._classifier import FinetuneSettings, SentenceClassifier, encode_batches, load_classifier, run_model
from ._data import SentimentSet, load_set, split
from ._dist import my_share
from ._stats import delta_ci, indistinguishable, mcnemar, pearson_ci

EXTRA_SETS = ("amazon", "nyt", "tweets")
TRACK_BATCHES = 2
COVERAGE_ITEMS = 8  # items of the one batch whose forward the coverage trace counts


def head_items(inputs: Any, n: int = COVERAGE_ITEMS) -> Any:
    """The first ``n`` items of a batch (a tensor, or a dict of tensors as a tokenizer gives)."""
    if isinstance(inputs, dict):
        return {k: v[:n] if isinstance(v, torch.Tensor) else v for k, v in inputs.items()}
    return inputs[:n]


def _keywords(model: torch.nn.Module, inputs: dict[str, Any]) -> Any:
    return model(**inputs)


def dispatch_coverage(model: torch.nn.Module, forward: Any, inputs: Any) -> dict[str, Any]:
    """The evaluation JSON's ``coverage``: one forward, ``forward(model, inputs)``, counted at
    the dispatcher (:func:`nnlut.models.trace_coverage`): the share of the data-dependent
    non-linear evaluations that ran on tables, elements on tables / exact / static, and per op
    what ran on tables and what was left exact."""
    from ..models._trace import trace_run

    t0 = time.perf_counter()
    out = trace_run(model, lambda: forward(model, inputs), inputs).summary()
    out["items"] = int(next(t for t in torch.utils._pytree.tree_leaves(inputs) if isinstance(t, torch.Tensor)).shape[0])
    out["seconds"] = time.perf_counter() - t0
    return out


@dataclass
class EvalConfig:
    """A named configuration: ``approx`` None is the exact model; ``calibrate`` is the number
    of (unlabeled) training sentences to calibrate on after approximating, or None."""

    name: str
    approx: ApproxConfig | None
    calibrate: int | None = None

    def applied(self, model: torch.nn.Module) -> AbstractContextManager[ApproxReport | None]:
        """``with ec.applied(model) as report:`` the model as this configuration says for the
        block (:func:`nnlut.approximated`; ``report`` None for the exact model), restored after."""
        return approximated(model, self.approx) if self.approx is not None else nullcontext(None)


def default_configs(entries: int = 16, calibrate: int | None = 528) -> list[EvalConfig]:
    """FP32; NN-LUT on each op alone and on all ops (paper scaling too, calibrated too; INT16,
    INT8 (calibrated too) and FP16 tables); linear and exponential mode; I-BERT's GELU alone and on all ops."""
    n = entries
    configs = [
        EvalConfig("fp32", None),
        EvalConfig(f"nnlut{n}-gelu", ApproxConfig(ops=("gelu",), entries=n)),
        EvalConfig(f"nnlut{n}-softmax", ApproxConfig(ops=("softmax",), entries=n)),
        EvalConfig(f"nnlut{n}-layernorm", ApproxConfig(ops=("layernorm",), entries=n)),
        EvalConfig(f"nnlut{n}-all", ApproxConfig(entries=n)),
        EvalConfig(f"nnlut{n}-all-paper", ApproxConfig(entries=n, scaling="paper")),
    ]
    if calibrate:
        configs.append(EvalConfig(f"nnlut{n}-all-calibrated", ApproxConfig(entries=n), calibrate))
    configs += [EvalConfig(f"nnlut{n}-all-int16", ApproxConfig(entries=n, number_format="int16")),
                EvalConfig(f"nnlut{n}-all-int8", ApproxConfig(entries=n, number_format="int8")),
                EvalConfig(f"nnlut{n}-all-fp16", ApproxConfig(entries=n, number_format="fp16"))]
    if calibrate:  # INT8: calibration also chooses each table's power-of-two input scale
        configs.append(EvalConfig(f"nnlut{n}-all-int8-calibrated", ApproxConfig(entries=n, number_format="int8"),
                                  calibrate))
    configs += [
        EvalConfig(f"linear{n}-all", ApproxConfig(method="linear", entries=n)),
        EvalConfig(f"exponential{n}-all", ApproxConfig(method="exponential", entries=n)),
        EvalConfig("ibert-gelu", ApproxConfig(method="ibert", ops=("gelu",))),
        EvalConfig("ibert-all", ApproxConfig(method="ibert")),
    ]
    return configs


def entry_sweep_configs(entries: tuple[int, ...] = (16, 8, 4), calibrate: int = 528) -> list[EvalConfig]:
    """FP32, then NN-LUT on all ops at each entry count, uncalibrated and calibrated."""
    out = [EvalConfig("fp32", None)]
    for n in entries:
        out += [EvalConfig(f"nnlut{n}-all", ApproxConfig(entries=n)),
                EvalConfig(f"nnlut{n}-all-calibrated", ApproxConfig(entries=n), calibrate)]
    return out


@dataclass
class Task:
    """A classifier, its tokenizer, and the data it is judged on."""

    tokenizer: Any
    classifier: SentenceClassifier
    test: SentimentSet
    extra: dict[str, SentimentSet]
    meta: dict[str, Any]
    train: SentimentSet | None = None


def _probe(tok: Any, clf: SentenceClassifier, train: SentimentSet, seed: int) -> dict[str, Any]:
    """Fit the head as a logistic-regression probe on frozen FP32 embeddings of ``train``."""
    from sklearn.linear_model import LogisticRegression

    t0 = time.perf_counter()
    out = run_model(clf, tok, train, desc="probe embeddings")
    x = out["pooled"] / np.linalg.norm(out["pooled"], axis=1, keepdims=True)
    lr = LogisticRegression(C=10.0, max_iter=2000, random_state=seed).fit(x, train.labels[out["index"]])
    # the head sees unnormalised pooled states: fold the normalisation into a wrapper
    w = torch.tensor(np.stack([-lr.coef_[0], lr.coef_[0]]) / 2, dtype=torch.float32)
    b = torch.tensor([-lr.intercept_[0] / 2, lr.intercept_[0] / 2], dtype=torch.float32)
    clf.head = _NormalisedHead(w, b)
    return {"probe_seconds": time.perf_counter() - t0, "probe_train_sentences": len(train),
            "probe_positive_share": train.positive_share}


class _NormalisedHead(torch.nn.Module):
    def __init__(self, w: torch.Tensor, b: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("w", w)
        self.register_buffer("b", b)
        self.in_features, self.out_features = w.shape[1], w.shape[0]

    def forward(self, p: torch.Tensor) -> torch.Tensor:
        p = p / p.norm(dim=-1, keepdim=True).clamp(min=1e-12)
        return p @ self.w.T + self.b


def build_task(model: str = "minilm", head: str = "finetuned", *, seed: int = 0, limit: int | None = None,
               train_limit: int | None = None, extra: bool = True) -> Task:
    """Load data and the FP32 classifier: ``finetuned`` (fine-tuned on the training half and
    cached), ``probe`` (logistic regression on frozen embeddings of ``train_limit`` training
    sentences) or ``auto`` (the fine-tuned one when cached, else a probe)."""
    if head not in ("finetuned", "probe", "auto"):
        raise NNLUTError(f"head must be 'finetuned', 'probe' or 'auto', got {head!r}")
    if limit is not None and limit < 1:
        raise NNLUTError(f"limit must be a positive number of sentences, got {limit}")
    train, test = split(load_set("movie"), seed)
    if head == "auto":
        from ._classifier import is_cached

        head = "finetuned" if is_cached(FinetuneSettings(model=model, seed=seed), train) else "probe"
    extras = {n: load_set(n).limit(limit, seed) for n in EXTRA_SETS} if extra else {}
    if head == "finetuned":
        tok, clf, meta = load_classifier(FinetuneSettings(model=model, seed=seed), train)
    else:
        from ._models import load_encoder

        tok, enc = load_encoder(model)
        clf = SentenceClassifier(enc).eval()
        meta = _probe(tok, clf, train.limit(train_limit, seed), seed)
    subset = "whole test half" if limit is None or limit >= len(test) else "seeded stratified sample"
    test = test.limit(limit, seed)
    meta.update(model=model, head=head, seed=seed, test_sentences=len(test), positive_share=test.positive_share,
                subset=subset)
    return Task(tok, clf, test, extras, meta, train)


def _per_op(report: dict[str, dict[str, Any]]) -> dict[str, dict[str, float]]:
    by: dict[str, dict[str, float]] = {}
    for rec in report.values():
        d = by.setdefault(rec["op"], {"modules": 0, "max_abs": 0.0, "sum_abs": 0.0, "elements": 0})
        d["modules"] += 1
        d["max_abs"] = max(d["max_abs"], rec["max_abs"])
        d["sum_abs"] += rec["mean_abs"] * rec["elements"] if rec["elements"] else 0.0
        d["elements"] += rec["elements"]
    return {op: {"modules": d["modules"], "max_abs": d["max_abs"],
                 "mean_abs": d["sum_abs"] / d["elements"] if d["elements"] else float("nan")} for op, d in by.items()}


def _cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.sum(a * b, 1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1) + 1e-30)


def evaluate_configs(task: Task, configs: Sequence[EvalConfig], *, extra_for: Sequence[str] | None = None,
                     batch_size: int = 64) -> dict[str, Any]:
    """Run every configuration; the first must be the exact model (``approx`` None)."""
    if not configs or configs[0].approx is not None:
        raise NNLUTError("the first configuration must be the exact model (approx=None)")
    clf, tok = task.classifier, task.tokenizer
    results: dict[str, Any] = {"task": task.meta, "configs": {}}
    ref: dict[str, Any] = {}
    for ec in configs:
        name, cfg = ec.name, ec.approx
        t0 = time.perf_counter()
        rec: dict[str, Any] = {"config": cfg.to_dict() if cfg is not None else None}
        with ec.applied(clf) as rep:
            if rep is not None:
                rec["replaced"] = rep.counts()
            if cfg is not None and ec.calibrate:
                rec["calibration"] = _calibrate(task, ec.calibrate, batch_size)
            if cfg is not None:
                with track_errors(clf) as tr, torch.no_grad():
                    for k, (_, batch) in enumerate(encode_batches(tok, task.test.texts, batch_size, 128)):
                        if k >= TRACK_BATCHES:
                            break
                        clf(**batch)
                rec["per_op"] = _per_op(tr.report())
                _, first = next(iter(encode_batches(tok, task.test.texts[:COVERAGE_ITEMS], COVERAGE_ITEMS, 128)))
                rec["coverage"] = dispatch_coverage(clf, _keywords, first)
            out = run_model(clf, tok, task.test, batch_size=batch_size, desc=name)
            labels = task.test.labels[out["index"]]
            pred = out["logits"].argmax(1)
            rec["accuracy"] = float((pred == labels).mean())
            if cfg is None:
                ref["test"] = out
            r = ref["test"]
            rec.update(compare_to_reference(r["logits"].argmax(1) == labels, pred == labels, seed=task.meta.get("seed", 0)))
            rec["agreement"] = float((pred == r["logits"].argmax(1)).mean())
            cos = _cosine(out["pooled"], r["pooled"])
            rec["cosine_mean"], rec["cosine_min"] = float(cos.mean()), float(cos.min())
            rec["extra"] = {}
            if task.extra and (extra_for is None or name in extra_for):
                for set_name, data in task.extra.items():
                    o = run_model(clf, tok, data, batch_size=batch_size, desc=f"{name} {set_name}")
                    score = o["logits"][:, 1] - o["logits"][:, 0]
                    pearson = float(np.corrcoef(score, data.scores[o["index"]])[0, 1])
                    rec["extra"][set_name] = {
                        "accuracy": float((o["logits"].argmax(1) == data.labels[o["index"]]).mean()),
                        "pearson": pearson, "pearson_ci": list(pearson_ci(pearson, len(score))),
                    }
        rec["seconds"] = time.perf_counter() - t0
        results["configs"][name] = rec
        logger.info("%s: accuracy %.4f agreement %.4f cosine %.6f", name, rec["accuracy"], rec["agreement"], rec["cosine_mean"])
    return results


def _calibrate(task: Task, sentences: int, batch_size: int) -> dict[str, Any]:
    from ..calibration import calibrate

    if task.train is None:
        raise NNLUTError("calibration needs the training half")
    texts = task.train.limit(sentences, task.meta.get("seed", 0)).texts  # unlabeled: only the sentences are read
    batches = my_share(b for _, b in encode_batches(task.tokenizer, texts, batch_size, 128))
    rep = calibrate(task.classifier, batches)
    out = rep.as_dict()
    out["sentences"] = len(texts)
    out["train_fraction"] = len(texts) / len(task.train)
    if "finetune_seconds" in task.meta:
        out["fraction_of_finetune_time"] = rep.seconds / task.meta["finetune_seconds"]
    return out


def compare_to_reference(ref_correct: np.ndarray, new_correct: np.ndarray, seed: int = 0) -> dict[str, Any]:
    """JSON fields comparing per-item correctness (bool arrays, shape ``(n,)``) with the
    reference's: ``delta_accuracy_pt``, its paired-bootstrap 95% interval ``delta_ci_pt``,
    McNemar's test and whether the two are ``indistinguishable``."""
    ci = delta_ci(ref_correct, new_correct, seed=seed)
    test = mcnemar(ref_correct, new_correct)
    return {"delta_accuracy_pt": 100.0 * float(np.mean(new_correct) - np.mean(ref_correct)), "delta_ci_pt": list(ci),
            "mcnemar": {"gained": test.gained, "lost": test.lost, "p_exact": test.p_exact, "p_mid": test.p_mid},
            "indistinguishable": indistinguishable(ci, test)}


def format_ci(ci: list[float] | tuple[float, float]) -> str:
    return f"[{ci[0]:+.2f}, {ci[1]:+.2f}]"


def verdict(r: dict[str, Any]) -> str:
    """'≈ fp32' when a configuration cannot be told from the reference, else 'worse'/'better'."""
    if r.get("indistinguishable", True):
        return "≈ fp32"
    lo, hi = r["delta_ci_pt"]
    return "worse" if lo + hi < 0 else "better"  # an interval ending at 0.00 is still a loss


def summary_rows(results: dict[str, Any]) -> tuple[list[str], list[list[Any]]]:
    headers = ["config", "accuracy", "Δ acc (pt)", "Δ 95% CI", "McNemar p", "vs fp32", "agreement", "cos mean",
               "cos min", "gelu err", "softmax err", "layernorm err", "calib s", "s"]
    rows = []
    for name, r in results["configs"].items():
        po = r.get("per_op", {})
        rows.append([name, r["accuracy"], r["delta_accuracy_pt"], format_ci(r["delta_ci_pt"]), r["mcnemar"]["p_mid"],
                     "-" if r["config"] is None else verdict(r), r["agreement"], r["cosine_mean"], r["cosine_min"],
                     po.get("gelu", {}).get("max_abs", float("nan")), po.get("softmax", {}).get("max_abs", float("nan")),
                     po.get("layernorm", {}).get("max_abs", float("nan")),
                     r.get("calibration", {}).get("seconds", float("nan")), r["seconds"]])
    return headers, rows


def extra_rows(results: dict[str, Any]) -> tuple[list[str], list[list[Any]]]:
    headers = ["config"] + [f"{s} {m}" for s in EXTRA_SETS for m in ("acc", "pearson", "95% CI")]
    rows = []
    for name, r in results["configs"].items():
        if not r.get("extra"):
            continue
        row: list[Any] = [name]
        for s in EXTRA_SETS:
            e = r["extra"].get(s, {})
            ci = e.get("pearson_ci")
            row += [e.get("accuracy", float("nan")), e.get("pearson", float("nan")),
                    f"[{ci[0]:.3f}, {ci[1]:.3f}]" if ci else "-"]
        rows.append(row)
    return headers, rows
