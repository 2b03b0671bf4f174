"""Accuracy of any classifier given as batches of inputs and a forward function.

Used by the vision model and by the user's own sequence classifiers: each configuration is
applied in place, every batch is run (each ``torchrun`` rank its share), per-item correctness
is compared with FP32's (paired bootstrap interval, McNemar's test) and the model is restored.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from .._errors import NNLUTError
from .._logging import logger, progress
from ._dist import all_gather, my_share
from ._evaluate import EvalConfig, compare_to_reference, dispatch_coverage, head_items


@dataclass
class LogitsTask:
    """``batches``: (item indices int64 ``(b,)``, model inputs) pairs covering ``labels``
    (int64 ``(n,)``) once; ``forward(model, inputs)`` returns logits ``(b, classes)``;
    ``calib``: unlabeled input batches for calibrated configurations; ``meta``: JSON task block."""

    model: nn.Module
    forward: Callable[[nn.Module, Any], torch.Tensor]
    batches: list[tuple[np.ndarray, Any]]
    labels: np.ndarray
    meta: dict[str, Any]
    calib: list[Any] = field(default_factory=list)


@torch.no_grad()
def run_logits(task: LogitsTask, desc: str = "inference") -> np.ndarray:
    """Logits of every item, float32 ``(n, classes)``, gathered from all ranks."""
    mine = list(my_share(task.batches))
    local = [(idx, task.forward(task.model, inputs).float().numpy()) for idx, inputs in progress(mine, desc=desc)]
    parts = [p for rank_parts in all_gather(local) for p in rank_parts]
    if not parts:
        raise NNLUTError("no data to evaluate")
    out = np.zeros((len(task.labels), parts[0][1].shape[1]), dtype=np.float32)
    for idx, logits in parts:
        out[idx] = logits
    return out


def evaluate_logits(task: LogitsTask, configs: Sequence[EvalConfig], *, seed: int = 0) -> dict[str, Any]:
    """Accuracy per configuration with its change against FP32 (the first configuration)."""
    from ..calibration import calibrate

    if not configs or configs[0].approx is not None:
        raise NNLUTError("the first configuration must be the exact model (approx=None)")
    results: dict[str, Any] = {"task": task.meta, "configs": {}}
    ref_pred: np.ndarray | None = None
    for ec in configs:
        t0 = time.perf_counter()
        rec: dict[str, Any] = {"config": ec.approx.to_dict() if ec.approx is not None else None}
        with ec.applied(task.model) as report:
            if report is not None:
                rec["replaced"] = report.counts()
            if ec.approx is not None and ec.calibrate:
                if not task.calib:
                    raise NNLUTError(f"configuration {ec.name} needs calibration data, and the task has none")
                rep = calibrate(task.model, my_share(task.calib[: ec.calibrate]))
                rec["calibration"] = rep.as_dict() | {"batches_offered": min(ec.calibrate, len(task.calib))}
            pred = run_logits(task, ec.name).argmax(1)
            if ec.approx is not None:
                rec["coverage"] = dispatch_coverage(task.model, task.forward, head_items(task.batches[0][1]))
        ref_pred = pred if ref_pred is None else ref_pred
        rec["accuracy"] = float(np.mean(pred == task.labels))
        rec.update(compare_to_reference(ref_pred == task.labels, pred == task.labels, seed=seed))
        rec["agreement"] = float(np.mean(pred == ref_pred))
        rec["seconds"] = time.perf_counter() - t0
        results["configs"][ec.name] = rec
        logger.info("%s: accuracy %.4f", ec.name, rec["accuracy"])
    return results


def logits_rows(results: dict[str, Any]) -> tuple[list[str], list[list[Any]]]:
    from ._evaluate import format_ci, verdict

    headers = ["config", "accuracy", "Δ acc (pt)", "Δ 95% CI", "McNemar p", "vs fp32", "agreement", "calib s", "s"]
    rows = []
    for name, r in results["configs"].items():
        rows.append([name, r["accuracy"], r["delta_accuracy_pt"], format_ci(r["delta_ci_pt"]), r["mcnemar"]["p_mid"],
                     "-" if r["config"] is None else verdict(r), r["agreement"],
                     r.get("calibration", {}).get("seconds", float("nan")), r["seconds"]])
    return headers, rows
