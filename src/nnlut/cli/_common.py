"""Helpers shared by CLI commands: output paths and plain-text tables."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from .._errors import NNLUTError


def check_output_file(path: str) -> Path:
    """Fail early (before any work) if ``path`` cannot be written."""
    p = Path(path)
    folder = p.parent if str(p.parent) else Path(".")
    if p.is_dir():
        raise NNLUTError(f"output {path!r} is a folder; give a file name")
    if not folder.is_dir():
        raise NNLUTError(f"cannot write {path!r}: folder {str(folder)!r} does not exist")
    if not os.access(folder, os.W_OK):
        raise NNLUTError(f"cannot write {path!r}: folder {str(folder)!r} is not writable")
    if p.exists() and not os.access(p, os.W_OK):
        raise NNLUTError(f"cannot write {path!r}: file is not writable")
    return p


def check_output_dir(path: str) -> Path:
    """Create ``path`` if needed and fail early if it cannot be written."""
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise NNLUTError(f"output folder {path!r} exists and is not a folder")
    try:
        p.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise NNLUTError(f"cannot create output folder {path!r}: {e.strerror or e}") from None
    if not os.access(p, os.W_OK):
        raise NNLUTError(f"output folder {path!r} is not writable")
    return p


def format_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A plain, aligned text table."""
    cells = [[str(h) for h in headers]] + [[_fmt(v) for v in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["  ".join(c.rjust(w) if j else c.ljust(w) for j, (c, w) in enumerate(zip(r, widths, strict=False))) for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _fmt(v: object) -> str:
    if isinstance(v, float):
        if v != v:
            return "-"
        if v == 0 or 1e-3 <= abs(v) < 1e4:
            return f"{v:.4g}"
        return f"{v:.3e}"
    return str(v)
