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


def test_fit_at_many_entries_skips_the_slow_baselines(tmp_path, capsys):
    import time

    from nnlut.cli._fit import BASELINE_MAX_ENTRIES

    out = tmp_path / "g.json"
    t0 = time.perf_counter()
    assert main(["fit", "gelu", "-n", "400", "--method", "linear", "--out", str(out)]) == 0
    seconds = time.perf_counter() - t0
    text = capsys.readouterr().out
    assert seconds < 30  # a linear fit of 400 entries takes ~1 s; an NN-LUT baseline of 400, minutes
    rows = [ln.split()[0] for ln in text.splitlines() if ln.split()[:1] in (["linear"], ["nnlut"], ["exponential"],
                                                                            ["ibert"])]
    assert rows == ["linear", "ibert"]
    assert f"not fitted for comparison: nnlut, exponential (above {BASELINE_MAX_ENTRIES} entries" in text
    assert nnlut.load(str(out)).entries == 400
    # none: the chosen method alone; all: every baseline even where slow (small here)
    assert main(["fit", "gelu", "-n", "6", "--method", "linear", "--baselines", "none", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "linear *" in text and "ibert" not in text and "--baselines none" in text
    assert main(["fit", "gelu", "-n", "6", "--method", "exponential", "--baselines", "all", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert all(m in text for m in ("exponential *", "nnlut", "linear", "ibert")) and "not fitted" not in text


def test_fit_prints_and_stores_full_domain_errors(tmp_path, capsys):
    out = tmp_path / "r.json"
    assert main(["fit", "reciprocal", "--entries", "6", "--method", "linear", "--range-reduction", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    full = nnlut.load(str(out)).meta["errors"]["full_domain"]
    line = next(ln for ln in text.splitlines() if ln.startswith("every FP16"))
    assert f"{full['fp16']['max_rel']:.4g}" in line.split()  # the stored figure is the printed one
    assert "FP32 sweep" in text and "every BF16" in text
    assert main(["fit", "tanh", "--entries", "4", "--format", "int8", "--out", str(out)]) == 0
    assert "int8 table, full domain" in capsys.readouterr().out


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
        (["fit", "gelu", "--entries", "1", "--out", "{d}/x.json"], "--entries/-n: must be between 2"),
        (["fit", "gelu", "--domain", "1", "1", "--out", "{d}/x.json"], "--domain needs LO < HI, got 1 1"),
        (["fit", "gelu", "--domain", "2", "1", "--out", "{d}/x.json"], "--domain needs LO < HI, got 2 1"),
        (["fit", "rsqrt", "--domain", "-2", "8", "--out", "{d}/x.json"], "undefined"),
        (["fit", "gelu", "--out", "{d}/missing/x.json"], "does not exist"),
        (["fit", "gelu", "--entries", "many", "--out", "{d}/x.json"], "invalid integer 'many'"),
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
    full = results["sections"]["tables"]["data"]["full_domain"]
    assert sorted(full) == ["exp", "gelu", "reciprocal", "rsqrt"]
    assert full["rsqrt"]["fp16"]["max_rel"] == nnlut.load(str(out / "tables" / "rsqrt_nnlut_6.json")).meta[
        "errors"]["full_domain"]["fp16"]["max_rel"]
    assert "every finite FP16 value" in (out / "report.md").read_text()


def test_export_writes_fixed_point_files(tmp_path, capsys):
    table = tmp_path / "g.json"
    nnlut.fit("gelu", 16).save(str(table))
    assert main(["export", str(table), "--out", str(tmp_path / "out")]) == 0
    out = tmp_path / "out"
    assert (out / "gelu.h").read_text().startswith("/* Generated by nnlut")
    assert len((out / "gelu_slopes.memh").read_text().split()) == 16
    assert json.loads((out / "gelu_fixed.json").read_text())["format"] == "nnlut.fixed-table"
    assert "extra over float" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv,match",
    [
        (["calibrate", "--sentences", "0", "--out", "{d}/c"], "--sentences: must be at least 1, got 0"),
        (["eval", "--configs", "nope"], "unknown configuration"),
        (["eval", "--model", "gpt-99"], "unknown model 'gpt-99'"),
        (["sim", "--seq", "0"], "--seq: must be between 1 and"),
        (["export", "{d}/none.json", "--out", "{d}/o"], "does not exist"),
    ],
)
def test_more_one_line_errors(tmp_path, capsys, argv, match):
    argv = [a.replace("{d}", str(tmp_path)) for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and match in err, err
