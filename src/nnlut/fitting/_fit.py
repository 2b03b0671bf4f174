"""``fit``: make an N-entry table for a function, with NN-LUT or a conventional placement."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, Literal

import numpy as np

from .. import __version__
from .._errors import NNLUTError
from ..core._functions import FunctionSpec, Tail, check_domain, get_function
from ..core._scaling import Scaling
from ..core._table import Table
from ._full import full_domain_errors
from ._knots import bend_point, curvature_nodes, exponential_nodes, linear_nodes
from ._layout import Layout
from ._metrics import measure
from ._train import max_error_on_nodes, train
from ._values import refit_minimax, values_to_table_arrays

Method = Literal["nnlut", "linear", "exponential"]
METHODS = ("nnlut", "linear", "exponential")
_MIN_WIDTH = 1e-6  # segments narrower than this fraction of the domain are merged away
# Domains the float64 fitter resolves: |x| up to 1e12 (slopes times inputs and the dense error
# grids stay far from overflow) and a width of at least 1e-9 of max(1, |x|) (a grid of
# thousands of points over it stays distinct after rounding).
_DOMAIN_LIMIT = 1e12
_MIN_SPAN = 1e-9


def _check_fit_domain(lo: float, hi: float, what: str) -> None:
    big = max(abs(lo), abs(hi))
    if big > _DOMAIN_LIMIT:
        raise NNLUTError(f"{what} [{lo:g}, {hi:g}] reaches beyond +-{_DOMAIN_LIMIT:g}, the range the fitter resolves")
    if hi - lo < _MIN_SPAN * max(1.0, big):
        raise NNLUTError(f"{what} [{lo:g}, {hi:g}] is narrower than {_MIN_SPAN:g} x max(1, |x|), too narrow to place "
                         "breakpoints in float64")


def _check_entries(entries: Any) -> int:
    if isinstance(entries, bool) or not isinstance(entries, (int, np.integer)):
        raise NNLUTError(f"entries must be an integer, got {entries!r}")
    if not 2 <= int(entries) <= 4096:
        raise NNLUTError(f"entries must be between 2 and 4096, got {entries}")
    return int(entries)


class _Problem:
    """What is fitted: table domain, evaluation domain, tails, error weight, scaling."""

    def __init__(self, spec: FunctionSpec, domain: tuple[float, float] | None, range_reduction: bool,
                 error: str | None) -> None:
        self.spec = spec
        eval_domain = check_domain(domain, what="domain") if domain is not None else spec.domain
        if domain is not None:
            _check_fit_domain(*eval_domain, what="domain")
        if range_reduction:
            if spec.scaling is None or spec.full_range_domain is None:
                raise NNLUTError(
                    f"range reduction needs a function with power-of-two homogeneity (reciprocal, rsqrt), got {spec.name!r}"
                )
            if eval_domain[0] <= 0:
                raise NNLUTError(f"{spec.name} is undefined on [{eval_domain[0]:g}, {eval_domain[1]:g}]: it needs x > 0")
            self.table_domain = spec.full_range_domain
            self.scaling: Scaling | None = spec.scaling.scaling("full")
            self.tails = (Tail("clamp"), Tail("clamp"))
            self.error = error or "rel"
        else:
            lo, hi = eval_domain
            spec.check_defined_on(lo, hi)
            self.scaling = None
            if spec.scaling is not None and lo < 1.0:
                if hi < spec.scaling.period:
                    raise NNLUTError(
                        f"{spec.name} with inputs below 1 needs a domain reaching at least {spec.scaling.period}, "
                        f"got [{lo:g}, {hi:g}]"
                    )
                self.table_domain = (1.0, hi)
                self.scaling = spec.scaling.scaling("paper")
            elif domain is None:
                self.table_domain = spec.table_domain
                if spec.scaling is not None and self.table_domain[0] == 1.0:
                    self.scaling = spec.scaling.scaling("paper")
            else:
                self.table_domain = eval_domain
            self.tails = spec.tails
            self.error = error or spec.error
        if self.error not in ("abs", "rel"):
            raise NNLUTError(f"error must be 'abs' or 'rel', got {self.error!r}")
        spec.check_defined_on(*self.table_domain)
        self.eval_domain = eval_domain

    @property
    def weight(self) -> Callable[[np.ndarray], np.ndarray] | None:
        if self.error == "abs":
            return None
        f = self.spec

        def w(x: np.ndarray) -> np.ndarray:
            return 1.0 / np.maximum(np.abs(f(x)), 1e-300)

        return w


def _table_from_nodes(prob: _Problem, nodes: np.ndarray, v: np.ndarray, meta: dict[str, Any]) -> Table:
    bp, s, t = values_to_table_arrays(nodes, v)
    # asymptote end segments are the asymptote exactly, not up to rounding
    left, right = prob.tails
    if left.kind == "asymptote":
        s[0], t[0] = left.slope, left.intercept
    if right.kind == "asymptote":
        s[-1], t[-1] = right.slope, right.intercept
    if left.kind == "flat":
        s[0] = 0.0
    if right.kind == "flat":
        s[-1] = 0.0
    limits = prob.spec.limits if prob.spec.limits is not None else None
    return Table(bp, s, t, domain=prob.table_domain, tails=(left.evaluation, right.evaluation), limits=limits,
                 scaling=prob.scaling, function=prob.spec.name, meta=meta)


def _merge_narrow(f: Callable, nodes: np.ndarray, v: np.ndarray, weight: Callable | None,
                  fixed_ends: tuple[bool, bool] = (False, False)) -> tuple[np.ndarray, np.ndarray, int]:
    """Replace segments narrower than _MIN_WIDTH of the domain by a split of the worst segment.

    An end segment whose line does not depend on its width (an asymptote or flat tail,
    ``fixed_ends``) is not merged: narrow, it says that the tail starts at the domain edge, and
    it is widened to twice _MIN_WIDTH (its breakpoint moves by that much at most). Each pass removes
    one narrow segment; a split can create a new narrow one only where the error is not
    finite, so the passes are bounded by twice the number of segments."""
    merged = 0
    span = nodes[-1] - nodes[0]
    nodes = nodes.copy()
    if len(nodes) > 3:
        if fixed_ends[0] and nodes[1] - nodes[0] < _MIN_WIDTH * span:
            nodes[1] = min(nodes[0] + 2 * _MIN_WIDTH * span, 0.5 * (nodes[0] + nodes[2]))
        if fixed_ends[1] and nodes[-1] - nodes[-2] < _MIN_WIDTH * span:
            nodes[-2] = max(nodes[-1] - 2 * _MIN_WIDTH * span, 0.5 * (nodes[-1] + nodes[-3]))
    for _ in range(2 * len(nodes)):
        widths = np.diff(nodes)
        narrow = np.flatnonzero(widths < _MIN_WIDTH * span)
        if len(narrow) == 0 or len(nodes) <= 3:
            break
        i = int(narrow[0])
        drop = i + 1 if i + 1 < len(nodes) - 1 else i  # never drop an end node
        nodes = np.delete(nodes, drop)
        v = np.delete(v, drop)
        errs = [max_error_on_nodes(f, nodes[k:k + 2], v[k:k + 2], weight) for k in range(len(nodes) - 1)]
        k = int(np.argmax(errs))
        mid = 0.5 * (nodes[k] + nodes[k + 1])
        nodes = np.insert(nodes, k + 1, mid)
        v = np.insert(v, k + 1, float(f(np.array([mid]))[0]))
        merged += 1
    return nodes, v, merged


def _initial_values(f: Callable, nodes: np.ndarray, layout: Layout) -> np.ndarray:
    M, c, _ = layout.matrix(nodes)
    vf = layout.free_from_values(f(nodes))
    return M @ vf + c


def fit(
    func: str | FunctionSpec,
    entries: int = 16,
    *,
    domain: tuple[float, float] | None = None,
    method: Method = "nnlut",
    range_reduction: bool = False,
    error: Literal["abs", "rel"] | None = None,
    seed: int = 0,
    restarts: int = 1,
    ratio: float | None = None,
) -> Table:
    """Fit an ``entries``-entry piecewise-linear table to a function.

    Args:
        func: registered function name (see :func:`nnlut.list_functions`) or a spec.
        entries: number of table entries N (N-1 breakpoints), 2..4096. Default 16.
        domain: evaluation interval ``(lo, hi)``; default: the function's. For ``rsqrt`` and
            ``reciprocal`` a domain reaching below 1 is served by paper-mode input scaling
            (table on ``[1, hi]``).
        method: ``"nnlut"`` (trained breakpoints), ``"linear"`` (equal widths) or
            ``"exponential"`` (widths growing geometrically from where f bends most); every
            method gets the minimax-optimal values for its breakpoints.
        range_reduction: table on one power-of-two period, every positive input reduced to
            it (``reciprocal``, ``rsqrt`` only); fits relative error.
        error: ``"abs"`` or ``"rel"``; default: the function's (relative with range reduction).
        seed: seeds the perturbed starts of restarts 2..n. The result is a deterministic
            function of the arguments: the same seed gives the same table, bit for bit.
        restarts: NN-LUT training runs, the first from the curvature start, the others from
            seeded perturbations of it; the best is kept. Default 1.
        ratio: width ratio for ``exponential``; default: the best ratio found by search.

    Returns:
        A :class:`Table` whose ``meta`` records the settings and the errors measured on a
        dense grid over the evaluation domain; ``meta["errors"]["full_domain"]`` has them over
        every finite FP16 and BF16 input and an FP32 sweep (see
        :func:`~nnlut.fitting.full_domain_errors`).
    """
    spec = get_function(func)
    entries = _check_entries(entries)
    if method not in METHODS:
        raise NNLUTError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    if isinstance(restarts, bool) or not isinstance(restarts, int) or restarts < 1:
        raise NNLUTError(f"restarts must be a positive integer, got {restarts!r}")
    prob = _Problem(spec, domain, range_reduction, error)
    searched = method == "nnlut" and domain is None and _owns_clamped_domain(prob)
    lo, hi = prob.table_domain
    layout = Layout(entries, prob.tails)
    weight = prob.weight
    f = spec.__call__
    meta: dict[str, Any] = {
        "method": method, "entries": entries, "error_measure": prob.error,
        "table_domain": [lo, hi], "eval_domain": list(prob.eval_domain), "nnlut_version": __version__,
    }

    failed = f"fitting {spec.name} with {entries} entries ({method}) on [{lo:g}, {hi:g}] failed"
    try:
        if method == "linear":
            nodes = linear_nodes(lo, hi, entries)
            v, _ = refit_minimax(f, nodes, layout, weight)
        elif method == "exponential":
            center = bend_point(f, lo, hi, weight)
            nodes, v, r = _best_exponential(f, lo, hi, entries, center, layout, weight, ratio)
            meta.update(center=center, ratio=r)
        elif searched:
            nodes, v, info = _fit_saturating(prob, entries, layout, seed, restarts)
            meta.update(seed=seed, restarts=restarts, **info)
        else:
            nodes, v, info = _fit_nnlut(f, lo, hi, entries, layout, weight, seed, restarts)
            meta.update(seed=seed, restarts=restarts, **info)
    except NNLUTError:
        raise
    except (ValueError, ArithmeticError) as e:  # the solver met non-finite values: float64 ran out
        raise NNLUTError(f"{failed}: {e} (the domain is too extreme for a float64 fit)") from None
    if not (np.all(np.isfinite(nodes)) and np.all(np.isfinite(v)) and np.all(np.diff(nodes) > 0)):
        raise NNLUTError(f"{failed}: the breakpoints or values are not finite and distinct (the domain is too extreme "
                         "for a float64 fit)")
    if searched:
        prob.table_domain = (float(nodes[0]), float(nodes[-1]))
        meta["table_domain"] = list(prob.table_domain)
    table = _table_from_nodes(prob, nodes, v, meta)
    table.meta["errors"] = measure(table, spec, prob.eval_domain)
    table.meta["errors"]["full_domain"] = full_domain_errors(table, spec)
    return table


def _fit_saturating(prob: _Problem, entries: int, layout: Layout, seed: int,
                    restarts: int) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """NN-LUT training on the searched domain (and, up to 8 entries, where training is cheap
    and the start matters most, on the default one too), each polished with its edges free;
    the table with the lower error over every input (tails included) is kept."""
    f, weight = prob.spec.__call__, prob.weight
    best: tuple[float, np.ndarray, np.ndarray, dict[str, Any]] | None = None
    domains = [_clamped_domain(prob, entries)] + ([prob.table_domain] if entries <= 8 else [])
    for lo, hi in dict.fromkeys(domains):
        nodes, v, info = _fit_nnlut(f, lo, hi, entries, layout, weight, seed, restarts)
        nodes, v, total = _polished(prob, layout, nodes, v)
        if best is None or total < best[0]:
            best = (total, nodes, v, info)
    assert best is not None
    return best[1], best[2], best[3]


def _owns_clamped_domain(prob: _Problem) -> bool:
    """Whether the fit chooses where the table ends: a saturating function (both tails clamped,
    finite limits at both infinities) on its default domain, without input scaling."""
    lim = prob.spec.limits
    return (prob.scaling is None and all(t.kind == "clamp" for t in prob.tails) and lim is not None
            and all(math.isfinite(v) for v in lim))


def _clamped_domain(prob: _Problem, entries: int) -> tuple[float, float]:
    """The table domain that balances the inner error against the clamped tails' error.

    Beyond a clamped edge the table holds its edge value while f runs on to its limit, so the
    max error over all inputs is the larger of the inner minimax error and the tails' gaps:
    a domain too narrow loses in the tails, one too wide spreads the entries thin. The domain
    is the default one scaled about its centre by a factor in [1/16, 4], found by
    golden-section search on log(factor) with the curvature placement and minimax values
    (cheap); NN-LUT training then runs on it."""
    f, weight = prob.spec.__call__, prob.weight
    layout = Layout(entries, prob.tails)
    lo0, hi0 = prob.table_domain
    centre, half = 0.5 * (lo0 + hi0), 0.5 * (hi0 - lo0)
    reach = half * 64 * np.geomspace(1e-3, 1.0, 256)  # inputs beyond either edge, out to 64 half-widths
    far_l, far_r = centre - reach, centre + reach

    def err(logk: float) -> float:
        k = math.exp(logk)
        lo, hi = centre - half * k, centre + half * k
        try:
            prob.spec.check_defined_on(lo, hi)
        except NNLUTError:
            return math.inf
        nodes = curvature_nodes(f, lo, hi, entries, weight)
        v, inner = refit_minimax(f, nodes, layout, weight, per_segment=32)
        tails = 0.0
        for value, far in ((v[0], far_l[far_l < lo]), (v[-1], far_r[far_r > hi])):
            if len(far):
                gap = np.abs(value - f(far))
                if weight is not None:
                    gap = gap * weight(far)
                tails = max(tails, float(np.max(gap)))
        return max(inner, tails)

    a, b = math.log(1 / 16), math.log(4.0)
    g = (math.sqrt(5) - 1) / 2
    c, d = b - g * (b - a), a + g * (b - a)
    fc, fd = err(c), err(d)
    for _ in range(16):
        if fc <= fd:
            b, d, fd = d, c, fc
            c = b - g * (b - a)
            fc = err(c)
        else:
            a, c, fc = c, d, fd
            d = a + g * (b - a)
            fd = err(d)
    best = c if fc <= fd else d
    if min(fc, fd) >= err(0.0):  # the default domain is as good
        return lo0, hi0
    k = math.exp(best)
    return centre - half * k, centre + half * k


def _clamped_total(prob: _Problem, nodes: np.ndarray, v: np.ndarray, inner: float) -> float:
    """``inner`` (the error on the table domain) or the clamped tails' gap, the larger."""
    f, weight = prob.spec.__call__, prob.weight
    span = nodes[-1] - nodes[0]
    reach = span * np.geomspace(1e-4, 64.0, 512)
    worst = inner
    for value, far in ((v[0], nodes[0] - reach), (v[-1], nodes[-1] + reach)):
        gap = np.abs(value - f(far))
        if weight is not None:
            gap = gap * weight(far)
        worst = max(worst, float(np.max(gap)))
    return worst


def _polished(prob: _Problem, layout: Layout, nodes: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """The trained table polished with its edges free (:mod:`._polish`), kept where its error
    over every input, tails included, is lower."""
    from ._polish import polish_clamped

    f, weight = prob.spec.__call__, prob.weight
    _, inner = refit_minimax(f, nodes, layout, weight)
    before = _clamped_total(prob, nodes, v, inner)
    new = polish_clamped(f, weight, nodes, v)
    if not (np.all(np.isfinite(new)) and np.all(np.diff(new) > 0)):
        return nodes, v, before
    try:
        prob.spec.check_defined_on(float(new[0]), float(new[-1]))
    except NNLUTError:
        return nodes, v, before
    v2, inner2 = refit_minimax(f, new, layout, weight)
    after = _clamped_total(prob, new, v2, inner2)
    return (new, v2, after) if after < before else (nodes, v, before)


def _fit_nnlut(f: Callable, lo: float, hi: float, entries: int, layout: Layout, weight: Callable | None,
               seed: int, restarts: int) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    if entries == 2 and layout.n_free == 0:
        # both ends are asymptotes: the only table is their intersection
        (a1, b1), (a2, b2) = ((t.slope, t.intercept) for t in (layout.source[0][1], layout.source[-1][1]))  # type: ignore[union-attr]
        if a1 == a2:
            raise NNLUTError("2 entries cannot follow two parallel asymptotes; use at least 3 entries")
        x = (b2 - b1) / (a1 - a2)
        if not lo < x < hi:
            raise NNLUTError("2 entries cannot follow both asymptotes inside this domain; use at least 3 entries")
        nodes = np.array([lo, x, hi])
        v, _ = refit_minimax(f, nodes, layout, weight)
        return nodes, v, {"train_iterations": 0, "merged_breakpoints": 0}
    rng = np.random.default_rng(seed)
    fixed = (layout.source[0][0] != "free", layout.source[-1][0] != "free")  # end segments tied to their tail
    start = curvature_nodes(f, lo, hi, entries, weight)
    best: tuple[float, np.ndarray, np.ndarray, int, int] | None = None
    for r in range(restarts):
        nodes0 = start
        if r > 0:
            logw = np.log(np.diff(start)) + rng.normal(0.0, 0.35, entries)
            w = np.exp(logw - logw.max())
            nodes0 = np.concatenate([[lo], lo + np.cumsum(w / w.sum() * (hi - lo))])
            nodes0[-1] = hi
        res = train(f, lo, hi, layout, nodes0, _initial_values(f, nodes0, layout), weight=weight)
        # a tail segment that training squeezed to nothing: its tail wants to start at the edge,
        # or training met a poor optimum; both are finished and the better kept
        squeezed = _squeezed_ends(res.nodes, fixed)
        for keep in ((False, False), squeezed) if any(squeezed) else ((False, False),):
            cand = _finish(f, lo, hi, layout, res, weight, keep)
            if best is None or cand[0] < best[0]:
                best = cand
    assert best is not None
    return best[1], best[2], {"train_iterations": best[3], "merged_breakpoints": best[4]}


def _squeezed_ends(nodes: np.ndarray, fixed: tuple[bool, ...]) -> tuple[bool, bool]:
    span = nodes[-1] - nodes[0]
    w = np.diff(nodes)
    return bool(fixed[0] and w[0] < _MIN_WIDTH * span), bool(fixed[1] and w[-1] < _MIN_WIDTH * span)


def _finish(f: Callable, lo: float, hi: float, layout: Layout, res: Any, weight: Callable | None,
            keep: tuple[bool, bool]) -> tuple[float, np.ndarray, np.ndarray, int, int]:
    """Merge narrow segments (keeping the squeezed tail segments ``keep``), retrain if any
    merged, refit the values: (max error, nodes, values, iterations, merged)."""
    nodes, v, merged = _merge_narrow(f, res.nodes, res.values, weight, keep)
    iters = res.iterations
    if merged:
        res = train(f, lo, hi, layout, nodes, _initial_values(f, nodes, layout), weight=weight, schedule=(64, 256))
        nodes, v, more = _merge_narrow(f, res.nodes, res.values, weight, keep)
        merged += more
        iters += res.iterations
    v, err = refit_minimax(f, nodes, layout, weight)
    return err, nodes, v, iters, merged


def _best_exponential(f: Callable, lo: float, hi: float, entries: int, center: float, layout: Layout,
                      weight: Callable | None, ratio: float | None) -> tuple[np.ndarray, np.ndarray, float]:
    def attempt(r: float) -> tuple[float, np.ndarray, np.ndarray]:
        nodes = exponential_nodes(lo, hi, entries, center, r)
        if not np.all(np.diff(nodes) > 0):  # (NaN included)
            return math.inf, nodes, np.zeros_like(nodes)
        v, err = refit_minimax(f, nodes, layout, weight, per_segment=32)
        return err, nodes, v

    if ratio is not None:
        if not (math.isfinite(ratio) and ratio > 0):
            raise NNLUTError(f"ratio must be a positive number, got {ratio!r}")
        _, nodes, _ = attempt(ratio)
        v, _ = refit_minimax(f, nodes, layout, weight)
        return nodes, v, float(ratio)
    # golden-section search on log(ratio) in [0, log 16]
    a, b = 0.0, math.log(16.0)
    g = (math.sqrt(5) - 1) / 2
    c, d = b - g * (b - a), a + g * (b - a)
    fc, fd = attempt(math.exp(c))[0], attempt(math.exp(d))[0]
    for _ in range(14):
        if fc <= fd:
            b, d, fd = d, c, fc
            c = b - g * (b - a)
            fc = attempt(math.exp(c))[0]
        else:
            a, c, fc = c, d, fd
            d = a + g * (b - a)
            fd = attempt(math.exp(d))[0]
    r = math.exp(c if fc <= fd else d)
    _, nodes, _ = attempt(r)
    v, _ = refit_minimax(f, nodes, layout, weight)
    return nodes, v, r
