"""Calibration of the tables that a model's own non-linear calls read: observed per call site,
refit as module tables are, saved and restored by site name."""

from __future__ import annotations

import copy
import json

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from nnlut import ApproxConfig, NNLUTError, approximate_, calibrate, load_calibration, save_calibration
from nnlut.models._calls import of_model

transformers = pytest.importorskip("transformers")


def _tokens(n: int, seed: int) -> list[dict[str, torch.Tensor]]:
    g = torch.Generator().manual_seed(seed)
    return [{"input_ids": torch.randint(0, 120, (2, 16), generator=g)} for _ in range(n)]


def _error(model: nn.Module, exact: nn.Module, batches: list[dict[str, torch.Tensor]]) -> float:
    """Mean absolute logit error against the original model (float32, no nnlut)."""
    with torch.no_grad():
        return sum(float((model(**b).logits - exact(**b).logits).abs().mean()) for b in batches)


def _mamba() -> nn.Module:
    torch.manual_seed(0)  # exp(dt * A), softplus and silu called as functions in the mixer
    return transformers.MambaForCausalLM(transformers.MambaConfig(
        hidden_size=32, num_hidden_layers=2, vocab_size=120, state_size=8, intermediate_size=64)).eval()


def _gemma2() -> nn.Module:
    torch.manual_seed(0)  # tanh soft-capping of attention and final logits
    return transformers.Gemma2ForCausalLM(transformers.Gemma2Config(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, head_dim=8,
        intermediate_size=64, vocab_size=120, attn_implementation="eager")).eval()


MIXER_SITES = [f"backbone.layers.{i}.mixer#{c}" for i in (0, 1) for c in ("exp", "silu", "softplus")]


def test_mamba_mixer_call_tables_are_refit_per_site_and_round_trip(tmp_path):
    model = _mamba()
    exact = copy.deepcopy(model)
    approximate_(model, ApproxConfig(entries=4, share_tables=False))
    mode = of_model(model)
    before = dict(mode.tables)
    test = _tokens(2, seed=1)
    err_uncalibrated = _error(model, exact, test)

    report = calibrate(model, _tokens(4, seed=0))

    # every mixer call site got its own tables, refit on what it saw; the common ones are kept
    assert sorted(mode.site_tables) == MIXER_SITES
    assert {f for own in mode.site_tables.values() for f in own} == {"exp", "sigmoid", "softplus"}
    assert all(mode.tables[f] is before[f] for f in before)
    for site, own in mode.site_tables.items():
        for f, table in own.items():
            assert table != before[f], (site, f)
    records = {r["modules"][0]: r for r in report.tables if "#" in r["modules"][0]}
    assert sorted(records) == MIXER_SITES
    assert all(r["rms_after"] < r["rms_before"] and r["samples"] >= 64 for r in records.values())

    # the call tables' refit is what brings the error down, measured against the original model
    err_calibrated = _error(model, exact, test)
    mode.site_tables, refit = {}, mode.site_tables
    err_modules_only = _error(model, exact, test)  # module tables calibrated, call tables as fitted
    mode.site_tables = refit
    assert err_calibrated < 0.7 * err_modules_only
    assert err_calibrated < 0.7 * err_uncalibrated

    folder = save_calibration(model, tmp_path / "calib")
    manifest = json.loads((folder / "manifest.json").read_text())
    assert sorted(manifest["calls"]["sites"]) == MIXER_SITES
    fresh = copy.deepcopy(exact)
    load_calibration(fresh, folder)
    with torch.no_grad():
        for b in test:
            assert torch.equal(fresh(**b).logits, model(**b).logits)
    assert sorted(of_model(fresh).site_tables) == MIXER_SITES


def test_gemma2_soft_capping_table_is_refit_on_its_inputs(tmp_path):
    model = _gemma2()
    exact = copy.deepcopy(model)
    approximate_(model, ApproxConfig(entries=4))  # shared tables: one tanh table for every cap
    mode = of_model(model)
    tanh_before = mode.tables["tanh"]
    test = _tokens(2, seed=1)
    report = calibrate(model, _tokens(4, seed=0))
    record = next(r for r in report.tables if r["function"] == "tanh")
    assert record["modules"] == ["<model>#tanh", "model.layers.0.self_attn#tanh", "model.layers.1.self_attn#tanh"]
    assert record["rms_after"] < record["rms_before"]
    assert mode.tables["tanh"] != tanh_before and not mode.site_tables
    err_calibrated = _error(model, exact, test)
    refit = mode.tables
    mode.tables = {**refit, "tanh": tanh_before}
    err_old_tanh = _error(model, exact, test)  # every other table calibrated, the cap's as fitted
    mode.tables = refit
    assert err_calibrated < err_old_tanh


class _CallsOnly(nn.Module):
    """No module nnlut replaces: soft-capping and an inline softmax written as calls."""

    def __init__(self) -> None:
        super().__init__()
        self.proj = nn.Linear(8, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.proj(x)
        return F.softmax(torch.tanh(h / 3.0) * 3.0, dim=-1)


def _data(n: int = 4, seed: int = 0) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(16, 8, generator=g) * 3 for _ in range(n)]


def test_a_model_whose_only_tables_are_call_tables_calibrates_and_round_trips(tmp_path):
    torch.manual_seed(0)
    model = _CallsOnly().eval()
    exact = copy.deepcopy(model)
    approximate_(model, ApproxConfig(entries=4, share_tables=False, overrides={"<model>#tanh": None}))
    report = calibrate(model, _data())
    sites = sorted(u for r in report.tables for u in r["modules"])
    assert sites == ["<model>#softmax", "<model>#softmax"]  # the exp and the reciprocal table
    assert sorted(of_model(model).site_tables["<model>#softmax"]) == ["exp", "reciprocal"]
    folder = save_calibration(model, tmp_path / "calib")
    fresh = copy.deepcopy(exact)
    load_calibration(fresh, folder)
    x = torch.randn(5, 8)
    with torch.no_grad():
        assert torch.equal(fresh(x), model(x))
        # the override that left the tanh exact is kept: tanh exact, only the softmax on tables
        h = exact.proj(x)
        assert torch.allclose(fresh(x), F.softmax(torch.tanh(h / 3.0) * 3.0, dim=-1), atol=2e-2)
    assert "<model>#tanh" in json.loads((folder / "manifest.json").read_text())["calls"]["exact"]


@pytest.mark.parametrize("edit, match", [
    (lambda c: c.update(kinds=["softmax", "cube"]), "unknown call kind"),
    (lambda c: c["tables"].update(exp=c["tables"]["reciprocal"]), "needs a exp table"),
    (lambda c: c["tables"].pop("reciprocal"), "need tables for reciprocal"),
    (lambda c: c["sites"]["<model>#softmax"].update(exp="tables/none.json"), "not a table file"),
    (lambda c: c.update(method="ibert"), "unknown method"),
])
def test_a_bad_calls_entry_is_refused_in_one_line(tmp_path, edit, match):
    torch.manual_seed(0)
    model = _CallsOnly().eval()
    approximate_(model, ApproxConfig(entries=4, share_tables=False))
    calibrate(model, _data())
    folder = save_calibration(model, tmp_path / "calib")
    path = folder / "manifest.json"
    manifest = json.loads(path.read_text())
    edit(manifest["calls"])
    path.write_text(json.dumps(manifest))
    with pytest.raises(NNLUTError, match=match) as e:
        load_calibration(_CallsOnly().eval(), folder)
    assert "\n" not in str(e.value)


def test_a_softmax_calls_exp_inputs_are_weighted_as_a_softmax_modules():
    torch.manual_seed(0)
    model = _CallsOnly().eval()
    approximate_(model, ApproxConfig(entries=4, overrides={"<model>#tanh": None}))
    mode = of_model(model)
    seen = []
    mode.observer = lambda site, f, x, importance=None: seen.append((site, f, x.clone(), importance))
    x = torch.randn(5, 8)
    with torch.no_grad():
        model(x)
    mode.observer = None
    (site, f, z, w), (_, g, s, none) = seen
    assert (site, f, g, none) == ("<model>#softmax", "exp", "reciprocal", None)
    h = torch.tanh(model.proj(x) / 3.0) * 3.0  # the exact tanh: its site is left exact
    assert torch.allclose(z, h - h.amax(-1, keepdim=True))
    e = mode.tables["exp"](z)
    assert torch.allclose(s, e.sum(-1, keepdim=True))
    assert torch.allclose(w, (1.0 / s**2).expand_as(z))
