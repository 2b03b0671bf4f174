"""Calibration folders: the user's files kept, modes from the umask, and every tampered
folder refused before the model is touched."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat

import pytest
import torch
from torch import nn

from nnlut import ApproxConfig, NNLUTError, approximate_, load_calibration, save_calibration
from nnlut.calibration import read_manifest
from nnlut.ops import approx_modules
from tests.models.conftest import ToyBlock


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A calibration folder of a 4-entry ToyBlock (module-scoped: tests copy it)."""
    torch.manual_seed(0)
    model = ToyBlock().eval()
    approximate_(model, ApproxConfig(entries=4, method="linear"))
    return save_calibration(model, tmp_path_factory.mktemp("cal") / "c"), model


@pytest.fixture
def folder(tmp_path, saved):
    dst = tmp_path / "c"
    shutil.copytree(saved[0], dst)
    return dst


def _manifest(folder):
    return json.loads((folder / "manifest.json").read_text())


def _write_manifest(folder, m):
    (folder / "manifest.json").write_text(json.dumps(m))


def test_manifest_records_structure_and_hashes(saved):
    folder, model = saved
    m = _manifest(folder)
    mods = approx_modules(model)
    assert set(m["modules"]) == set(mods)
    for name, entry in m["modules"].items():
        assert entry["op"] == mods[name].op
        original = mods[name].__dict__["original"]
        assert entry["shape"] == {k: list(p.shape) for k, p in original.named_parameters(recurse=False)}
    assert m["modules"]["norm"]["shape"] == {"weight": [16], "bias": [16]}
    for rel, rec in m["files"].items():
        assert rec["sha256"] == hashlib.sha256((folder / rel).read_bytes()).hexdigest()


def test_users_files_survive_a_new_save(tmp_path, saved):
    target = tmp_path / "c"
    save_calibration(saved[1], target)
    (target / "notes.txt").write_text("mine")
    (target / "sub").mkdir()
    (target / "sub" / "data.csv").write_text("1,2\n")
    save_calibration(saved[1], target)
    assert (target / "notes.txt").read_text() == "mine" and (target / "sub" / "data.csv").read_text() == "1,2\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c"]
    load_calibration(ToyBlock(), target)


def test_foreign_folder_refused_untouched(tmp_path, saved):
    target = tmp_path / "data"
    target.mkdir()
    (target / "notes.txt").write_text("mine")
    with pytest.raises(NNLUTError, match="is not empty and was not written by nnlut"):
        save_calibration(saved[1], target)
    assert [p.name for p in target.iterdir()] == ["notes.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_modes_follow_the_umask(tmp_path, saved, umask):
    old = os.umask(umask)
    try:
        folder = save_calibration(saved[1], tmp_path / "c")
    finally:
        os.umask(old)
    assert stat.S_IMODE(folder.stat().st_mode) == 0o777 & ~umask
    for p in folder.rglob("*"):
        want = (0o777 if p.is_dir() else 0o666) & ~umask
        assert stat.S_IMODE(p.stat().st_mode) == want, p


# ----------------------------------------------------------------------------- tampering
def _swap_files(folder):
    a, b = sorted((folder / "tables").iterdir())[:2]
    ta, tb = a.read_bytes(), b.read_bytes()
    a.write_bytes(tb)
    b.write_bytes(ta)


def _exp_to_gelu(folder):
    m = _manifest(folder)
    gelu = m["modules"]["act"]["tables"]["act"]
    m["modules"]["softmax"]["tables"]["exp"] = gelu
    _write_manifest(folder, m)


def _edit_intercept(folder, rehash, every=False):
    m = _manifest(folder)
    rel = m["modules"]["act"]["tables"]["act"]
    t = json.loads((folder / rel).read_text())
    for i in range(len(t["intercepts"])) if every else [1]:
        t["intercepts"][i] += 0.5  # every=True keeps the table continuous
    data = json.dumps(t).encode()
    (folder / rel).write_bytes(data)
    if rehash:  # a careful forger also fixes the hash: the stored network still disagrees
        m["files"][rel]["sha256"] = hashlib.sha256(data).hexdigest()
        _write_manifest(folder, m)


def _path(folder, rel_of):
    m = _manifest(folder)
    old = m["modules"]["act"]["tables"]["act"]
    new = rel_of(folder, old)
    m["files"][new] = m["files"].pop(old)
    for entry in m["modules"].values():
        for role, r in entry["tables"].items():
            if r == old:
                entry["tables"][role] = new
    _write_manifest(folder, m)


def _outside(folder, old):
    outside = folder.parent / "outside.json"
    shutil.copy(folder / old, outside)
    return str(outside)


def _dotdot(folder, old):
    shutil.copy(folder / old, folder.parent / "up.json")
    return "../up.json"


def _symlink(folder, old):
    shutil.copy(folder / old, folder.parent / "target.json")
    (folder / "tables" / "link.json").symlink_to(folder.parent / "target.json")
    return "tables/link.json"


def _edit(key, value):
    def f(folder):
        m = _manifest(folder)
        node = m
        for k in key[:-1]:
            node = node[k]
        node[key[-1]] = value
        _write_manifest(folder, m)
    return f


TAMPERS = {
    "swapped table files": (_swap_files, "does not match its SHA-256"),
    "exp role pointed at the GELU table": (_exp_to_gelu, "needs a exp table"),
    "intercept edited": (lambda f: _edit_intercept(f, False), "does not match its SHA-256"),
    "intercept edited, hash fixed": (lambda f: _edit_intercept(f, True), "'network' is given but the table is not "
                                                                         "continuous"),
    "all intercepts shifted, hash fixed": (lambda f: _edit_intercept(f, True, every=True), "'network' disagrees"),
    "absolute path": (lambda f: _path(f, _outside), "leaves the folder"),
    "../ path": (lambda f: _path(f, _dotdot), "leaves the folder"),
    "symlink out of the folder": (lambda f: _path(f, _symlink), "leads outside the folder"),
    "unknown role": (_edit(("modules", "act", "tables", "bogus"), "x"), "unknown table role 'bogus'"),
    "unknown op": (_edit(("modules", "act", "op"), "tanh"), "unknown op 'tanh'"),
    "module entry of a wrong type": (_edit(("modules", "act"), [1, 2]), "must be an object, got list"),
    "files missing": (_edit(("files",), None), "'files' must be an object"),
    "shape edited": (_edit(("modules", "norm", "shape", "weight"), [32]), "has parameter shapes"),
    "module renamed": (lambda f: _rename_module(f), "is not a gelu op of this model"),
}


def _rename_module(folder):
    m = _manifest(folder)
    m["modules"]["encoder.act"] = m["modules"].pop("act")
    _write_manifest(folder, m)


@pytest.mark.parametrize("name", list(TAMPERS))
def test_tampered_folder_is_refused(folder, name):
    tamper, match = TAMPERS[name]
    tamper(folder)
    model = ToyBlock()
    with pytest.raises(NNLUTError, match=match) as e:
        load_calibration(model, folder)
    assert "\n" not in str(e.value)
    assert approx_modules(model) == {}  # nothing was swapped


class _Wider(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.block = ToyBlock()
        self.extra = nn.GELU()

    def forward(self, x):
        return self.extra(self.block(x))


@pytest.mark.parametrize("model,match", [
    (lambda: ToyBlock(d=8), "has parameter shapes"),  # same names, another width
    (lambda: _Wider(), "made for another model"),
    (lambda: nn.Sequential(nn.Linear(4, 4), nn.GELU()), "made for another model"),
])
def test_manifest_of_another_model_is_refused(saved, model, match):
    m = model()
    with pytest.raises(NNLUTError, match=match):
        load_calibration(m, saved[0])
    assert approx_modules(m) == {}


def test_model_with_more_ops_than_the_manifest_is_refused(tmp_path, saved):
    class Extra(ToyBlock):
        def __init__(self) -> None:
            super().__init__()
            self.act2 = nn.GELU()

    with pytest.raises(NNLUTError, match=r"op\(s\) \['act2'\] are not in the manifest"):
        load_calibration(Extra(), saved[0])


def test_directory_as_table_file_and_manifest(folder):
    m = _manifest(folder)
    rel = m["modules"]["act"]["tables"]["act"]
    (folder / rel).unlink()
    (folder / rel).mkdir()
    with pytest.raises(NNLUTError, match="is missing"):
        read_manifest(folder)
    (folder / "manifest.json").unlink()
    (folder / "manifest.json").mkdir()
    with pytest.raises(NNLUTError, match="is a folder"):
        read_manifest(folder)


def test_extra_files_are_part_of_the_result(tmp_path, saved):
    folder = save_calibration(saved[1], tmp_path / "c", extra={"report.json": '{"ok": 1}\n'})
    assert (folder / "report.json").read_text() == '{"ok": 1}\n'
    assert "report.json" in json.loads((folder / ".nnlut-output.json").read_text())["files"]
    with pytest.raises(NNLUTError, match="leaves the folder"):
        save_calibration(saved[1], tmp_path / "c", extra={"../x.json": "{}"})
    with pytest.raises(NNLUTError, match="would overwrite"):
        save_calibration(saved[1], tmp_path / "c", extra={"manifest.json": "{}"})
    assert (folder / "report.json").exists() and sorted(p.name for p in tmp_path.iterdir()) == ["c"]


def test_manifest_with_a_module_entry_removed_is_refused(folder):
    # without its entry the softmax would silently stay exact; its table files give it away
    m = _manifest(folder)
    del m["modules"]["softmax"]
    _write_manifest(folder, m)
    model = ToyBlock().eval()
    with pytest.raises(NNLUTError, match="no module uses them"):
        load_calibration(model, folder)
    assert approx_modules(model) == {}
