"""Arguments are validated before any work; failures are one line and leave nothing behind."""

from __future__ import annotations

import errno

import pytest

import nnlut
from nnlut.cli import main


@pytest.fixture(scope="module")
def table_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("t") / "g.json"
    nnlut.fit("gelu", 6, method="linear").save(str(path))
    return str(path)


def _one_line_error(capsys, argv, status=2) -> str:
    assert main(argv) == status
    cap = capsys.readouterr()
    err = cap.err.strip()
    assert len(err.splitlines()) == 1, err
    assert "Traceback" not in err
    return err


@pytest.fixture
def no_work(monkeypatch):
    """Make every expensive entry point fail loudly: a bad argument must be refused first."""
    from importlib import import_module

    def work(*a, **k):
        raise AssertionError("work started before the arguments were checked")

    for mod, name in [("nnlut.eval", "build_task"), ("nnlut.fitting", "compare"), ("nnlut.hw", "run_flow"),
                      ("nnlut.report._study", "run_study"), ("nnlut.system", "fit_npu"), ("nnlut.system", "sweep")]:
        monkeypatch.setattr(import_module(mod), name, work)


@pytest.mark.parametrize(
    "argv,match",
    [
        (["fit", "gelu", "--seed", "-1", "-o", "{d}/x.json"], "--seed: must be between 0 and"),
        (["fit", "gelu", "--domain", "nan", "1", "-o", "{d}/x.json"], "--domain: must be a finite number, got 'nan'"),
        (["fit", "gelu", "--domain", "inf", "1", "-o", "{d}/x.json"], "must be a finite number"),
        (["fit", "gelu", "--domain", "-1e3", "-inf", "-o", "{d}/x.json"], "must be a finite number, got '-inf'"),
        (["fit", "gelu", "--restarts", "0", "-o", "{d}/x.json"], "--restarts: must be between 1 and 1000"),
        (["fit", "gelu", "--entries", "0", "-o", "{d}/x.json"], "--entries/-n: must be between 2 and 4096, got 0"),
        (["export", "{t}", "--input-range", "5", "-5", "-o", "{d}/o"], "--input-range needs LO < HI, got 5 -5"),
        (["plot", "{t}", "--domain", "5", "-5", "-o", "{d}/p.png"], "--domain needs LO < HI, got 5 -5"),
        (["plot", "{t}", "--domain", "0", "0", "-o", "{d}/p.png"], "--domain needs LO < HI, got 0 0"),
        (["plot", "{t}", "--domain", "nan", "0", "-o", "{d}/p.png"], "must be a finite number"),
        (["eval", "--calibrate", "-3"], "--calibrate: must be at least 0, got -3"),
        (["eval", "--limit", "0"], "--limit: must be at least 1, got 0"),
        (["sim", "--batch", "0"], "--batch: must be between 1 and"),
        (["calibrate", "--entries", "0", "-o", "{d}/c"], "--entries/-n: must be between 2 and 4096, got 0"),
        (["calibrate", "--evaluate", "-1", "-o", "{d}/c"], "--evaluate: must be at least 0"),
        (["hw", "--entries", "1", "-o", "{d}/h"], "--entries/-n: must be between 2"),
        (["run", "--eval-limit", "0", "-o", "{d}/r"], "--eval-limit: must be at least 1"),
        (["run", "-o", "{d}/missing/r"], "does not exist"),
        (["export", "{t}", "-o", "{d}/g.json/o"], "does not exist"),
    ],
)
def test_bad_arguments_refused_before_work(tmp_path, capsys, no_work, table_file, argv, match):
    argv = [a.replace("{d}", str(tmp_path)).replace("{t}", table_file) for a in argv]
    err = _one_line_error(capsys, argv)
    assert match in err, err
    assert list(tmp_path.iterdir()) == []  # no output folder or file was created


@pytest.mark.parametrize("domain,match", [(("1e300", "1e301"), "reaches beyond"), (("1e-300", "2e-300"), "narrower than")])
def test_extreme_fit_domains_are_refused_with_a_reason(tmp_path, capsys, domain, match):
    err = _one_line_error(capsys, ["fit", "gelu", "--domain", *domain, "-o", str(tmp_path / "x.json")])
    assert match in err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("cmd", [["calibrate"], ["run"], ["hw"], ["export", "{t}"]])
def test_foreign_folder_is_refused_and_untouched(tmp_path, capsys, no_work, table_file, cmd):
    out = tmp_path / "mine"
    (out / "sub").mkdir(parents=True)
    (out / "notes.txt").write_text("keep me")
    (out / "sub" / "data.csv").write_text("1,2\n")
    argv = [a.replace("{t}", table_file) for a in cmd] + ["--out", str(out)]
    err = _one_line_error(capsys, argv)
    assert "is not empty and was not written by nnlut" in err
    assert (out / "notes.txt").read_text() == "keep me" and (out / "sub" / "data.csv").read_text() == "1,2\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine"]


def test_export_replaces_only_its_own_files(tmp_path, capsys, table_file):
    out = tmp_path / "o"
    assert main(["export", table_file, "--out", str(out)]) == 0
    (out / "notes.txt").write_text("mine")
    (out / "sub").mkdir()
    (out / "sub" / "data.csv").write_text("1\n")
    silu = tmp_path / "s.json"
    nnlut.fit("silu", 6, method="linear").save(str(silu))
    assert main(["export", str(silu), "--out", str(out)]) == 0
    names = sorted(p.name for p in out.iterdir())
    assert "notes.txt" in names and (out / "sub" / "data.csv").read_text() == "1\n"
    assert not any(n.startswith("gelu") for n in names)  # the previous result is replaced whole
    assert any(n.startswith("silu") for n in names)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o", "s.json"]  # no staging folder left beside it


def test_failed_export_leaves_no_folder(tmp_path, capsys):
    bad = tmp_path / "bad.json"
    bad.write_text('{"format": "nnlut.table", "version": 1, "breakpoints": [1, 0], "slopes": [1, 2, 3], '
                   '"intercepts": [0, 0, 0]}')
    err = _one_line_error(capsys, ["export", str(bad), "--out", str(tmp_path / "o")])
    assert "strictly increasing" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.json"]


def test_full_disk_is_one_line_and_leaves_no_temporary(tmp_path, capsys, monkeypatch):
    import nnlut._files as files

    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(files.os, "replace", full)
    out = tmp_path / "x.json"
    err = _one_line_error(capsys, ["fit", "gelu", "-n", "4", "--method", "linear", "-o", str(out)])
    assert "No space left on device" in err
    assert list(tmp_path.iterdir()) == []


def test_negative_numbers_in_scientific_notation_are_values():
    from nnlut.cli import build_parser

    args = build_parser().parse_args(["fit", "gelu", "--domain", "-1e1", "-.5", "-o", "x.json"])
    assert args.domain == [-10.0, -0.5]
    args = build_parser().parse_args(["export", "t.json", "--input-range", "-8", "8e0", "-o", "d"])
    assert args.input_range == [-8.0, 8.0]
