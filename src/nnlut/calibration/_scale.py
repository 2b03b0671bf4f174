"""Choosing an INT8 table's power-of-two input scale from the inputs it really sees.

In GQA-LUT's INT8 datapath (``int8``, :func:`nnlut.fixed.gqa_format`) an input ``x`` becomes
the code ``clamp(round(x * 2**P), -128, 127)``: a larger ``P`` resolves the input more finely
(step ``2**-P``) but clips it sooner (beyond about ``2**(7-P)``). Which side costs more depends
on where the op's inputs lie, so calibration decides, per table:

1. the observed samples (the values the table's core sees: raw inputs, or the range-reduced
   mantissas of 1/x and 1/sqrt x) are split at random into a fit part (75%) and a held-out
   part (25%);
2. for every candidate ``P`` (0 .. in_bits-1) a quantisation-aware table is fitted
   (:func:`nnlut.fixed.fit_quantized`, minimax over the input codes) on the codes the fit part
   reaches: from its smallest to its largest sample, within the codes ``P`` can represent
   (the table's domain for range-reduced tables);
3. each candidate is evaluated through the integer datapath, input rounding and saturation
   included, against the exact float64 function on the held-out samples;
4. the candidate with the smallest error by the criterion wins: importance-weighted RMS error
   by default (``rms``, the refit's own loss: rare clipped outliers weigh in squared), or the
   weighted mean absolute error (``mean_abs``: the bulk's resolution weighs more); relative
   error for 1/x and 1/sqrt x, as :func:`nnlut.calibration.refit_table` measures them. A tie
   goes to the finer scale. A candidate whose representable range holds fewer than two of the codes
   the data reaches cannot be fitted and is listed as such.

The chosen table is the one fitted on the fit part, so the held-out error reported is the
error of the table that ships.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .._errors import NNLUTError
from ..core._functions import get_function
from ..core._table import Table
from ..fixed._fitq import fit_quantized
from ..fixed._format import FixedSpec, gqa_format, parse_format
from ..fixed._table import FixedTable
from ._refit import MIN_SAMPLES, reduce_inputs

HELD_OUT = 0.25  # share of the samples kept out of the fit to judge the candidates
# how a candidate's held-out errors e (weights w) become one figure; the smallest wins
CRITERIA = {
    "rms": lambda e, w: float(np.sqrt(np.sum(w * e * e) / np.sum(w))),
    "mean_abs": lambda e, w: float(np.sum(w * np.abs(e)) / np.sum(w)),
}
DEFAULT_CRITERION = "rms"


@dataclass
class ScaleChoice:
    """What :func:`choose_input_scale` chose and why.

    ``chosen``: P (input scale ``2**-P``); ``candidates``: one record per P tried (``P``,
    ``input_range``: the representable inputs ``[-2**(b-1), 2**(b-1)-1] * 2**-P``;
    ``fit_range``: the inputs fitted, or None if none could be; ``rms``, ``mean_abs``, ``max``:
    held-out error; ``clipped``: share of held-out samples beyond the representable range);
    ``before``: the same measures for the table before this calibration (P and errors),
    when it was given.
    """

    chosen: int
    criterion: str
    error_measure: str
    fitted_on: int
    held_out: int
    candidates: list[dict[str, Any]] = field(default_factory=list)
    before: dict[str, Any] | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"chosen": self.chosen, "criterion": self.criterion, "error_measure": self.error_measure,
                "fitted_on": self.fitted_on, "held_out": self.held_out, "candidates": self.candidates,
                "before": self.before}


def is_open_int8(table: Any) -> bool:
    """Whether ``table`` is an INT8 table whose input scale is left to the data (format spec
    ``int8`` without ``:P``), as ``ApproxConfig(number_format="int8")`` makes them."""
    spec = getattr(table, "meta", {}).get("number_format") if isinstance(table, FixedTable) else None
    if not isinstance(spec, str):
        return False
    fmt = parse_format(spec)
    return isinstance(fmt, FixedSpec) and fmt.gqa and fmt.in_frac is None


def _errors(table: FixedTable, f: Any, u: np.ndarray, w: np.ndarray, rel: bool) -> dict[str, float]:
    """Every criterion's figure and the max error of ``table``'s integer core at inputs ``u``
    against ``f``."""
    y = f(u)
    e = table.core(u) - y
    if rel:
        e = e / np.maximum(np.abs(y), 1e-300)
    return {**{name: c(e, w) for name, c in CRITERIA.items()}, "max": float(np.max(np.abs(e)))}


def choose_input_scale(source: Table, samples: np.ndarray, importance: np.ndarray | None = None, *,
                       spec: str = "int8", candidates: tuple[int, ...] | None = None, seed: int = 0,
                       criterion: str | None = None,
                       before: FixedTable | None = None) -> tuple[FixedTable, ScaleChoice]:
    """The INT8 version of ``source`` whose input scale ``2**-P`` fits ``samples`` best.

    Args:
        source: the float :class:`~nnlut.Table` (after its own refit) of a registered function.
        samples: float64 array ``(n,)`` of the op's raw table inputs, any length >= 64 usable.
        importance: float64 array ``(n,)`` of non-negative weights (default 1 each).
        spec: the open format spec, ``"int8"`` (its input width sets the candidates).
        candidates: the P values to try (default ``0 .. in_bits-1``).
        seed: seed of the fit / held-out split.
        criterion: ``rms`` or ``mean_abs`` (see :data:`CRITERIA`); default
            :data:`DEFAULT_CRITERION`.
        before: the table before this calibration, measured on the same held-out samples.

    Returns:
        ``(table, choice)``: the chosen :class:`~nnlut.fixed.FixedTable` (``meta
        ["number_format"]`` = ``spec``, ``meta["input_scale"]`` = ``choice.as_dict()``) and the
        :class:`ScaleChoice` (see the module docstring for the criterion).
    """
    criterion = DEFAULT_CRITERION if criterion is None else criterion
    if criterion not in CRITERIA:
        raise NNLUTError(f"input scale criterion {criterion!r} is unknown; allowed: {', '.join(CRITERIA)}")
    fmt = parse_format(spec)
    if not (isinstance(fmt, FixedSpec) and fmt.gqa):
        raise NNLUTError(f"the input scale is chosen for the open INT8 format 'int8', not {spec!r}")
    bits = fmt.in_bits
    cands = tuple(range(bits)) if candidates is None else tuple(candidates)
    bad = [p for p in cands if isinstance(p, bool) or not isinstance(p, int) or not 0 <= p < bits]
    if not cands or bad:
        raise NNLUTError(f"input scale candidates must be integers P in [0, {bits - 1}], got {list(cands)}")
    if source.function is None or source.domain is None:
        raise NNLUTError("an INT8 table's input scale needs a float table of a registered function with a domain")
    f = get_function(source.function)
    rel = f.scaling is not None or source.meta.get("error_measure", "abs") == "rel"
    x = np.asarray(samples, dtype=np.float64).reshape(-1)
    w = np.ones_like(x) if importance is None else np.asarray(importance, dtype=np.float64).reshape(-1)
    if w.shape != x.shape:
        raise NNLUTError(f"importance has {w.size} values for {x.size} samples; give one per sample")
    keep = np.isfinite(x) & np.isfinite(w) & (w >= 0)
    if source.scaling is not None:  # range-reduced tables see positive inputs only
        keep &= x > 0 if source.scaling.negative == "nan" else x != 0
    u, w = reduce_inputs(source, x[keep]), w[keep]
    if len(u) < MIN_SAMPLES:
        raise NNLUTError(f"{f.name}: only {len(u)} usable samples; choosing an input scale needs at least {MIN_SAMPLES}")
    order = np.random.default_rng(seed).permutation(len(u))
    n_hold = max(1, round(HELD_OUT * len(u)))
    hold, fit = order[:n_hold], order[n_hold:]
    uh, wh = u[hold], w[hold]
    if not np.sum(wh) > 0:
        wh = np.ones_like(uh)
    lo, hi = float(u[fit].min()), float(u[fit].max())
    c_lo, c_hi = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    best: tuple[float, int, FixedTable] | None = None
    records = []
    for p in sorted(cands):
        r_lo, r_hi = c_lo * 2.0**-p, c_hi * 2.0**-p
        rec: dict[str, Any] = {"P": p, "input_range": [r_lo, r_hi],
                               "clipped": float(np.mean((uh < r_lo - 2.0 ** -(p + 1)) | (uh > r_hi + 2.0 ** -(p + 1))))}
        rng = None if source.scaling is not None else (max(lo, r_lo), min(hi, r_hi))
        try:
            table = fit_quantized(source, gqa_format(p, bits), input_range=rng)
        except NNLUTError as e:
            rec.update(fit_range=None, **dict.fromkeys((*CRITERIA, "max")), note=str(e))
            records.append(rec)
            continue
        rec["fit_range"] = list(rng) if rng is not None else list(source.domain)
        rec.update(_errors(table, f, uh, wh, rel))
        records.append(rec)
        if best is None or rec[criterion] <= best[0]:  # ties: the finer scale (larger P, tried later)
            best = (rec[criterion], p, table)
    if best is None:
        raise NNLUTError(f"{f.name}: no input scale 2**-P, P in {list(cands)}, holds two input codes of the observed "
                         f"range [{lo:g}, {hi:g}]")
    _, chosen, table = best
    choice = ScaleChoice(chosen, criterion, "rel" if rel else "abs", len(fit), len(hold), records)
    if before is not None:
        choice.before = {"P": before.fmt.in_frac, **_errors(before, f, uh, wh, rel)}
    table.meta["number_format"] = spec
    table.meta["input_scale"] = choice.as_dict()
    return table, choice
