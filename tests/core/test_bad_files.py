"""Hostile files: refused in one line, at once, and nothing changed."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time

import pytest

import nnlut
from nnlut import NNLUTError
from nnlut._files import MARKER, OutputFolder, read_json
from nnlut.calibration import read_manifest


@pytest.fixture(scope="module")
def tables():
    return {"gelu": nnlut.fit("gelu", 4, method="linear"), "exp": nnlut.fit("exp", 4, method="linear"),
            "reciprocal": nnlut.fit("reciprocal", 4, method="linear")}


def _refused(fn, match):
    t = time.perf_counter()
    with pytest.raises(NNLUTError, match=match) as e:
        fn()
    assert time.perf_counter() - t < 1.0
    assert "\n" not in str(e.value)
    return str(e.value)


@pytest.mark.parametrize("dev", ["/dev/zero", "/dev/urandom"])
def test_devices_refused(dev):
    if not os.path.exists(dev):
        pytest.skip(f"no {dev}")
    _refused(lambda: nnlut.load(dev), "character device, not a regular file")


def test_fifo_refused_without_blocking(tmp_path):
    fifo = tmp_path / "t.json"
    os.mkfifo(fifo)
    _refused(lambda: nnlut.load(fifo), "FIFO")
    cal = tmp_path / "cal"
    cal.mkdir()
    os.mkfifo(cal / "manifest.json")
    _refused(lambda: read_manifest(cal), "FIFO")


def test_large_file_refused_and_limit_configurable(tmp_path, monkeypatch, tables):
    big = tmp_path / "big.json"
    with open(big, "wb") as f:
        f.truncate(100 << 20)  # sparse: 100 MB that take no disk
    msg = _refused(lambda: nnlut.load(big), "104,857,600 bytes; at most 33,554,432")
    assert "NNLUT_MAX_FILE_BYTES" in msg
    small = tmp_path / "small.json"
    tables["gelu"].save(small)
    size = small.stat().st_size
    monkeypatch.setenv("NNLUT_MAX_FILE_BYTES", str(size - 1))
    _refused(lambda: nnlut.load(small), f"has {size:,} bytes")
    monkeypatch.setenv("NNLUT_MAX_FILE_BYTES", str(size))
    assert nnlut.load(small).function == "gelu"
    monkeypatch.setenv("NNLUT_MAX_FILE_BYTES", "lots")
    _refused(lambda: nnlut.load(small), "NNLUT_MAX_FILE_BYTES='lots' must be a positive number")


def test_duplicate_keys_refused(tmp_path, tables):
    p = tmp_path / "t.json"
    tables["gelu"].save(p)
    text = p.read_text().rstrip()
    assert text.endswith("}")
    p.write_text(text[:-1] + ', "function": "exp"}\n')  # a GELU file claiming to be exp
    _refused(lambda: nnlut.load(p), "key 'function' twice")
    _refused(lambda: read_json(p, "x"), "twice")


@pytest.mark.parametrize("version", [True, 1.0, "1", None, [1]])
def test_version_must_be_an_integer(tmp_path, tables, version):
    p = tmp_path / "t.json"
    d = tables["gelu"].to_dict()
    d["version"] = version
    p.write_text(json.dumps(d))
    _refused(lambda: nnlut.load(p), "unknown version")


def _relabel(table, function):
    d = table.to_dict()
    d["function"] = function
    return d


@pytest.mark.parametrize(("src", "label", "match"), [
    ("exp", "gelu", "not those of gelu"),
    ("gelu", "exp", "not those of exp"),
    ("exp", "reciprocal", "not where reciprocal is defined"),
])
def test_relabelled_table_file_refused(tmp_path, tables, src, label, match):
    p = tmp_path / "t.json"
    p.write_text(json.dumps(_relabel(tables[src], label)))
    _refused(lambda: nnlut.load(p), match)
    assert nnlut.Table.from_dict(tables[src].to_dict()).function == src  # the honest file loads


def test_relabelled_table_in_a_calibration_folder_refused(tmp_path, tables):
    import torch

    from nnlut import ApproxConfig, approximate_, save_calibration
    from tests.models.conftest import ToyBlock

    torch.manual_seed(0)
    model = ToyBlock().eval()
    approximate_(model, ApproxConfig(entries=4, method="linear"))
    folder = save_calibration(model, tmp_path / "c")
    read_manifest(folder)
    m = json.loads((folder / "manifest.json").read_text())
    rel = next(r for r, rec in m["files"].items() if rec["function"] == "gelu")
    d = tables["exp"].to_dict()
    d["function"] = "gelu"  # exp's values under GELU's name, with a consistent hash
    data = json.dumps(d).encode()
    (folder / rel).write_bytes(data)
    m["files"][rel]["sha256"] = hashlib.sha256(data).hexdigest()
    (folder / "manifest.json").write_text(json.dumps(m))
    _refused(lambda: read_manifest(folder), "not those of gelu")


def _result(folder, files):
    with OutputFolder(folder, kind="test") as out:
        for name, text in files.items():
            out.write_text(name, text)


def test_forged_marker_cannot_make_a_write_delete_a_user_file(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    (out / MARKER).write_text(json.dumps({"format": "nnlut.output", "files": ["notes.txt"]}))  # forged
    _result(out, {"a.txt": "result"})
    assert (out / "notes.txt").read_text() == "mine" and (out / "a.txt").read_text() == "result"
    # nnlut's own files are replaced and removed as before
    _result(out, {"b.txt": "second"})
    assert not (out / "a.txt").exists() and (out / "b.txt").read_text() == "second"
    assert (out / "notes.txt").read_text() == "mine"
    # a file nnlut wrote but the user changed since is kept
    (out / "b.txt").write_text("edited")
    _result(out, {"c.txt": "third"})
    assert (out / "b.txt").read_text() == "edited"
    # the forged marker listing a hash of another content owns nothing either
    marker = json.loads((out / MARKER).read_text())
    marker["files"].append("notes.txt")
    marker["sha256"]["notes.txt"] = hashlib.sha256(b"other").hexdigest()
    (out / MARKER).write_text(json.dumps(marker))
    _result(out, {"d.txt": "fourth"})
    assert (out / "notes.txt").read_text() == "mine"


def test_a_result_file_over_a_user_file_is_refused(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "a.txt").write_text("mine")
    (out / MARKER).write_text(json.dumps({"format": "nnlut.output", "files": ["a.txt"]}))  # forged, no hash
    before = sorted(os.listdir(out))
    _refused(lambda: _result(out, {"a.txt": "result"}), "holds 'a.txt', which this result writes but nnlut did not")
    assert (out / "a.txt").read_text() == "mine" and sorted(os.listdir(out)) == before
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".out.nnlut")]  # no staging left
    shutil.rmtree(out)


def test_removed_network_of_a_fitted_table_refused(tmp_path, tables):
    d = tables["gelu"].to_dict()
    del d["network"]
    p = tmp_path / "t.json"
    p.write_text(json.dumps(d))
    _refused(lambda: nnlut.load(p), "must carry its 'network'")
    del d["fit"]  # a hand-written table needs none
    p.write_text(json.dumps(d))
    assert nnlut.load(p).function == "gelu"


def test_relabelled_table_refused_from_a_dict(tables):
    # Table.from_dict is what configs and the table cache load through
    _refused(lambda: nnlut.Table.from_dict(_relabel(tables["exp"], "gelu")), "not those of gelu")
    _refused(lambda: nnlut.ApproxConfig.from_dict({"tables": {"gelu": _relabel(tables["exp"], "gelu")}}),
             "not those of gelu")
