"""Kill a calibration save, an export and a study run at every write/rename step.

The driver (``tests/cli/fault_driver.py``) runs each writer in forked children that exit
abruptly at step k = 1, 2, ... (``NNLUT_FAULT_AT``) until one gets to the end. Every kill must
leave the previous result or the new one, whole and loadable, the user's own file untouched,
and nothing else once the next write has swept (its first action).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from nnlut._files import FAULT_EXIT

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.slow, pytest.mark.skipif(not hasattr(os, "fork"), reason="the driver forks its children")]


def _drive(case: str, base: Path, *extra: str) -> list[dict]:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT / "src"), str(ROOT)]), NNLUT_PROGRESS="0")
    env.pop("NNLUT_FAULT_AT", None)
    proc = subprocess.run([sys.executable, "-m", "tests.cli.fault_driver", case, str(base), *extra], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("FAULT-RESULT "))
    return json.loads(line.removeprefix("FAULT-RESULT "))


def _check(records: list[dict], key: str) -> None:
    kills = [r for r in records if r["rc"] == FAULT_EXIT]
    last = records[-1]
    assert last["rc"] == 0 and last[key] == "new", last  # the run without a fault completes
    assert len(kills) >= 8, "a multi-file result has at least this many write/rename steps"
    assert all(r[key] in ("old", "new") for r in kills), [r for r in kills if r[key] not in ("old", "new")]
    assert all(r["user_file"] for r in records)
    assert all(r["leftovers"] == [] for r in records), [r for r in records if r["leftovers"]]
    # both outcomes occur: the kill points span the whole write, before and after publishing
    assert {r[key] for r in kills} == {"old", "new"}


@pytest.mark.parametrize("case", ["calibration", "export", "study"])
def test_kill_at_every_step_leaves_old_or_new_result(tmp_path, case):
    _check(_drive(case, tmp_path), "state")


def test_portable_swap_recovers_on_the_next_write(tmp_path):
    """Without renameat2 the swap takes two renames; a kill between them is repaired by the
    sweep that starts the next write (the previous result is renamed back)."""
    records = _drive("calibration", tmp_path, "--no-exchange")
    _check(records, "state_after_sweep")
