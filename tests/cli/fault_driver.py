"""Fault injection: kill a writer at every write/rename step and check what is left.

Run as ``python -m tests.cli.fault_driver CASE BASE`` (CASE: calibration, export, study).
For k = 1, 2, ... the driver restores BASE/out to the previous result (plus a file of the
user's), forks a child that sets ``NNLUT_FAULT_AT=k`` and writes the new result, so the child
exits abruptly (``os._exit``, no cleanup) at its k-th write/rename step, until a child gets to
the end. After each child it records: the exit status, what BASE/out holds (``old`` or
``new``, whole, loadable; anything else is a failure), whether the user's file survived, and
what a sweep (as the next write does) leaves besides the result. Prints one JSON list.

Forking keeps the cost of importing torch to one process; the children only write files.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from nnlut import _files

USER_FILE = "notes.txt"
USER_TEXT = "my own notes\n"


def snapshot(folder: Path) -> dict[str, bytes]:
    if not folder.is_dir():
        return {}
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def leftovers(base: Path, out: Path) -> list[str]:
    extra = [p.name for p in base.iterdir() if p.name not in (out.name, "refs", "inputs")]
    if out.is_dir():
        extra += [f"out/{p.relative_to(out)}" for p in out.rglob("*") if ".nnlut-" in p.name and p.name != _files.MARKER]
    return sorted(extra)


def drive(base: Path, prepare: Callable[[Path], None], write: Callable[[Path], Any],
          state: Callable[[Path], str], max_steps: int = 300) -> list[dict[str, Any]]:
    out = base / "out"
    records = []
    for k in range(1, max_steps + 1):
        shutil.rmtree(out, ignore_errors=True)
        for p in base.iterdir():
            if p.name.startswith(".out."):
                shutil.rmtree(p, ignore_errors=True)
        prepare(out)
        (out / USER_FILE).write_text(USER_TEXT)
        sys.stdout.flush()
        pid = os.fork()
        if pid == 0:  # the child: write the new result, dying at step k
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, 1)
            os.dup2(devnull, 2)
            os.environ[_files.FAULT_ENV] = str(k)
            _files._steps = 0
            try:
                rc = write(out)
            except BaseException:  # noqa: BLE001 - any escape is reported as status 99
                os._exit(99)
            os._exit(0 if rc in (0, None) or isinstance(rc, Path) else 98)
        _, status = os.waitpid(pid, 0)
        rc = os.waitstatus_to_exitcode(status)
        what = _state(state, out)
        _files.sweep_leftovers(out)  # what the next write does first
        user_ok = (out / USER_FILE).is_file() and (out / USER_FILE).read_text() == USER_TEXT
        records.append({"k": k, "rc": rc, "state": what, "state_after_sweep": _state(state, out), "user_file": user_ok,
                        "leftovers": leftovers(base, out)})
        if rc != _files.FAULT_EXIT:
            break
    return records


def _state(state: Callable[[Path], str], out: Path) -> str:
    try:
        return state(out)
    except Exception as e:  # noqa: BLE001 - a folder that does not load is a finding, not a crash
        return f"unloadable: {type(e).__name__}: {e}"


def _same(out: Path, ref: Path) -> bool:
    got = snapshot(out)
    got.pop(USER_FILE, None)
    want = snapshot(ref)
    # the marker lists the result's files: equal results have equal markers
    return got == want


def case_calibration(base: Path) -> list[dict[str, Any]]:
    import torch

    from nnlut import ApproxConfig, approximate_, load_calibration, save_calibration
    from tests.models.conftest import ToyBlock

    torch.manual_seed(0)
    old_model, new_model = ToyBlock().eval(), ToyBlock().eval()
    approximate_(old_model, ApproxConfig(entries=4, method="linear"))
    approximate_(new_model, ApproxConfig(entries=6, method="linear"))
    refs = base / "refs"
    refs.mkdir()
    save_calibration(old_model, refs / "old")
    save_calibration(new_model, refs / "new")

    def state(out: Path) -> str:
        load_calibration(ToyBlock(), out)  # raises if not loadable
        return "old" if _same(out, refs / "old") else "new" if _same(out, refs / "new") else "mixed"

    return drive(base, lambda out: save_calibration(old_model, out), lambda out: save_calibration(new_model, out), state)


def case_export(base: Path) -> list[dict[str, Any]]:
    from nnlut import fit, load
    from nnlut.cli import main

    inputs = base / "inputs"
    inputs.mkdir()
    fit("gelu", 6, method="linear").save(str(inputs / "gelu.json"))
    fit("silu", 8, method="linear").save(str(inputs / "silu.json"))
    refs = base / "refs"
    refs.mkdir()
    assert main(["export", str(inputs / "gelu.json"), "--out", str(refs / "old")]) == 0
    assert main(["export", str(inputs / "silu.json"), "--out", str(refs / "new")]) == 0

    def state(out: Path) -> str:
        import json as _json

        which = "old" if _same(out, refs / "old") else "new" if _same(out, refs / "new") else "mixed"
        name = "gelu" if which == "old" else "silu"
        _json.loads((out / f"{name}_fixed.json").read_text())
        load(str(inputs / f"{name}.json"))
        return which

    return drive(base, lambda out: main(["export", str(inputs / "gelu.json"), "--out", str(out)]),
                 lambda out: main(["export", str(inputs / "silu.json"), "--out", str(out)]), state)


def case_study(base: Path) -> list[dict[str, Any]]:
    """A study run with a small stand-in section (the real sections take minutes): the run's
    own writing (results.json and report.md after each section, the result folder) is real."""
    from nnlut.cli import main
    from nnlut.report import _study

    def tiny(out: Path, settings: _study.Settings) -> _study.Section:
        from nnlut import fit

        (out / "tables").mkdir(exist_ok=True)
        fit("gelu", settings.entries, method="linear").save(str(out / "tables" / f"gelu_{settings.entries}.json"))
        return _study.Section("tiny", "Tiny", "text", "markdown", data={"entries": settings.entries})

    _study.SECTIONS["tiny"] = tiny

    def state(out: Path) -> str:
        from nnlut import load

        res = json.loads((out / "results.json").read_text())
        n = res["sections"]["tiny"]["data"]["entries"]
        load(str(out / "tables" / f"gelu_{n}.json"))
        listed = _files.output_files(out) or []
        if not all((out / f).is_file() for f in listed) or "report.md" not in listed:
            return "mixed"
        stray = [f for f in snapshot(out) if f not in listed and f not in (USER_FILE, _files.MARKER)]
        return ("old" if n == 4 else "new") if not stray else f"mixed: {stray}"

    return drive(base, lambda out: main(["run", "--only", "tiny", "--entries", "4", "--out", str(out)]),
                 lambda out: main(["run", "--only", "tiny", "--entries", "6", "--out", str(out)]), state)


CASES = {"calibration": case_calibration, "export": case_export, "study": case_study}

if __name__ == "__main__":
    os.environ.setdefault("NNLUT_PROGRESS", "0")
    if "--no-exchange" in sys.argv:  # the portable two-rename swap instead of renameat2
        _files._libc = False
    result = CASES[sys.argv[1]](Path(sys.argv[2]))
    sys.stdout.write("FAULT-RESULT " + json.dumps(result) + "\n")
