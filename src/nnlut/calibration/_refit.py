"""Refitting one table to the inputs it really sees.

The table's network (breakpoints and values) is retrained on the observed input distribution:
the loss is the mean squared error of the table against its exact function over the observed
samples (relative error for tables whose error measure is relative, such as range-reduced
reciprocal and rsqrt), with a light floor of uniform weight over the domain so the table
stays sound where no sample fell. Breakpoints move by the same trainer as fitting, on a
density built from sample quantiles; the values are then refit exactly by weighted least
squares on the samples. Tail constraints (exact asymptote segments) are kept. Tables of the
scaled functions (reciprocal, rsqrt) are refit for relative error, which is what Softmax and
LayerNorm pass on.

Domain extension: when more than ``EXTEND_FRACTION`` of the samples lie beyond a saturating
edge of the domain, the domain is widened to the samples' 1e-4 .. 1 - 1e-4 quantiles.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .._errors import NNLUTError
from ..core._functions import FunctionSpec, get_function
from ..core._table import Table
from ..fitting._layout import Layout
from ..fitting._train import train
from ..fitting._values import refit_least_squares, values_to_table_arrays
from ..fixed._quantize import fit_tails as _fit_tails

EXTEND_FRACTION = 1e-3
ANCHOR_SHARE = 0.01  # share of the loss spread uniformly over the domain
MIN_SAMPLES = 64


@dataclass
class RefitInfo:
    samples: int
    in_domain: int
    domain_before: tuple[float, float]
    domain_after: tuple[float, float]
    error_measure: str
    rms_before: float
    rms_after: float
    max_before: float
    max_after: float
    notes: list[str] = field(default_factory=list)
    input_scale: dict[str, Any] | None = None  # INT8 tables: the input scale chosen (see _scale.py)

    @property
    def extended(self) -> bool:
        return self.domain_after != self.domain_before

    def as_dict(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d["extended"] = self.extended
        if d["input_scale"] is None:
            del d["input_scale"]
        return d


def reduce_inputs(table: Table, x: np.ndarray) -> np.ndarray:
    """The values the piecewise-linear core of ``table`` sees for inputs ``x`` (before clamping):
    the range-reduced mantissas for scaled tables, ``x`` itself otherwise."""
    from ..core._eval import reduce_input

    return x if table.scaling is None else reduce_input(table.scaling, x)[0]


def _weighted_errors(table: Table, spec: FunctionSpec, u: np.ndarray, rel: bool, w: np.ndarray) -> tuple[float, float]:
    """(importance-weighted RMS error, max error) of the table's core on samples ``u``."""
    if len(u) == 0:
        return float("nan"), float("nan")
    plain = table.replace(scaling=None)
    y = spec(u)
    e = plain(u) - y
    if rel:
        e = e / np.maximum(np.abs(y), 1e-300)
    return float(np.sqrt(np.sum(w * e * e) / np.sum(w))), float(np.max(np.abs(e)))


def _refit_fixed(table: Any, samples: np.ndarray, importance: np.ndarray | None,
                 criterion: str | None = None) -> tuple[Any, RefitInfo]:
    """Fixed-point tables: the float source is refit, then made again in the table's format;
    an INT8 table whose input scale is open (``int8``) also gets the scale that fits the
    samples best (:func:`nnlut.calibration._scale.choose_input_scale`)."""
    from ..fixed._fitq import requantize
    from ._scale import choose_input_scale, is_open_int8

    new, info = refit_table(table.source, samples, importance)
    if not is_open_int8(table):
        return requantize(table, new), info
    out, choice = choose_input_scale(new, samples, importance, spec=table.meta["number_format"], before=table,
                                     criterion=criterion)
    info.input_scale = choice.as_dict()
    return out, info


def _refit_half(table: Any, samples: np.ndarray, importance: np.ndarray | None,
                criterion: str | None = None) -> tuple[Any, RefitInfo]:
    from ..fixed._half import to_half

    new, info = refit_table(table.source, samples, importance)
    return to_half(new, table.precision), info


def _kind_refitter(table: Any) -> Any:
    """How each table kind refits: float tables directly; fixed-point and half-precision ones
    through the float table they were made from, then the same format again."""
    from ..fixed._half import HalfTable
    from ..fixed._table import FixedTable

    if isinstance(table, Table):
        return None
    if isinstance(table, FixedTable) and table.source is not None:
        return _refit_fixed
    if isinstance(table, HalfTable):
        return _refit_half
    raise NNLUTError(f"calibration takes a float table, a fixed-point table made from one, or an FP16/BF16 table; "
                     f"got {type(table).__name__}" + (" without its float source" if isinstance(table, FixedTable) else ""))


def refit_table(table: Any, samples: np.ndarray, importance: np.ndarray | None = None, *,
                input_scale_criterion: str | None = None) -> tuple[Any, RefitInfo]:
    """A new table fitted to ``samples`` (the op's raw table inputs, any length), each sample
    counted with its ``importance`` (default 1): how much its error matters downstream.
    Any table kind: fixed-point and FP16/BF16 tables refit their float source and are made
    again in their format (see :func:`_kind_refitter`); an ``int8`` table's input scale is
    chosen by ``input_scale_criterion`` (``rms`` default, ``mean_abs``; see
    :func:`nnlut.calibration._scale.choose_input_scale`)."""
    other = _kind_refitter(table)
    if other is not None:
        return other(table, samples, importance, input_scale_criterion)
    if table.function is None:
        raise NNLUTError("only tables of a registered function can be calibrated")
    spec = get_function(table.function)
    if table.domain is None:
        raise NNLUTError(f"table for {spec.name} has no domain")
    # reciprocal and rsqrt scale an op's whole output (Softmax, LayerNorm): their relative
    # error is what matters downstream, whatever measure the table was first fitted with
    rel = spec.scaling is not None or table.meta.get("error_measure", "abs") == "rel"
    samples = np.asarray(samples, dtype=np.float64)
    imp = np.ones_like(samples) if importance is None else np.asarray(importance, dtype=np.float64)
    keep = np.isfinite(samples) & np.isfinite(imp) & (imp >= 0)
    samples, imp = samples[keep], imp[keep]
    if table.scaling is not None:  # scaled tables see positive inputs only
        pos = samples > 0 if table.scaling.negative == "nan" else samples != 0
        samples, imp = samples[pos], imp[pos]
    u = reduce_inputs(table, samples)
    lo, hi = table.domain
    tails = _fit_tails(table, spec)
    notes: list[str] = []
    if len(u) < MIN_SAMPLES:
        raise NNLUTError(f"{spec.name}: only {len(u)} usable samples; calibration needs at least {MIN_SAMPLES}")
    new_lo, new_hi = lo, hi
    if tails[1].kind == "clamp" and np.mean(u > hi) > EXTEND_FRACTION:
        new_hi = float(max(hi, np.quantile(u, 1 - 1e-4)))
        notes.append(f"domain extended above {hi:g} to {new_hi:g} ({np.mean(u > hi):.2%} of inputs were beyond)")
    if tails[0].kind == "clamp" and np.mean(u < lo) > EXTEND_FRACTION and table.scaling is None:
        new_lo = float(min(lo, np.quantile(u, 1e-4)))
        notes.append(f"domain extended below {lo:g} to {new_lo:g} ({np.mean(u < lo):.2%} of inputs were beyond)")
    if (new_lo, new_hi) != (lo, hi):
        try:
            spec.check_defined_on(new_lo, new_hi)
        except NNLUTError:
            new_lo, new_hi = lo, hi
            notes.append("domain not extended: the function is undefined there")
    sel = (u >= new_lo) & (u <= new_hi)
    inside, imp_in = u[sel], imp[sel]
    imp_in = imp_in / imp_in.sum() if imp_in.sum() > 0 else np.full(len(inside), 1.0 / max(len(inside), 1))
    if len(inside) < MIN_SAMPLES:
        raise NNLUTError(f"{spec.name}: only {len(inside)} samples fall in the domain [{new_lo:g}, {new_hi:g}]")
    before = _weighted_errors(table, spec, inside, rel, imp_in)

    # density of the samples on quantile bins, plus a uniform floor
    edges = np.unique(np.quantile(inside, np.linspace(0, 1, 129)))
    edges[0], edges[-1] = new_lo, new_hi
    edges = np.unique(edges)
    counts = np.histogram(inside, edges, weights=imp_in)[0].astype(np.float64)
    widths = np.maximum(np.diff(edges), 1e-300)
    dens = (1 - ANCHOR_SHARE) * counts / counts.sum() / widths + ANCHOR_SHARE / (new_hi - new_lo)

    def weight(x: np.ndarray) -> np.ndarray:
        k = np.clip(np.searchsorted(edges, x, side="right") - 1, 0, len(dens) - 1)
        w = np.sqrt(dens[k])
        return w / np.maximum(np.abs(spec(x)), 1e-300) if rel else w

    layout = Layout(table.entries, tails)
    anchors = np.linspace(new_lo, new_hi, 513)
    xs = np.concatenate([inside, anchors])
    ys = spec(xs)
    ws = np.concatenate([(1 - ANCHOR_SHARE) * imp_in, np.full(len(anchors), ANCHOR_SHARE / len(anchors))])
    if rel:
        ws = ws / np.maximum(ys * ys, 1e-300)

    def lsq(nodes: np.ndarray) -> tuple[np.ndarray, float]:
        v = refit_least_squares(xs, ys, ws, nodes, layout)
        e = np.interp(xs, nodes, v) - ys
        return v, float(np.sum(ws * e * e))

    # two starts: the current breakpoints, and the L2-optimal density (rho f''^2)^(1/5) of the samples
    starts = []
    kept = table.breakpoints[(table.breakpoints > new_lo) & (table.breakpoints < new_hi)]
    if len(kept) == table.entries - 1:
        starts.append(np.concatenate([[new_lo], kept, [new_hi]]))
    grid = np.linspace(new_lo, new_hi, 8193)
    fpp = np.abs(np.gradient(np.gradient(spec(grid), grid), grid))
    if rel:
        fpp = fpp / np.maximum(np.abs(spec(grid)), 1e-300)
    k = np.clip(np.searchsorted(edges, grid, side="right") - 1, 0, len(dens) - 1)
    rho = (dens[k] * fpp**2) ** 0.2 + 1e-12
    cdf = np.concatenate([[0.0], np.cumsum(0.5 * (rho[1:] + rho[:-1]) * np.diff(grid))])
    start = np.interp(np.linspace(0, 1, table.entries + 1), cdf / cdf[-1], grid)
    start[0], start[-1] = new_lo, new_hi
    if np.all(np.diff(start) > 0):
        starts.append(start)
    if not starts:
        raise NNLUTError(f"{spec.name}: no valid starting breakpoints for calibration")
    nodes = min(starts, key=lambda n: lsq(n)[1])
    v0 = lsq(nodes)[0]
    res = train(spec.__call__, new_lo, new_hi, layout, nodes, v0, weight=weight, schedule=(2.0,), max_iter=400)
    # exact values for the trained breakpoints: weighted least squares on samples plus anchors
    nodes = res.nodes
    v, _ = lsq(nodes)
    bp, s, t = values_to_table_arrays(nodes, v)
    for side, tail in ((0, tails[0]), (-1, tails[1])):
        if tail.kind == "asymptote":
            s[side], t[side] = tail.slope, tail.intercept
        elif tail.kind == "flat":
            s[side] = 0.0
    meta = dict(table.meta)
    meta["table_domain"] = [new_lo, new_hi]
    new = Table(bp, s, t, domain=(new_lo, new_hi), tails=table.tails, limits=table.limits, scaling=table.scaling,
                function=table.function, meta=meta)
    after = _weighted_errors(new, spec, inside, rel, imp_in)
    info = RefitInfo(len(samples), len(inside), (lo, hi), (new_lo, new_hi), "rel" if rel else "abs",
                     before[0], after[0], before[1], after[1], notes)
    new.meta["calibration"] = info.as_dict()
    return new, info
