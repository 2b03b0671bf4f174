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
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from .._errors import NNLUTError
from .._logging import logger
from ..models import ApproxConfig, approximate_, restore_
from ..ops._modules import track_errors
from ._classifier import FinetuneSettings, SentenceClassifier, encode_batches, load_classifier, run_model
from ._data import SentimentSet, load_set, split

EXTRA_SETS = ("amazon", "nyt", "tweets")
TRACK_BATCHES = 2


def default_configs(entries: int = 16) -> list[tuple[str, ApproxConfig | None]]:
    n = entries
    return [
        ("fp32", None),
        (f"nnlut{n}-gelu", ApproxConfig(ops=("gelu",), entries=n)),
        (f"nnlut{n}-softmax", ApproxConfig(ops=("softmax",), entries=n)),
        (f"nnlut{n}-layernorm", ApproxConfig(ops=("layernorm",), entries=n)),
        (f"nnlut{n}-all", ApproxConfig(entries=n)),
        (f"nnlut{n}-all-paper", ApproxConfig(entries=n, scaling="paper")),
        (f"linear{n}-all", ApproxConfig(method="linear", entries=n)),
        (f"exponential{n}-all", ApproxConfig(method="exponential", entries=n)),
        ("ibert-gelu", ApproxConfig(method="ibert", ops=("gelu",))),
        ("ibert-all", ApproxConfig(method="ibert")),
    ]


@dataclass
class Task:
    """A classifier, its tokenizer, and the data it is judged on."""

    tokenizer: Any
    classifier: SentenceClassifier
    test: SentimentSet
    extra: dict[str, SentimentSet]
    meta: dict[str, Any]


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
    return {"probe_seconds": time.perf_counter() - t0, "probe_train_sentences": len(train)}


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
    """Load data and the FP32 classifier (fine-tuned and cached, or a linear probe)."""
    if head not in ("finetuned", "probe"):
        raise NNLUTError(f"head must be 'finetuned' or 'probe', got {head!r}")
    if limit is not None and limit < 1:
        raise NNLUTError(f"limit must be a positive number of sentences, got {limit}")
    train, test = split(load_set("movie"), seed)
    extras = {n: load_set(n).limit(limit) for n in EXTRA_SETS} if extra else {}
    if head == "finetuned":
        tok, clf, meta = load_classifier(FinetuneSettings(model=model, seed=seed), train)
    else:
        from ._models import load_encoder

        tok, enc = load_encoder(model)
        clf = SentenceClassifier(enc).eval()
        meta = _probe(tok, clf, train.limit(train_limit), seed)
    meta.update(model=model, head=head, seed=seed, test_sentences=len(test.limit(limit)))
    return Task(tok, clf, test.limit(limit), extras, meta)


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


def evaluate_configs(task: Task, configs: Sequence[tuple[str, ApproxConfig | None]], *,
                     extra_for: Sequence[str] | None = None, batch_size: int = 64) -> dict[str, Any]:
    """Run every configuration; the first must be the exact model (``None``)."""
    if not configs or configs[0][1] is not None:
        raise NNLUTError("the first configuration must be the exact model (None)")
    clf, tok = task.classifier, task.tokenizer
    results: dict[str, Any] = {"task": task.meta, "configs": {}}
    ref: dict[str, Any] = {}
    for name, cfg in configs:
        t0 = time.perf_counter()
        rec: dict[str, Any] = {"config": cfg.to_dict() if cfg is not None else None}
        if cfg is not None:
            rep = approximate_(clf, cfg)
            rec["replaced"] = rep.counts()
        try:
            if cfg is not None:
                with track_errors(clf) as tr:
                    with torch.no_grad():
                        for k, (_, batch) in enumerate(encode_batches(tok, task.test.texts, batch_size, 128)):
                            if k >= TRACK_BATCHES:
                                break
                            clf(**batch)
                rec["per_op"] = _per_op(tr.report())
            out = run_model(clf, tok, task.test, batch_size=batch_size, desc=name)
            labels = task.test.labels[out["index"]]
            pred = out["logits"].argmax(1)
            rec["accuracy"] = float((pred == labels).mean())
            if cfg is None:
                ref["test"] = out
            r = ref["test"]
            rec["delta_accuracy_pt"] = 100 * (rec["accuracy"] - results["configs"]["fp32"]["accuracy"]) if cfg else 0.0
            rec["agreement"] = float((pred == r["logits"].argmax(1)).mean())
            cos = _cosine(out["pooled"], r["pooled"])
            rec["cosine_mean"], rec["cosine_min"] = float(cos.mean()), float(cos.min())
            rec["extra"] = {}
            if task.extra and (extra_for is None or name in extra_for):
                for set_name, data in task.extra.items():
                    o = run_model(clf, tok, data, batch_size=batch_size, desc=f"{name} {set_name}")
                    score = o["logits"][:, 1] - o["logits"][:, 0]
                    rec["extra"][set_name] = {
                        "accuracy": float((o["logits"].argmax(1) == data.labels[o["index"]]).mean()),
                        "pearson": float(np.corrcoef(score, data.scores[o["index"]])[0, 1]),
                    }
        finally:
            if cfg is not None:
                restore_(clf)
        rec["seconds"] = time.perf_counter() - t0
        results["configs"][name] = rec
        logger.info("%s: accuracy %.4f agreement %.4f cosine %.6f", name, rec["accuracy"], rec["agreement"], rec["cosine_mean"])
    return results


def summary_rows(results: dict[str, Any]) -> tuple[list[str], list[list[Any]]]:
    headers = ["config", "accuracy", "Δ acc (pt)", "agreement", "cos mean", "cos min", "gelu err", "softmax err",
               "layernorm err", "s"]
    rows = []
    for name, r in results["configs"].items():
        po = r.get("per_op", {})
        rows.append([name, r["accuracy"], r["delta_accuracy_pt"], r["agreement"], r["cosine_mean"], r["cosine_min"],
                     po.get("gelu", {}).get("max_abs", float("nan")), po.get("softmax", {}).get("max_abs", float("nan")),
                     po.get("layernorm", {}).get("max_abs", float("nan")), r["seconds"]])
    return headers, rows


def extra_rows(results: dict[str, Any]) -> tuple[list[str], list[list[Any]]]:
    headers = ["config"] + [f"{s} {m}" for s in EXTRA_SETS for m in ("acc", "pearson")]
    rows = []
    for name, r in results["configs"].items():
        if not r.get("extra"):
            continue
        row: list[Any] = [name]
        for s in EXTRA_SETS:
            e = r["extra"].get(s, {})
            row += [e.get("accuracy", float("nan")), e.get("pearson", float("nan"))]
        rows.append(row)
    return headers, rows
