"""Fuzzing the front door: mutated table files, mutated calibration manifests and bad command
lines. Each case must end in a valid result or one ``NNLUTError`` (one line from the CLI),
never another exception, a traceback, a hang or a stray file.

The counts (``max_examples``) are the figures the suite stands for: 1,200 table files,
300 manifests, 300 command lines, 300 NPU and model configs, 200 edited fitted tables; each case
is bounded by the library's own limits.
"""

from __future__ import annotations

import contextlib
import io
import json
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import nnlut
from nnlut import NNLUTError
from nnlut.cli import main
from tests.fuzz.mutations import mutated_json, write_text
from tests.models.conftest import ToyBlock


def fuzz(n: int) -> settings:
    """``n`` cases, reproducible, no per-case deadline (the library bounds each case)."""
    return settings(max_examples=n, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))


def _seed_tables() -> list[dict]:
    """Valid table files of every shape the loader knows: fitted (with network and fit
    metadata), clamped with limits, input-scaled, and a bare hand-written one."""
    docs = [nnlut.fit("gelu", 6, method="linear").to_dict(),
            nnlut.fit("exp", 5, method="linear").to_dict(),
            nnlut.fit("rsqrt", 4, method="linear").to_dict(),
            {"format": "nnlut.table", "version": 1, "breakpoints": [0.0], "slopes": [0.0, 1.0], "intercepts": [0.0, 0.0]}]
    return [json.loads(json.dumps(d, allow_nan=False)) for d in docs]


SEEDS = _seed_tables()
_X = torch.linspace(-50, 50, 101, dtype=torch.float64)


@pytest.fixture(scope="module")
def scratch():
    d = Path(tempfile.mkdtemp(prefix="nnlut-fuzz-"))
    yield d
    shutil.rmtree(d, ignore_errors=True)


@fuzz(1200)
@given(data=st.data())
def test_mutated_table_files(scratch, data):
    seed = data.draw(st.sampled_from(SEEDS))
    text = data.draw(mutated_json(seed))
    path = scratch / "t.json"
    write_text(path, text)
    try:
        table = nnlut.load(str(path))
    except NNLUTError as e:
        assert "\n" not in str(e) and str(path) in str(e)
        return
    # accepted: it must be a working table that saves and loads back identically
    with np.errstate(all="ignore"):
        y = table(_X)
    assert y.shape == _X.shape
    assert nnlut.load(str(path)) == table
    table.save(str(scratch / "back.json"))
    assert nnlut.load(str(scratch / "back.json")) == table


@fuzz(200)
@given(which=st.sampled_from(["slopes", "intercepts", "breakpoints"]), i=st.integers(0, 10),
       rel=st.sampled_from([1e-6, -1e-4, 1e-2, 0.5, -3.0]))
def test_edited_values_of_a_fitted_table_are_refused(scratch, which, i, rel):
    """A fitted table carries its network: any edit of a value beyond rounding is caught."""
    doc = json.loads(json.dumps(SEEDS[0]))
    vals = doc[which]
    i %= len(vals)
    vals[i] = vals[i] + rel * max(abs(vals[i]), 1.0)
    path = scratch / "edit.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(NNLUTError, match="network|strictly increasing"):
        nnlut.load(str(path))


# ----------------------------------------------------------------------------- manifests
@pytest.fixture(scope="module")
def calib(tmp_path_factory):
    torch.manual_seed(0)
    model = ToyBlock().eval()
    nnlut.approximate_(model, nnlut.ApproxConfig(entries=4, method="linear"))
    folder = nnlut.save_calibration(model, tmp_path_factory.mktemp("m") / "c")
    x = torch.randn(2, 5, 16)
    with torch.no_grad():
        ref = model(x)
    return folder, json.loads((folder / "manifest.json").read_text()), x, ref


@fuzz(300)
@given(data=st.data())
def test_mutated_manifests(calib, data):
    folder, manifest, x, ref = calib
    text = data.draw(mutated_json(manifest))
    original = (folder / "manifest.json").read_bytes()
    write_text(folder / "manifest.json", text)
    model = ToyBlock()
    model.load_state_dict(_state(calib))
    try:
        nnlut.load_calibration(model.eval(), folder)
    except NNLUTError as e:
        assert "\n" not in str(e)
        assert nnlut.ops.approx_modules(model) == {}  # refused before anything was swapped
        return
    finally:
        (folder / "manifest.json").write_bytes(original)
    with torch.no_grad():  # accepted: it is the calibrated model, exactly
        assert torch.equal(model(x), ref)


_STATE: dict = {}


def _state(calib):
    if not _STATE:
        torch.manual_seed(0)
        _STATE.update(ToyBlock().state_dict())
    return _STATE


# ----------------------------------------------------------------------------- command lines
_BAD_INTS = ["-1", "0", "-3", "1e3", "x", "", "99999999999999999999", "1.5", "nan"]  # for counts >= 1
_BAD_ENTRIES = _BAD_INTS + ["1", "4097"]
_BAD_FLOATS = ["nan", "inf", "-inf", "x", "", "1e999", "--"]
_COMMANDS = {
    "fit": (["gelu"], {"--entries": _BAD_ENTRIES, "--seed": ["-1", "x", "4294967296"], "--restarts": _BAD_INTS,
                       "--domain": "range", "--method": ["cubic", ""], "--out": "file"}),
    "plot": (["{table}"], {"--domain": "range", "--out": "file"}),
    "export": (["{table}"], {"--input-range": "range", "--out": "dir"}),
    "calibrate": ([], {"--entries": _BAD_ENTRIES, "--sentences": _BAD_INTS, "--evaluate": ["-1", "x"],
                       "--seed": ["-1"], "--head": ["big"], "--method": ["ibert", "x"], "--out": "dir"}),
    "eval": ([], {"--entries": _BAD_ENTRIES, "--limit": _BAD_INTS, "--calibrate": ["-3", "x", "99999999999999999999"],
                  "--seed": ["-2"],
                  "--configs": ["nope"], "--head": ["x"], "--json": "file"}),
    "sim": ([], {"--batch": _BAD_INTS, "--seq": _BAD_INTS, "--config": "input", "--json": "file", "--model": ["gpt-99"]}),
    "hw": ([], {"--entries": _BAD_ENTRIES, "--out": "dir"}),
    "run": ([], {"--entries": _BAD_ENTRIES, "--seed": ["-1"], "--eval-limit": _BAD_INTS, "--only": ["nothing"],
                 "--head": ["x"], "--out": "dir"}),
    "data": (["info"], {"--models": "flag"}),
}


@st.composite
def bad_argv(draw, root: Path, table: str) -> list[str]:
    cmd = draw(st.sampled_from(sorted(_COMMANDS)))
    positional, options = _COMMANDS[cmd]
    argv = [cmd] + [p.format(table=table) for p in positional]
    if draw(st.booleans()) and positional:
        argv[1] = draw(st.sampled_from([str(root / "missing.json"), str(root), str(root / "bad.json"), ""]))
    bad_done = False
    for opt in draw(st.lists(st.sampled_from(sorted(options)), min_size=1, max_size=3, unique=True)):
        kind = options[opt]
        if kind == "range":
            a, b = draw(st.sampled_from([("5", "-5"), ("0", "0"), ("nan", "1"), ("1", "inf"), ("1e308", "-1e308"),
                                         ("1e300", "1e301"), ("1e-300", "2e-300"), ("x", "1")]))
            argv += [opt, a, b]
            bad_done = True
        elif kind == "file":
            argv += [opt, draw(st.sampled_from([str(root / "no" / "f.json"), str(root), str(root / "ok.json")]))]
            bad_done = bad_done or not argv[-1].endswith("ok.json")
        elif kind == "dir":
            argv += [opt, draw(st.sampled_from([str(root / "no" / "d"), str(root / "foreign"), str(root / "bad.json"),
                                                str(root / "new")]))]
            bad_done = bad_done or not argv[-1].endswith("new")
        elif kind == "input":
            argv += [opt, draw(st.sampled_from([str(root / "bad.json"), str(root), str(root / "missing.json")]))]
            bad_done = True
        elif kind == "flag":
            argv += [opt]
        else:
            argv += [opt, draw(st.sampled_from(kind))]
            bad_done = True
    if not bad_done or draw(st.integers(0, 9)) == 0:
        argv.append(draw(st.sampled_from(["--frobnicate", "-z", "--entries=", "extra-arg"])))
    return argv


@pytest.fixture(scope="module")
def cli_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    nnlut.fit("gelu", 6, method="linear").save(str(root / "table.json"))
    (root / "bad.json").write_text('{"format": "nnlut.table", "version": 1, "slopes": "many"}')
    (root / "foreign").mkdir()
    (root / "foreign" / "notes.txt").write_text("mine")
    return root


@pytest.fixture
def no_work(monkeypatch):
    from importlib import import_module

    def work(*a, **k):
        raise AssertionError("work started before the arguments were checked")

    for mod, name in [("nnlut.eval", "build_task"), ("nnlut.fitting", "compare"), ("nnlut.hw", "run_flow"),
                      ("nnlut.report._study", "run_study"), ("nnlut.system", "fit_npu"), ("nnlut.system", "sweep"),
                      ("nnlut.eval._data", "fetch"), ("nnlut.eval._data", "load_set")]:
        monkeypatch.setattr(import_module(mod), name, work)


def _listing(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


@fuzz(300)
@given(data=st.data())
def test_bad_command_lines(cli_root, no_work, data):
    argv = data.draw(bad_argv(cli_root, str(cli_root / "table.json")))
    before = _listing(cli_root)
    err, out = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
        status = main(argv)
    msg = err.getvalue().strip()
    assert status == 2, (argv, msg)
    assert len(msg.splitlines()) == 1 and "Traceback" not in msg, (argv, msg)
    assert msg.startswith("nnlut"), msg
    assert _listing(cli_root) == before, argv  # nothing created, nothing removed


# ----------------------------------------------------------------------------- NPU and model configs
_NPU = {"array_rows": 32, "array_cols": 32, "vector_lanes": 16, "lut_lanes": None, "divide_cycles": 32, "row_units": 1,
        "dram_bytes_per_cycle": 64.0, "bytes_per_weight": 1, "other_ops_per_element": 1.0, "clock_mhz": 1000.0}
_MODEL = {"num_hidden_layers": 2, "hidden_size": 64, "num_attention_heads": 4, "intermediate_size": 256}


@fuzz(300)
@given(data=st.data())
def test_mutated_npu_and_model_configs(scratch, data):
    from nnlut.system import NPUConfig, shape_of

    which = data.draw(st.sampled_from(["npu", "model"]))
    text = data.draw(mutated_json(_NPU if which == "npu" else _MODEL))
    path = scratch / f"{which}.json"
    write_text(path, text)
    try:
        result = NPUConfig.load(str(path)) if which == "npu" else shape_of(str(path))
    except NNLUTError as e:
        assert "\n" not in str(e)
        return
    assert result is not None
