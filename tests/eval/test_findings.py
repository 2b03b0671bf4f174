"""Comparison fields and the report's verdict sentences, and reservoirs merged across ranks."""

from __future__ import annotations

import numpy as np
import torch

from nnlut.calibration._observers import Reservoir, merge_across_ranks
from nnlut.eval._evaluate import compare_to_reference, verdict
from nnlut.report._study import model_findings


def _rec(ref: np.ndarray, new: np.ndarray, approx: bool = True) -> dict:
    return {"config": {} if approx else None, "accuracy": float(new.mean()), **compare_to_reference(ref, new)}


def test_findings_separate_a_broken_configuration_from_an_equivalent_one():
    rng = np.random.default_rng(0)
    ref = rng.random(400) < 0.76
    near = ref.copy()
    near[:2] = ~near[:2]  # two flips
    broken = ref.copy()
    broken[rng.choice(400, 60, replace=False)] = False  # up to 60 right answers lost
    res = {"configs": {"fp32": _rec(ref, ref, approx=False), "nnlut16-all": _rec(ref, near),
                       "linear16-all": _rec(ref, broken)}}
    assert verdict(res["configs"]["nnlut16-all"]) == "≈ fp32" and verdict(res["configs"]["linear16-all"]) == "worse"
    text = model_findings(res, 16)
    assert "Linear mode (16 entries) loses accuracy" in text and "NN-LUT (16 entries, all ops) is indistinguishable" in text
    lo, hi = res["configs"]["linear16-all"]["delta_ci_pt"]
    assert hi < 0 and f"[{lo:+.2f}, {hi:+.2f}]" in text


def test_merged_reservoir_is_the_union_of_the_streams():
    a, b = Reservoir(capacity=100, seed=1), Reservoir(capacity=100, seed=2)
    a.add(torch.arange(30, dtype=torch.float64))
    b.add(torch.arange(30, 70, dtype=torch.float64))
    m = Reservoir.merged([a.state(), b.state()])
    assert sorted(m.sample().tolist()) == list(range(70)) and m.count == 70 and (m.min, m.max) == (0, 69)
    small = Reservoir.merged([dict(a.state(), capacity=10), dict(b.state(), capacity=10)])
    keys = torch.cat([a.keys, b.keys])
    assert np.array_equal(np.sort(small.keys.numpy()), np.sort(torch.topk(keys, 10).values.numpy()))
    d = {"x": a}
    merge_across_ranks(d)  # outside torchrun: nothing changes
    assert d["x"] is a


def test_verdict_of_a_loss_whose_interval_ends_at_zero():
    # McNemar tells it from FP32 while the bootstrap interval's upper end rounds to 0.00
    lost = {"indistinguishable": False, "delta_ci_pt": [-0.51, 0.0], "delta_accuracy_pt": -0.26}
    gained = {"indistinguishable": False, "delta_ci_pt": [0.0, 0.4], "delta_accuracy_pt": 0.2}
    assert verdict(lost) == "worse" and verdict(gained) == "better"
