"""Plots (matplotlib, imported lazily, rendered off-screen)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from .._errors import NNLUTError
from .._plotting import pyplot as _pyplot
from .._plotting import save_png as _save

if TYPE_CHECKING:
    from ..core._table import Table


def plot_table(table: Table, path: str, *, domain: tuple[float, float] | None = None,
               others: Sequence[tuple[str, Any]] = ()) -> None:
    """Function, table (and ``others``: (label, callable) pairs) on top; error below."""
    from ..core._functions import get_function

    plt = _pyplot()
    if domain is None:
        fit_dom = table.meta.get("eval_domain") or (list(table.domain) if table.domain else None)
        if fit_dom is None:
            bp = table.breakpoints
            pad = (bp[-1] - bp[0]) * 0.1 + 1.0 if len(bp) else 1.0
            fit_dom = [bp[0] - pad if len(bp) else -1.0, bp[-1] + pad if len(bp) else 1.0]
        domain = (float(fit_dom[0]), float(fit_dom[1]))
    lo, hi = domain
    x = np.geomspace(lo, hi, 4001) if lo > 0 and hi / lo > 100 else np.linspace(lo, hi, 4001)
    y_tab = table(x)
    spec = None
    if table.function is not None:
        try:
            spec = get_function(table.function)
        except NNLUTError:
            spec = None
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(7, 6), sharex=True, gridspec_kw={"height_ratios": [3, 2]})
    name = table.function or "table"
    if spec is not None:
        ax1.plot(x, spec(x), color="black", lw=1.2, label=f"{name} (exact)")
    ax1.plot(x, y_tab, color="tab:red", lw=1.0, ls="--", label=f"{table.entries}-entry table")
    bp = table.breakpoints[(table.breakpoints >= lo) & (table.breakpoints <= hi)]
    ax1.plot(bp, table(bp), "o", color="tab:red", ms=3)
    if spec is not None:
        ax2.plot(x, y_tab - spec(x), color="tab:red", lw=1.0, label=f"{table.entries}-entry table")
        for label, fn in others:
            ax2.plot(x, fn(x) - spec(x), lw=0.8, label=label)
        ax2.axhline(0, color="black", lw=0.5)
        ax2.set_ylabel("table - exact")
        ax2.legend(fontsize=8)
    for b in bp:
        ax2.axvline(b, color="gray", lw=0.3)
    if lo > 0 and hi / lo > 100:
        ax1.set_xscale("log")
    ax1.legend(fontsize=8)
    ax1.set_title(f"{name}: {table.entries} entries" + (f", {table.scaling.mode} scaling" if table.scaling else ""))
    ax2.set_xlabel("x")
    _save(fig, path)
    plt.close(fig)


def plot_error_curves(curves: Sequence[tuple[str, np.ndarray, np.ndarray]], path: str, *, title: str,
                      logy: bool = True) -> None:
    """|error| against x for several methods."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 3.5))
    for label, x, err in curves:
        ax.plot(x, np.maximum(np.abs(err), 1e-12), lw=0.9, label=label)
    if logy:
        ax.set_yscale("log")
    ax.set_title(title)
    ax.set_xlabel("x")
    ax.set_ylabel("|error|")
    ax.legend(fontsize=8)
    _save(fig, path)
    plt.close(fig)
