"""Library logger and progress bars.

nnlut never prints from library code. Messages go to the ``nnlut`` logger; the level can
be set with the ``NNLUT_VERBOSITY`` environment variable (``debug``, ``info``, ``warning``,
``error``). Progress bars (tqdm, when installed) are shown on long work and can be switched
off with ``NNLUT_PROGRESS=0``.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")

logger = logging.getLogger("nnlut")

_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}
_level = os.environ.get("NNLUT_VERBOSITY", "").strip().lower()
if _level in _LEVELS:
    logger.setLevel(_LEVELS[_level])


def progress_enabled() -> bool:
    return os.environ.get("NNLUT_PROGRESS", "1").strip() not in ("0", "false", "no", "off")


def progress(items: Iterable[T], *, desc: str, total: int | None = None) -> Iterator[T]:
    """Iterate over ``items`` with a progress bar on stderr when enabled and available."""
    if progress_enabled() and sys.stderr is not None:
        try:
            from tqdm.auto import tqdm
        except ImportError:  # tqdm is optional
            pass
        else:
            yield from tqdm(items, desc=desc, total=total, leave=False, dynamic_ncols=True)
            return
    yield from items
