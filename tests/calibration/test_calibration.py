"""Calibration: frozen weights, better tables on the observed inputs, files, errors."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import torch

import nnlut
from nnlut import ApproxConfig, NNLUTError, approximate_, calibrate, load_calibration, save_calibration
from nnlut.calibration import Reservoir
from nnlut.ops import approx_modules
from tests.models.conftest import ToyBlock, batch, tiny_hf


def _data(n=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(4, 7, 16, generator=g) * 2 for _ in range(n)]


def _out(model, x):
    with torch.no_grad():
        return model(x)


@pytest.fixture
def toy4():
    torch.manual_seed(0)
    model = ToyBlock().eval()
    approximate_(model, ApproxConfig(entries=4))
    return model


def test_weights_untouched_and_tables_improve(toy4):
    before = {k: v.clone() for k, v in toy4.state_dict().items()}
    exact = copy.deepcopy(toy4)
    nnlut.restore_(exact)
    xs = _data()
    err0 = sum(float((_out(toy4, x) - _out(exact, x)).abs().mean()) for x in xs)
    report = calibrate(toy4, xs)
    after = toy4.state_dict()
    weights = [k for k in before if not k.endswith(("_breakpoints", "_slopes", "_intercepts"))]
    assert weights and all(torch.equal(before[k], after[k]) for k in weights)  # the model stays frozen
    # the refitted tables are the modules' table buffers
    assert any(not torch.equal(before[k], after[k]) for k in before if k not in weights)
    for name, m in nnlut.ops.approx_modules(toy4).items():
        for role, table in m.kernel.tables.items():
            assert torch.equal(after[f"{name}.{role}_slopes"], torch.tensor(table.slopes))
    assert report.batches == len(xs) and {t["function"] for t in report.tables} == {"gelu", "exp", "reciprocal", "rsqrt"}
    for t in report.tables:
        assert t["rms_after"] < t["rms_before"]
    err1 = sum(float((_out(toy4, x) - _out(exact, x)).abs().mean()) for x in xs)
    assert err1 < err0


def test_manifest_round_trip_reproduces_outputs(tmp_path, toy4):
    fresh = copy.deepcopy(toy4)
    nnlut.restore_(fresh)
    calibrate(toy4, _data())
    folder = save_calibration(toy4, tmp_path / "calib")
    manifest = json.loads((folder / "manifest.json").read_text())
    assert set(manifest["modules"]) == {"act", "softmax", "norm"}
    load_calibration(fresh, folder)
    x = torch.randn(3, 5, 16)
    assert torch.equal(_out(fresh, x), _out(toy4, x))


def test_per_module_tables_on_bert(tmp_path):
    model = tiny_hf("bert")
    fresh = copy.deepcopy(model)
    approximate_(model, ApproxConfig(entries=6, share_tables=False))
    rep = calibrate(model, [batch(), batch(pad=False)] * 2)
    assert len([t for t in rep.tables if t["function"] == "gelu"]) == 2  # one per layer
    small = copy.deepcopy(model)
    rep_small = calibrate(small, [batch()])  # 27 tokens: too few LayerNorm samples per module
    assert any("kept unchanged" in n for t in rep_small.tables for n in t["notes"])
    folder = save_calibration(model, tmp_path / "c")
    load_calibration(fresh, folder)
    with torch.no_grad():
        assert torch.equal(fresh(**batch()).last_hidden_state, model(**batch()).last_hidden_state)


def test_domain_extension_is_reported():
    norm = torch.nn.LayerNorm(32)
    model = torch.nn.Sequential(norm)
    approximate_(model, ApproxConfig(ops=("layernorm",), scaling="paper"))  # rsqrt table on [1, 1024]
    xs = [torch.randn(64, 32) * 300 for _ in range(3)]  # variances ~ 9e4, beyond 1024
    report = calibrate(model, xs)
    (rec,) = report.tables
    assert rec["extended"] and rec["domain_after"][1] > 1024 and "extended above" in rec["notes"][0]
    y = _out(model, xs[0])
    with torch.no_grad():
        assert float((y - norm(xs[0])).abs().max()) < 0.05


def test_reservoir_is_bounded_and_uniform():
    r = Reservoir(capacity=1000, seed=0)
    for k in range(20):
        r.add(torch.full((100_000,), float(k)))
    s = r.sample()
    assert len(s) == 1000 and r.count == 2_000_000
    counts = np.bincount(s.astype(int), minlength=20)
    assert counts.min() > 20 and counts.max() < 90  # ~50 each
    r.add(torch.tensor([float("nan"), float("inf")]))
    assert r.nonfinite == 2 and len(r.sample()) == 1000


def test_bad_inputs(tmp_path, toy4):
    with pytest.raises(NNLUTError, match="no calibration data"):
        calibrate(toy4, [])
    plain = ToyBlock()
    with pytest.raises(NNLUTError, match="no approximated ops"):
        calibrate(plain, _data())
    ib = ToyBlock()
    approximate_(ib, ApproxConfig(method="ibert"))
    with pytest.raises(NNLUTError, match="use no tables"):
        calibrate(ib, _data())
    folder = save_calibration(toy4, tmp_path / "c")
    with pytest.raises(NNLUTError, match="manifest.json is missing"):
        load_calibration(ToyBlock(), tmp_path)
    (folder / "manifest.json").write_text("{broken")
    with pytest.raises(NNLUTError, match="not valid JSON"):
        load_calibration(ToyBlock(), folder)
    folder = save_calibration(toy4, tmp_path / "c2")
    m = json.loads((folder / "manifest.json").read_text())
    m["version"] = 9
    (folder / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(NNLUTError, match="unknown version 9"):
        load_calibration(ToyBlock(), folder)
    folder = save_calibration(toy4, tmp_path / "c3")
    next((folder / "tables").iterdir()).unlink()
    with pytest.raises(NNLUTError, match="is missing"):
        load_calibration(ToyBlock(), folder)
    folder = save_calibration(toy4, tmp_path / "c4")
    with pytest.raises(NNLUTError, match="made for another model"):
        load_calibration(tiny_hf("bert"), folder)


def test_save_is_atomic(tmp_path, toy4, monkeypatch):
    from nnlut.core._table import Table

    target = tmp_path / "out"
    save_calibration(toy4, target)
    first = (target / "manifest.json").read_text()

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(Table, "to_dict", boom)  # fails while writing the tables
    with pytest.raises(OSError):
        save_calibration(toy4, target)
    assert (target / "manifest.json").read_text() == first  # the old folder is intact
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no half-written leftovers
    assert approx_modules(toy4)


@pytest.mark.parametrize("number_format", ["int16", "fp16", "int8"])
def test_any_table_kind_calibrates_saves_and_loads(tmp_path, number_format):
    """A model with fixed-point or FP16 tables calibrates, saves its calibration and loads it into
    a fresh exact model with bit-identical outputs; the tables keep their kind."""
    torch.manual_seed(0)
    model = ToyBlock().eval()
    fresh = copy.deepcopy(model)
    approximate_(model, ApproxConfig(entries=8, number_format=number_format))
    kinds = {type(t).__name__ for m in approx_modules(model).values() for t in m.kernel.tables.values()}
    calibrate(model, _data())
    folder = save_calibration(model, tmp_path / "calib")
    loaded = nnlut.load(next((folder / "tables").iterdir()))
    assert type(loaded).__name__ in kinds and type(loaded).__name__ != "Table"
    load_calibration(fresh, folder)
    after = {type(t).__name__ for m in approx_modules(fresh).values() for t in m.kernel.tables.values()}
    assert after == kinds
    x = torch.randn(3, 5, 16)
    assert torch.equal(_out(fresh, x), _out(model, x))
