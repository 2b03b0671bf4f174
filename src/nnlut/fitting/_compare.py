"""Side-by-side errors of NN-LUT, the conventional placements and I-BERT for one function."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from ..core._functions import FunctionSpec, get_function
from ..core._table import Table
from ._fit import METHODS, _Problem, fit
from ._metrics import measure


@dataclass
class Row:
    """One method's errors; ``table`` is None for I-BERT (a polynomial, not a table)."""

    method: str
    errors: dict[str, Any]
    table: Table | None
    seconds: float

    def as_dict(self) -> dict[str, Any]:
        return {"method": self.method, "seconds": self.seconds, **{k: self.errors[k] for k in
                ("max_abs", "mean_abs", "max_rel", "mean_rel")}}


def compare(
    func: str | FunctionSpec,
    entries: int = 16,
    *,
    domain: tuple[float, float] | None = None,
    range_reduction: bool = False,
    seed: int = 0,
    restarts: int = 1,
    methods: tuple[str, ...] = METHODS,
    include_ibert: bool = True,
) -> list[Row]:
    """Fit ``func`` with each of ``methods`` (and evaluate I-BERT's polynomial where it has
    one) and measure all of them on the same dense grid over the evaluation domain."""
    from ..ibert._float import IBERT_FUNCTIONS

    spec = get_function(func)
    rows: list[Row] = []
    for m in methods:
        t0 = time.perf_counter()
        table = fit(spec, entries, domain=domain, method=m, range_reduction=range_reduction, seed=seed,
                    **({"restarts": restarts} if m == "nnlut" else {}))  # type: ignore[arg-type]
        rows.append(Row(m, table.meta["errors"], table, time.perf_counter() - t0))
    if include_ibert and spec.name in IBERT_FUNCTIONS and not range_reduction:
        eval_domain = _Problem(spec, domain, False, None).eval_domain
        t0 = time.perf_counter()
        errs = measure(IBERT_FUNCTIONS[spec.name], spec, eval_domain)
        rows.append(Row("ibert", errs, None, time.perf_counter() - t0))
    return rows
