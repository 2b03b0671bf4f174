"""The safe-writing module: single files, result folders, leftovers, modes."""

from __future__ import annotations

import os
import stat
import subprocess
import sys

import pytest

from nnlut import NNLUTError
from nnlut._files import MARKER, OutputFolder, atomic_write_text, check_output_folder, output_files, sweep_leftovers


def _dead_pid() -> int:
    """The id of a process that has exited (and been reaped)."""
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


@pytest.mark.parametrize("umask", [0o022, 0o077])
def test_single_file_mode_follows_umask(tmp_path, umask):
    old = os.umask(umask)
    try:
        atomic_write_text(tmp_path / "a.txt", "x")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "a.txt").stat().st_mode) == 0o666 & ~umask


def test_dead_writers_temporaries_are_swept_live_ones_kept(tmp_path):
    dead, live = _dead_pid(), os.getppid()
    stale = tmp_path / f".a.txt.nnlut-{dead}-0badc0de.tmp"
    busy = tmp_path / f".a.txt.nnlut-{live}-0badc0de.tmp"
    other = tmp_path / ".a.txt.user-file.tmp"  # not named as nnlut names its own
    for p in (stale, busy, other):
        p.write_text("partial")
    atomic_write_text(tmp_path / "a.txt", "done")
    assert (tmp_path / "a.txt").read_text() == "done"
    assert not stale.exists() and busy.exists() and other.exists()


def test_dead_writers_staging_folders_are_swept(tmp_path):
    dead = _dead_pid()
    stage = tmp_path / f".out.nnlut-stage-{dead}-0badc0de"
    (stage / "tables").mkdir(parents=True)
    (stage / "tables" / "x.json").write_text("{}")
    unrelated = tmp_path / ".out.backup"
    unrelated.mkdir()
    with OutputFolder(tmp_path / "out", kind="test") as out:
        out.write_text("a.txt", "1")
    assert not stage.exists() and unrelated.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == [".out.backup", "out"]
    assert output_files(tmp_path / "out") == ["a.txt"]


def test_old_result_put_back_when_a_kill_fell_between_two_renames(tmp_path):
    dead = _dead_pid()
    old = tmp_path / f".out.nnlut-old-{dead}-0badc0de"
    old.mkdir()
    (old / "a.txt").write_text("previous")
    sweep_leftovers(tmp_path / "out")
    assert (tmp_path / "out" / "a.txt").read_text() == "previous"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_failure_inside_keeps_previous_result(tmp_path):
    with OutputFolder(tmp_path / "out", kind="test") as out:
        out.write_text("a.txt", "1")
    with pytest.raises(RuntimeError), OutputFolder(tmp_path / "out", kind="test") as out:
        out.write_text("b.txt", "2")
        raise RuntimeError("stop")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [MARKER, "a.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


@pytest.mark.parametrize("make,match", [
    (lambda p: p.write_text("x"), "exists and is not a folder"),
    (lambda p: (p.mkdir(), (p / "mine.txt").write_text("x")), "is not empty and was not written by nnlut"),
])
def test_unusable_targets_refused(tmp_path, make, match):
    target = tmp_path / "out"
    make(target)
    with pytest.raises(NNLUTError, match=match):
        check_output_folder(target)


def test_parent_must_exist(tmp_path):
    with pytest.raises(NNLUTError, match="does not exist"):
        check_output_folder(tmp_path / "no" / "out")
    assert list(tmp_path.iterdir()) == []


def test_links_are_kept_as_links(tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "big.bin").write_text("data")
    with OutputFolder(tmp_path / "out", kind="test") as out:
        out.write_text("a.txt", "1")
    (tmp_path / "out" / "data").symlink_to(elsewhere)
    with OutputFolder(tmp_path / "out", kind="test") as out:
        out.write_text("a.txt", "2")
    link = tmp_path / "out" / "data"
    assert link.is_symlink() and (link / "big.bin").read_text() == "data"
    (tmp_path / "alias").symlink_to(tmp_path / "out")
    with pytest.raises(NNLUTError, match="is a symbolic link"):
        check_output_folder(tmp_path / "alias")
