"""The evaluation models' cache: trained once, loaded after; and loading a local model leaves
the user's environment as it was (nothing set to force the hub offline)."""

from __future__ import annotations

import os

import pytest

torch = pytest.importorskip("torch")

from nnlut.eval._cache import cached_model, is_cached  # noqa: E402


def _trainer(model, calls):
    def train():
        calls.append(1)
        with torch.no_grad():
            model.weight.add_(1.5)  # "training" changes the weights
        return {"train_seconds": 0.25}

    return train


def test_trained_once_then_loaded_from_the_cache(tmp_path):
    folder, calls = tmp_path / "entry", []
    torch.manual_seed(0)
    first = torch.nn.Linear(3, 2).train()
    got, meta = cached_model(folder, first, _trainer(first, calls), what="toy")
    assert got is first and not got.training and meta == {"train_seconds": 0.25} and calls == [1]
    assert is_cached(folder) and {"meta.json", "model.pt"} <= {p.name for p in folder.iterdir()}

    torch.manual_seed(1)
    second = torch.nn.Linear(3, 2)
    assert not torch.equal(second.weight, first.weight)
    got, meta = cached_model(folder, second, _trainer(second, calls), what="toy")
    assert calls == [1] and meta == {"train_seconds": 0.25}  # not trained again
    assert torch.equal(second.weight, first.weight) and torch.equal(second.bias, first.bias)


def test_an_incomplete_entry_is_trained_again(tmp_path):
    folder, calls = tmp_path / "entry", []
    folder.mkdir()
    (folder / "model.pt").write_bytes(b"")  # no meta.json: a half-written entry
    model = torch.nn.Linear(3, 2)
    cached_model(folder, model, _trainer(model, calls))
    assert calls == [1] and is_cached(folder)


def test_loading_local_models_leaves_the_environment_alone(local_models, monkeypatch):
    from nnlut.eval._local import build_causal_task

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    _, lm_dir, _, txt = local_models
    build_causal_task(str(lm_dir), str(txt), context=32, limit=2)
    assert "HF_HUB_OFFLINE" not in os.environ
