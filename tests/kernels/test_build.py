"""The kernels' build cache is keyed on every part of the C source."""

from __future__ import annotations

import shutil

from nnlut.kernels import _build


def test_the_build_key_covers_every_source_part(tmp_path, monkeypatch):
    src = tmp_path / "csrc"
    shutil.copytree(_build.SRC_DIR, src)
    monkeypatch.setattr(_build, "SRC_DIR", src)
    parts = sorted(p.name for p in src.iterdir())
    assert {"nnlut_kernels.c", "common.h", "search.h", "table.h", "rows.h", "fixed.h"} <= set(parts)
    base = _build.source_key("cc", ["-O3"])
    assert _build.source_key("cc", ["-O3"]) == base
    assert _build.source_key("cc", ["-O2"]) != base
    for name in parts:
        original = (src / name).read_bytes()
        (src / name).write_bytes(original + b"\n/* changed */\n")
        assert _build.source_key("cc", ["-O3"]) != base, name
        (src / name).write_bytes(original)
    assert _build.source_key("cc", ["-O3"]) == base
