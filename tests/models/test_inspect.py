"""``nnlut inspect``: the coverage of a tiny model, printed and as JSON."""

from __future__ import annotations

import json

import pytest

from nnlut.cli import main

pytest.importorskip("transformers")


def test_inspect_prints_what_ran_exact_and_what_never_ran(capsys):
    assert main(["inspect", "mamba", "--tokens", "6"]) == 0
    out = capsys.readouterr().out
    assert "coverage 100.00%" in out and "0 exact on data" in out
    assert "replaced but never ran: backbone.layers.0.mixer.act (silu)" in out
    assert "static backbone.layers.0.mixer#exp" in out


def test_inspect_json_before_and_after(capsys):
    assert main(["inspect", "gpt2", "--tokens", "6", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    before, after = data["before"], data["report"]["coverage"]
    assert before["coverage"] == 0.0 and before["exact_elements"] > 0
    assert after["exact_elements"] == 0 and after["table_elements"] == before["exact_elements"]


@pytest.mark.parametrize(("argv", "message"), [
    (["inspect", "no-such-family"], "neither a model folder nor a transformers model type"),
    (["inspect", "gpt2", "--tokens", "1"], "--tokens must be at least 2, got 1"),
])
def test_inspect_bad_input_is_one_line(capsys, argv, message):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
