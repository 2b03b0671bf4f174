"""The one exception type nnlut raises for bad input or bad files."""

from __future__ import annotations


class NNLUTError(ValueError):
    """Raised for invalid arguments, tables, configs and files.

    Messages name the offending value and what is allowed. Public entry points add
    what they were doing (the function, the module, the file) before re-raising.
    """


def context(err: NNLUTError, what: str) -> NNLUTError:
    """Return a copy of ``err`` whose message is prefixed with ``what``."""
    return NNLUTError(f"{what}: {err}")
