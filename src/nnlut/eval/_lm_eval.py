"""Held-out perplexity of a causal LM with approximated ops, against its FP32 self.

Per configuration: perplexity over all positions, its ratio to FP32's with a paired
bootstrap 95% interval over sequences, perplexity of the first 128 positions and of the
positions from 384 on (long context: the causal softmax then spans 384+ keys and its inputs
reach far below zero: the task block records their range under FP32, ``softmax_inputs``).
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
from ..models import ApproxConfig, approximated
from ._dist import all_gather, my_share
from ._evaluate import EvalConfig, dispatch_coverage, head_items
from ._lm import sequence_nll
from ._stats import ratio_ci

SHORT, LONG_FROM = 128, 384


def lm_configs(entries: int = 16, calibrate: int | None = 32) -> list[EvalConfig]:
    """FP32; NN-LUT on SiLU, RMSNorm and softmax alone and together (calibrated too); 8
    entries calibrated and not; linear and exponential mode. ``calibrate`` counts training
    sequences."""
    n = entries
    out = [EvalConfig("fp32", None)] + [EvalConfig(f"nnlut{n}-{op}", ApproxConfig(ops=(op,), entries=n))
                                        for op in ("silu", "rmsnorm", "softmax")]
    out.append(EvalConfig(f"nnlut{n}-all", ApproxConfig(entries=n)))
    if calibrate:
        out.append(EvalConfig(f"nnlut{n}-all-calibrated", ApproxConfig(entries=n), calibrate))
    if n != 8:
        out.append(EvalConfig("nnlut8-all", ApproxConfig(entries=8)))
        if calibrate:
            out.append(EvalConfig("nnlut8-all-calibrated", ApproxConfig(entries=8), calibrate))
    out += [EvalConfig(f"linear{n}-all", ApproxConfig(method="linear", entries=n)),
            EvalConfig(f"exponential{n}-all", ApproxConfig(method="exponential", entries=n))]
    return out


@dataclass
class LMTask:
    """A causal LM, held-out sequences ``test`` (int64, ``(n, length)``), calibration
    sequences ``calib`` and metadata (JSON ``task`` block)."""

    model: Any
    test: torch.Tensor
    calib: torch.Tensor | None
    meta: dict[str, Any]


def _perplexity(nll: np.ndarray) -> float | None:
    """exp(mean NLL); None when there are no positions (sequences too short for a range)."""
    return float(np.exp(nll.mean())) if nll.size else None


class _SoftmaxRange:
    """Observer of the exp table's inputs (scores minus row max) of every softmax."""

    def __init__(self) -> None:
        self.min = 0.0
        self.samples: list[np.ndarray] = []

    def __call__(self, module: Any, inputs: dict[str, torch.Tensor]) -> None:
        x = inputs.get("exp")
        if isinstance(x, tuple):
            x = x[0]
        if x is None:
            return
        x = x.detach().float()
        x = x[torch.isfinite(x) & (x > torch.finfo(x.dtype).min / 2)]  # masked keys are not inputs
        if x.numel():
            self.min = min(self.min, float(x.min()))
            step = max(1, x.numel() // 20000)
            self.samples.append(x.reshape(-1)[::step].numpy())

    def quantile(self, q: float) -> float:
        return float(np.quantile(np.concatenate(self.samples), q)) if self.samples else float("nan")


def _calibrate(task: LMTask, sequences: int, batch_size: int) -> dict[str, Any]:
    from ..calibration import calibrate

    if task.calib is None:
        raise NNLUTError("calibration needs training sequences")
    seqs = task.calib[:sequences]
    batches = [{"input_ids": seqs[b:b + batch_size]} for b in range(0, len(seqs), batch_size)]
    rep = calibrate(task.model, my_share(batches))
    out = rep.as_dict()
    out.update(sequences=len(seqs), tokens=int(seqs.numel()))
    if "train_seconds" in task.meta:
        out["fraction_of_training_time"] = rep.seconds / task.meta["train_seconds"]
    return out


def _token_forward(model: Any, ids: torch.Tensor) -> Any:
    return model(input_ids=ids)


def evaluate_lm(task: LMTask, configs: Sequence[EvalConfig], *, batch_size: int = 8, seed: int = 0) -> dict[str, Any]:
    """Run every configuration (the first must be the exact model) on ``task.test``."""
    if not configs or configs[0].approx is not None:
        raise NNLUTError("the first configuration must be the exact model (approx=None)")
    model = task.model
    results: dict[str, Any] = {"task": task.meta, "configs": {}}
    ref_nll: np.ndarray | None = None
    for ec in configs:
        t0 = time.perf_counter()
        rec: dict[str, Any] = {"config": ec.approx.to_dict() if ec.approx is not None else None}
        with ec.applied(model) as report:
            if report is not None:
                rec["replaced"] = report.counts()
            if ec.approx is not None and ec.calibrate:
                rec["calibration"] = _calibrate(task, ec.calibrate, batch_size)
            nll = sequence_nll(model, task.test, batch_size, desc=ec.name)
            if ec.approx is not None:
                rec["coverage"] = dispatch_coverage(model, _token_forward, head_items(task.test))
        ref_nll = nll if ref_nll is None else ref_nll
        tokens = np.full(nll.shape[0], nll.shape[1], dtype=np.float64)
        rec["perplexity"] = _perplexity(nll)
        rec["delta_perplexity_pct"] = 100 * (rec["perplexity"] / float(np.exp(ref_nll.mean())) - 1)
        lo, hi = ratio_ci(nll.sum(1), ref_nll.sum(1), tokens, seed=seed)
        rec["delta_perplexity_ci_pct"] = [100 * (lo - 1), 100 * (hi - 1)]
        rec["perplexity_first_128"] = _perplexity(nll[:, :SHORT])
        rec["perplexity_from_384"] = _perplexity(nll[:, LONG_FROM:])
        rec["seconds"] = time.perf_counter() - t0
        results["configs"][ec.name] = rec
        logger.info("%s: perplexity %.4f (%+.2f%%)", ec.name, rec["perplexity"], rec["delta_perplexity_pct"])
    return results


@torch.no_grad()
def softmax_inputs(model: Any, seqs: torch.Tensor, batch_size: int = 8) -> dict[str, float]:
    """Range of the exact softmax's inputs after the row max is subtracted, over ``seqs``
    (observed through nnlut's exact softmax; the model is restored afterwards)."""
    from ..ops._modules import ApproxOp

    watch = _SoftmaxRange()
    with approximated(model, ApproxConfig(method="exact", ops=("softmax",))):
        mods = [m for m in model.modules() if isinstance(m, ApproxOp)]
        for m in mods:
            m.observers.append(watch)
        for b in my_share(range(0, seqs.shape[0], batch_size)):
            model(input_ids=seqs[b:b + batch_size])
    parts = all_gather((watch.min, watch.samples))
    watch.min, watch.samples = min(p[0] for p in parts), [x for p in parts for x in p[1]]
    return {"min": watch.min, "q001": watch.quantile(0.001), "q01": watch.quantile(0.01)}


def build_lm_task(seed: int = 0, limit: int | None = None, calibrate: int = 32) -> LMTask:
    """nnlut's byte-level LM (trained and cached on first use), ``limit`` held-out sequences
    (default 64) of its training context and ``calibrate`` random training sequences."""
    from ._lm import VOCAB, LMSettings, chunks, corpora, load_lm

    if limit is not None and limit < 1:
        raise NNLUTError(f"limit must be a positive number of sequences, got {limit}")
    s = LMSettings(seed=seed)
    train, test = corpora(seed)
    model, meta = load_lm(s, train)
    seqs = chunks(test, s.context, 64 if limit is None else limit)
    pool = chunks(train, s.context)
    pick = np.sort(np.random.default_rng(seed).choice(len(pool), size=min(len(pool), max(calibrate, 1)), replace=False))
    info = {"model": "lm", "vocab_size": VOCAB, "parameters": meta["parameters"], "train_seconds": meta["train_seconds"],
            "train_tokens": meta["train_tokens"], "context": s.context, "test_sequences": int(seqs.shape[0]),
            "test_tokens": int(seqs.numel()), "seed": seed,
            "softmax_inputs": softmax_inputs(model, seqs[: min(8, len(seqs))])}
    return LMTask(model, seqs, pool[torch.as_tensor(pick)], info)


def lm_rows(results: dict[str, Any]) -> tuple[list[str], list[list[Any]]]:
    headers = ["config", "perplexity", "Δ ppl %", "Δ 95% CI %", "ppl pos<128", "ppl pos>=384", "calib s", "s"]
    rows = []
    for name, r in results["configs"].items():
        ci = r["delta_perplexity_ci_pct"]
        rows.append([name, r["perplexity"], r["delta_perplexity_pct"], f"[{ci[0]:+.2f}, {ci[1]:+.2f}]",
                     r["perplexity_first_128"], "-" if r["perplexity_from_384"] is None else r["perplexity_from_384"],
                     r.get("calibration", {}).get("seconds", float("nan")), r["seconds"]])
    return headers, rows
