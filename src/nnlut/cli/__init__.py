"""The ``nnlut`` command line: one argparse app, one module per command group.

Known errors print one line (``nnlut <command>: error: ...``) and exit with status 2; set
``NNLUT_DEBUG=1`` to see the full traceback instead.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Sequence

from .._errors import NNLUTError

_COMMANDS = ("fit", "plot", "eval", "calibrate", "sim", "hw", "export", "export-model", "data", "run", "inspect")


class _Parser(argparse.ArgumentParser):
    def __init__(self, *args, **kwargs) -> None:  # noqa: ANN002, ANN003
        super().__init__(*args, **kwargs)
        # read "-1e12" and "-inf" as negative numbers (values), as argparse already reads "-5"
        self._negative_number_matcher = re.compile(r"^-(\d+\.?\d*|\.\d+)(e[+-]?\d+)?$|^-inf(inity)?$", re.IGNORECASE)

    def error(self, message: str) -> None:  # type: ignore[override]
        raise _UsageError(f"{self.prog}: error: {message} (see '{self.prog} --help')")


class _UsageError(Exception):
    pass


def build_parser() -> argparse.ArgumentParser:
    from importlib import import_module

    from .. import __version__

    parser = _Parser(prog="nnlut", description="NN-LUT piecewise-linear tables for Transformer non-linear ops.")
    parser.add_argument("--version", action="version", version=f"nnlut {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name in _COMMANDS:
        if name != "export":  # registered by the hw module
            import_module(f"._{name.replace('-', '_')}", __name__).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``nnlut`` console script; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = os.environ.get("NNLUT_DEBUG", "") not in ("", "0")
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if args.command is None:
            parser.print_help()
            return 2
        return int(args.handler(args) or 0)
    except _UsageError as e:
        print(str(e), file=sys.stderr)
        return 2
    except NNLUTError as e:
        if debug:
            raise
        cmd = f"nnlut {argv[0]}" if argv and argv[0] in _COMMANDS else "nnlut"
        print(f"{cmd}: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # a full disk, a permission changed mid-run: not a bug, one line
        if debug:
            raise
        cmd = f"nnlut {argv[0]}" if argv and argv[0] in _COMMANDS else "nnlut"
        where = f" ({e.filename})" if getattr(e, "filename", None) else ""
        print(f"{cmd}: error: {e.strerror or e}{where}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("nnlut: interrupted", file=sys.stderr)
        return 130
