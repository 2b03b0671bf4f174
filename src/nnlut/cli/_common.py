"""Helpers shared by CLI commands: output paths and plain-text tables."""

from __future__ import annotations

import argparse
import math
import os
from collections.abc import Callable, Sequence
from pathlib import Path

from .._errors import NNLUTError
from .._text import format_table  # noqa: F401  (commands import it from here)


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
    """Fail early (before any work) if ``path`` cannot receive a result folder. Nothing is
    created: results are written whole by :class:`nnlut._files.OutputFolder` at the end."""
    from .._files import check_output_folder

    return check_output_folder(path)


# ----------------------------------------------------------------------------- argument types
# argparse calls these while parsing, so a bad value is a one-line usage error before any work.
def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid integer {text!r}") from None


_INT_MAX = 2**31 - 1  # counts beyond this are typos, and overflow int32 arrays downstream


def int_at_least(lo: int, hi: int | None = None) -> Callable[[str], int]:
    """An argparse type: an integer in ``[lo, hi]`` (``hi`` None: up to 2**31 - 1)."""
    def parse(text: str) -> int:
        v = _int(text)
        if v < lo or v > (hi if hi is not None else _INT_MAX):
            allowed = (f"between {lo} and {hi}" if hi is not None else f"at least {lo}" if v < lo
                       else f"at most {_INT_MAX}")
            raise argparse.ArgumentTypeError(f"must be {allowed}, got {v}")
        return v

    parse.__name__ = "integer"
    return parse


ENTRIES = int_at_least(2, 4096)  # table entries: what the fitter accepts
SEED = int_at_least(0, 2**32 - 1)  # numpy seeds are unsigned 32-bit


def finite_float(text: str) -> float:
    """An argparse type: a finite float."""
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid number {text!r}") from None
    if not math.isfinite(v):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text!r}")
    return v


def check_interval(values: Sequence[float] | None, option: str) -> tuple[float, float] | None:
    """``(lo, hi)`` from a two-value option, or None; lo < hi (both finite) or NNLUTError."""
    if values is None:
        return None
    lo, hi = values
    if not lo < hi:
        raise NNLUTError(f"{option} needs LO < HI, got {lo:g} {hi:g}")
    if not math.isfinite(hi - lo):
        raise NNLUTError(f"{option} is too wide: [{lo:g}, {hi:g}] overflows a float")
    return float(lo), float(hi)
