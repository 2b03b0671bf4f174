"""``approximated(model, config)``: a model approximated for the length of a ``with`` block."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from torch import nn

from ._config import ApproxConfig
from ._swap import ApproxReport, approximate_, approximation_report, restore_


@contextmanager
def approximated(model: nn.Module, config: ApproxConfig | None = None, **kwargs: Any) -> Iterator[ApproxReport]:
    """Approximate ``model`` as :func:`approximate_` does (same arguments) for the block, and
    restore it on the way out, also when the block raises::

        with nnlut.approximated(model, ApproxConfig(entries=16)) as report:
            y = model(**batch)
        # model is the original again (bit-identical outputs)

    Yields the :class:`ApproxReport`. A model the block restored itself is left as it is.
    """
    report = approximate_(model, config, **kwargs)
    try:
        yield report
    finally:
        if approximation_report(model) is not None:
            restore_(model)
