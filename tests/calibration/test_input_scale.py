"""INT8 tables: calibration chooses each table's power-of-two input scale from the data."""

from __future__ import annotations

import copy
import json
import shutil

import numpy as np
import pytest
import torch
from torch import nn

from nnlut import ApproxConfig, NNLUTError, approximate_, calibrate, load_calibration, save_calibration
from nnlut.calibration._scale import choose_input_scale
from nnlut.core._functions import get_function
from nnlut.fixed import FixedTable, fit_quantized, gqa_format
from nnlut.models._default_tables import fitted_table
from nnlut.ops import approx_modules
from tests.models.conftest import ToyBlock


class ScaledGelu(nn.Module):
    """GELU of ``scale * x``: its inputs span ``scale`` times the data's range."""

    def __init__(self, scale: float) -> None:
        super().__init__()
        self.scale = scale
        self.act = nn.GELU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.scale * x)


def _batches(n: int, seed: int, shape=(32, 64)) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(*shape, generator=g).clamp(-2, 2) for _ in range(n)]


def _chosen_p(model: nn.Module) -> int:
    (table,) = {id(t): t for m in approx_modules(model).values() for t in m.kernel.tables.values()}.values()
    assert isinstance(table, FixedTable)
    return table.fmt.in_frac


def test_wide_inputs_get_a_coarser_scale_and_the_model_gets_closer_to_fp32():
    ps, gains = {}, {}
    for scale in (1.0, 20.0):  # GELU inputs in [-2, 2] and in [-40, 40]
        model = ScaledGelu(scale).eval()
        exact = copy.deepcopy(model)
        approximate_(model, ApproxConfig(number_format="int8"))
        default_p = _chosen_p(model)
        test = _batches(2, seed=1)  # not the calibration data

        def err() -> float:
            with torch.no_grad():
                return sum(float((model(x) - exact(x)).abs().mean()) for x in test)  # noqa: B023

        before = err()
        report = calibrate(model, _batches(2, seed=0))
        ps[scale] = _chosen_p(model)
        gains[scale] = before / err()
        rec = report.tables[0]["input_scale"]
        assert rec["chosen"] == ps[scale] and rec["before"]["P"] == default_p
    assert ps[20.0] < ps[1.0]
    # an input range of +-40 needs a scale that represents it, [-2, 2] the finest that holds it
    assert 127 * 2.0 ** -ps[20.0] >= 32 and ps[1.0] >= 5
    assert gains[1.0] > 1 and gains[20.0] > 1


@pytest.mark.parametrize("function, draw", [
    ("gelu", lambda g, n: np.clip(g.standard_normal(n) * 6, -40, 40)),
    ("exp", lambda g, n: -np.abs(g.standard_normal(n) * 3)),
    ("rsqrt", lambda g, n: np.exp(g.uniform(-6, 6, n))),
])
def test_chosen_scale_is_the_best_on_fresh_data(function, draw):
    g = np.random.default_rng(0)
    source = fitted_table(function, "nnlut", 16, "full")
    samples = draw(g, 20000)  # 5,000 held out: enough to see the few clipped values in the tails
    table, choice = choose_input_scale(source, samples)
    errs = {c["P"]: c["rms"] for c in choice.candidates if c["rms"] is not None}
    assert table.fmt == gqa_format(choice.chosen) and min(errs, key=lambda p: (errs[p], -p)) == choice.chosen
    # the other criterion picks its own argmin over the same candidates
    _, by_mean = choose_input_scale(source, samples, criterion="mean_abs")
    means = {c["P"]: c["mean_abs"] for c in by_mean.candidates if c["mean_abs"] is not None}
    assert by_mean.criterion == "mean_abs" and min(means, key=lambda p: (means[p], -p)) == by_mean.chosen
    # independently: each scale's table fitted on the data's range (representable part), then
    # judged on fresh data from the same distribution against the exact float64 function
    f = get_function(function)
    fresh = draw(g, 100000)
    rel = source.scaling is not None
    lo, hi = samples.min(), samples.max()

    def fresh_rms(t: FixedTable) -> float:
        e = t(fresh) - f(fresh)
        e = e / np.abs(f(fresh)) if rel else e
        return float(np.sqrt(np.mean(e * e)))

    fresh_err = {}
    for p in errs:
        r_lo, r_hi = -128 * 2.0**-p, 127 * 2.0**-p
        rng = None if rel else (max(lo, r_lo), min(hi, r_hi))
        fresh_err[p] = fresh_rms(fit_quantized(source, gqa_format(p), input_range=rng))
    best = min(fresh_err.values())
    # a finite held-out sample may rank two near-equal scales the other way round
    NOISE = 1.1
    assert fresh_rms(table) <= NOISE * best
    assert errs[choice.chosen] <= NOISE * min(errs.values())


def test_fixed_scale_and_other_formats_keep_their_scale():
    model = ScaledGelu(20.0).eval()
    approximate_(model, ApproxConfig(number_format="int8:3"))
    report = calibrate(model, _batches(1, seed=0))
    assert _chosen_p(model) == 3 and "input_scale" not in report.tables[0]


def test_calibrate_takes_the_criterion():
    model = ScaledGelu(20.0).eval()
    approximate_(model, ApproxConfig(number_format="int8"))
    with pytest.raises(NNLUTError, match="input_scale_criterion 'max' is unknown; allowed: rms, mean_abs"):
        calibrate(model, _batches(1, seed=0), input_scale_criterion="max")
    report = calibrate(model, _batches(1, seed=0), input_scale_criterion="mean_abs")
    rec = report.tables[0]["input_scale"]
    assert rec["criterion"] == "mean_abs" and rec["chosen"] == _chosen_p(model)


def test_bad_input_is_one_clear_line():
    source = fitted_table("gelu", "nnlut", 16, "full")
    x = np.random.default_rng(0).standard_normal(500)
    with pytest.raises(NNLUTError, match=r"open INT8 format 'int8', not 'int16'"):
        choose_input_scale(source, x, spec="int16")
    with pytest.raises(NNLUTError, match=r"integers P in \[0, 7\], got \[9\]"):
        choose_input_scale(source, x, candidates=(9,))
    with pytest.raises(NNLUTError, match="only 10 usable samples"):
        choose_input_scale(source, x[:10])
    with pytest.raises(NNLUTError, match="importance has 3 values for 500 samples"):
        choose_input_scale(source, x, np.ones(3))
    with pytest.raises(NNLUTError, match="criterion 'max' is unknown; allowed: rms, mean_abs"):
        choose_input_scale(source, x, criterion="max")
    with pytest.raises(NNLUTError, match=r"no input scale 2\*\*-P, P in \[2, 3\], holds two input codes"):
        choose_input_scale(source, x + 100, candidates=(2, 3))


@pytest.fixture(scope="module")
def calibrated_toy(tmp_path_factory):
    torch.manual_seed(0)
    model = ToyBlock().eval()
    exact = copy.deepcopy(model)
    approximate_(model, ApproxConfig(entries=8, number_format="int8"))
    g = torch.Generator().manual_seed(0)
    data = [torch.randn(4, 7, 16, generator=g) * 4 for _ in range(3)]
    test = [torch.randn(4, 7, 16, generator=g) * 4 for _ in range(2)]
    with torch.no_grad():
        before = [model(x) for x in test]
    report = calibrate(model, data)
    folder = save_calibration(model, tmp_path_factory.mktemp("int8") / "c")
    return model, exact, test, before, report, folder


def test_calibrated_int8_model_is_closer_to_fp32(calibrated_toy):
    model, exact, test, before, report, _ = calibrated_toy
    assert {t["function"] for t in report.tables} == {"gelu", "exp", "reciprocal", "rsqrt"}
    assert all("input_scale" in t for t in report.tables)
    with torch.no_grad():
        ref = [exact(x) for x in test]
        after = [model(x) for x in test]
    err_before = sum(float((b - r).abs().mean()) for b, r in zip(before, ref, strict=True))
    err_after = sum(float((a - r).abs().mean()) for a, r in zip(after, ref, strict=True))
    assert err_after < err_before


def test_save_load_keeps_the_scale_bit_identically(calibrated_toy, tmp_path):
    model, _, test, _, report, folder = calibrated_toy
    manifest = json.loads((folder / "manifest.json").read_text())
    chosen = {t["function"]: t["input_scale"]["chosen"] for t in report.tables}
    module_files = {rel for m in manifest["modules"].values() for rel in m["tables"].values()}
    assert {r["function"]: r["number_format"] for rel, r in manifest["files"].items() if rel in module_files} == {
        f: f"int8:{p}" for f, p in chosen.items()}
    torch.manual_seed(0)
    fresh = ToyBlock().eval()
    load_calibration(fresh, folder)
    loaded = {t.function: t for m in approx_modules(fresh).values() for t in m.kernel.tables.values()}
    assert {f: t.fmt.in_frac for f, t in loaded.items()} == chosen
    assert all(t.meta["input_scale"]["chosen"] == chosen[f] for f, t in loaded.items())
    with torch.no_grad():
        for x in test:
            assert torch.equal(fresh(x), model(x))
    # a manifest that claims another scale than its table file holds is refused
    bad = tmp_path / "bad"
    shutil.copytree(folder, bad)
    rel, rec = next(iter(manifest["files"].items()))
    rec["number_format"] = "int8:0" if rec["number_format"] != "int8:0" else "int8:1"
    (bad / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(NNLUTError, match=f"table file '{rel}' is in number format int8:"):
        load_calibration(ToyBlock().eval(), bad)


def test_cli_refuses_a_bad_format_before_any_work(capsys, tmp_path, monkeypatch):
    import nnlut.eval
    from nnlut.cli import main

    def work(*a, **k):
        raise AssertionError("work started before the arguments were checked")

    monkeypatch.setattr(nnlut.eval, "build_task", work)
    assert main(["calibrate", "--format", "int9", "-o", str(tmp_path / "c")]) != 0
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "unknown number format 'int9'" in err and "int8:P" in err
    assert not (tmp_path / "c").exists()
