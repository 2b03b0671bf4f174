"""The command line, in process: fit, plot, run, and one-line errors."""

from __future__ import annotations

import json

import pytest

import nnlut
from nnlut.cli import main


def test_help_lists_commands(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    for cmd in ("fit", "plot", "run"):
        assert cmd in out


def test_fit_writes_table_and_prints_baselines(tmp_path, capsys):
    out = tmp_path / "g.json"
    assert main(["fit", "gelu", "--entries", "8", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    for method in ("nnlut *", "linear", "exponential", "ibert"):
        assert method in text
    table = nnlut.load(str(out))
    assert table.entries == 8 and table.function == "gelu"
    assert json.loads(out.read_text())["fit"]["method"] == "nnlut"


def test_fit_range_reduction_and_method(tmp_path, capsys):
    out = tmp_path / "r.json"
    assert main(["fit", "reciprocal", "--entries", "8", "--method", "linear", "--range-reduction", "--out", str(out)]) == 0
    t = nnlut.load(str(out))
    assert t.scaling.mode == "full" and t.meta["method"] == "linear"
    assert "linear *" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv,match",
    [
        (["fit", "nope", "--out", "{d}/x.json"], "unknown function 'nope'"),
        (["fit", "gelu", "--entries", "1", "--out", "{d}/x.json"], "entries must be between 2"),
        (["fit", "gelu", "--domain", "1", "1", "--out", "{d}/x.json"], "empty"),
        (["fit", "gelu", "--domain", "2", "1", "--out", "{d}/x.json"], "reversed"),
        (["fit", "rsqrt", "--domain", "-2", "8", "--out", "{d}/x.json"], "undefined"),
        (["fit", "gelu", "--out", "{d}/missing/x.json"], "does not exist"),
        (["fit", "gelu", "--entries", "many", "--out", "{d}/x.json"], "invalid int value"),
        (["fit", "gelu"], "required: --out"),
        (["plot", "{d}/none.json", "--out", "{d}/p.png"], "does not exist"),
        (["frobnicate"], "invalid choice"),
    ],
)
def test_errors_are_one_line(tmp_path, capsys, argv, match):
    argv = [a.replace("{d}", str(tmp_path)) for a in argv]
    assert main(argv) == 2
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert len(err.splitlines()) == 1, err
    assert match in err and "Traceback" not in err
    assert not (tmp_path / "x.json").exists()


def test_plot(tmp_path):
    pytest.importorskip("matplotlib")
    table = tmp_path / "e.json"
    nnlut.fit("exp", 8).save(str(table))
    png = tmp_path / "e.png"
    assert main(["plot", str(table), "--out", str(png)]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_run_tables_section(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    out = tmp_path / "study"
    assert main(["run", "--out", str(out), "--entries", "6", "--only", "tables"]) == 0
    results = json.loads((out / "results.json").read_text())
    rows = results["sections"]["tables"]["data"]["gelu"]
    assert {r["method"] for r in rows} == {"nnlut", "linear", "exponential", "ibert"}
    assert (out / "report.md").read_text().count("![") >= 8
    assert (out / "tables" / "rsqrt_nnlut_6.json").exists()
