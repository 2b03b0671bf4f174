"""nnlut beside other ways of making piecewise-linear tables, on the same functions, entry
counts and number formats, every table scored through the same datapath.

Methods (each makes an N-entry piecewise-linear table; every one becomes an nnlut table):

- ``nnlut``: :func:`nnlut.fit` with its defaults (asymptote tails count as entries; 1/x and
  1/sqrt x in paper mode, a table on [1, 1024] and power-of-two input scaling below 1);
- ``nnlut-rr``: 1/x and 1/sqrt x with full range reduction (one power-of-two period);
- ``pwlf-fit``, ``pwlf-fitfast``: the pwlf package (least squares on ``--samples`` evenly
  spaced points; ``fit`` is differential evolution over the breakpoints, shortened here by
  ``--pwlf-maxiter`` and ``--pwlf-popsize``; ``fitfast`` is multi-start L-BFGS with
  ``--pwlf-pop`` starts). Each pwlf fit runs in a child process stopped after
  ``--pwlf-seconds``; a cell that does not finish says so. Beyond the fitted domain pwlf's end
  segments continue, as ``predict`` does;
- ``nnlut-paper``: the NN-LUT paper's recipe, written here from the paper: a one-hidden-layer
  ReLU network with N-1 hidden neurons (N segments) trained on 100K uniform samples of the
  domain with the L1 loss, Adam at learning rate 1e-3 and a multi-step decay (x0.1 at 50% and
  75% of the epochs), in float32 on inputs normalised to [-1, 1]; ``--epochs`` is kept small
  (the paper trains far longer: these rows are a short run);
- ``nli``: NLI's dynamic-programming cut-points on the FP16 grid, flat layout with N segments
  (:mod:`peers_nli`);
- ``gqa-lut``: GQA-LUT's genetic, quantisation-aware breakpoint search (:mod:`peers_gqa`),
  ``--gqa-generations`` generations; its parameters are INT8 values (6 fractional bits), and
  its float row is those values in real arithmetic;
- ``gqa-lut-published``: GQA-LUT's published tables (GELU and exp, 8 and 16 segments), read as
  data.

Formats: ``float`` (the table itself), ``int16``, ``int8`` (GQA-LUT's datapath: INT8 input at
scale 2^-P, 8-bit slopes and intercepts) and ``fp16`` (FP16 parameters and arithmetic), all
through nnlut's own quantisers: nnlut's tables as models make them
(:func:`nnlut.fixed.in_format`); every peer's table rounded onto the same datapath without any
refit of its values (:func:`nnlut.fixed.quantize_table` with ``refit=False``,
:func:`nnlut.fixed.to_half`), GQA-LUT's exactly (its values already lie on its grid, at the
scale its search used). INT16 covers nnlut's fixed-point input range of each function, INT8
nnlut's INT8 range; inputs beyond saturate, so unbounded functions have large full-domain
errors in both.

Metrics, all in float64 against the exact function: in-domain max and mean absolute and
relative error (:func:`nnlut.measure`'s dense grid over the function's default domain) and
full-domain max and mean absolute and relative error, relative error floored at 2^-14, over
every finite FP16 input (:func:`nnlut.full_domain_errors`; inputs whose exact value overflows
FP16 are excluded, exp covers x <= 0), and the fit time (the float table; a format's
conversion is not counted).

pwlf is optional: ``pip install pwlf`` (or ``pip install nnlut[peers]``); without it the pwlf
rows are skipped with that message. The paper recipe needs torch.

Results merge into ``--out`` (JSON, keyed by function, entries, method and format), so a large
sweep can be run in pieces; every run prints one markdown table per metric and format over
everything in the file and writes one plot of max error against entries per function
(``--plot-dir``).

Examples::

    python benchmarks/peers.py --quick                  # every function, N = 4 and 16, < 3 min
    python benchmarks/peers.py --functions gelu silu --entries 32 64 --methods nnlut pwlf-fit nli
    python benchmarks/peers.py --report-only            # the tables and plots of everything measured
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import nnlut  # noqa: E402
import peers_gqa  # noqa: E402
import peers_nli  # noqa: E402
from nnlut.fixed import DEFAULT_INPUT_RANGE, choose_format, gqa_format, in_format, quantize_table, to_half  # noqa: E402
from nnlut.fixed._fitq import INT8_RANGE, input_frac_for  # noqa: E402

FUNCTIONS = ("gelu", "silu", "exp", "reciprocal", "rsqrt", "sigmoid", "tanh")
ENTRIES = (4, 8, 16, 32, 64)
METHODS = ("nnlut", "nnlut-rr", "pwlf-fit", "pwlf-fitfast", "nnlut-paper", "nli", "gqa-lut", "gqa-lut-published")
OURS = ("nnlut", "nnlut-rr")
FORMATS = ("float", "int16", "int8", "fp16")
QUICK = {"entries": [4, 16], "methods": ["nnlut", "nnlut-rr", "pwlf-fitfast", "nli", "gqa-lut", "gqa-lut-published"],
         "gqa_generations": 60, "points": 2**14 + 1, "pwlf_seconds": 3.0, "nli_candidates": 192}
SCALED = ("reciprocal", "rsqrt")
METRICS = (("in_max_abs", "in-domain max abs"), ("in_mean_abs", "in-domain mean abs"),
           ("in_max_rel", "in-domain max rel"), ("in_mean_rel", "in-domain mean rel"),
           ("full_max_abs", "full-domain (every FP16) max abs"), ("full_mean_abs", "full-domain mean abs"),
           ("full_max_rel", "full-domain max rel (floor 2^-14)"), ("full_mean_rel", "full-domain mean rel"),
           ("seconds", "fit seconds"))
PWLF_HINT = "pwlf is not installed: pip install pwlf (or pip install 'nnlut[peers]')"


class Skip(Exception):
    """A method that does not apply or cannot run here (the message says why)."""


# ---------------------------------------------------------------------------- methods
def _nnlut(name: str, n: int, args: argparse.Namespace) -> Any:
    return nnlut.fit(name, n)


def _nnlut_rr(name: str, n: int, args: argparse.Namespace) -> Any:
    if name not in SCALED:
        raise Skip("range reduction is for 1/x and 1/sqrt x")
    return nnlut.fit(name, n, range_reduction=True)


def _table(name: str, bp: Any, s: Any, t: Any, method: str) -> nnlut.Table:
    spec = nnlut.get_function(name)
    return nnlut.Table(bp, s, t, domain=spec.domain, function=spec.name, meta={"method": method})


def _child(q: Any, fn: Callable[..., Any], a: tuple) -> None:
    try:
        q.put(("ok", fn(*a)))
    except Exception as e:  # reported to the parent as the cell's reason
        q.put(("error", f"{type(e).__name__}: {e}"))


def _capped(fn: Callable[..., Any], seconds: float, *a: Any) -> Any:
    """``fn(*a)`` in a forked child process, given up after ``seconds``."""
    ctx = multiprocessing.get_context("fork")
    q = ctx.Queue()
    p = ctx.Process(target=_child, args=(q, fn, a), daemon=True)
    p.start()
    try:
        kind, value = q.get(timeout=seconds)
    except Exception:
        p.terminate()
        p.join()
        raise Skip(f"did not finish within --pwlf-seconds {seconds:g}") from None
    p.join()
    if kind == "error":
        raise Skip(value)
    return value


def _pwlf_run(name: str, n: int, mode: str, args: argparse.Namespace) -> tuple[Any, Any, Any]:
    import pwlf

    spec = nnlut.get_function(name)
    lo, hi = spec.domain
    x = np.linspace(lo, hi, args.samples)
    m = pwlf.PiecewiseLinFit(x, spec(x), seed=args.seed)
    if mode == "fit":
        m.fit(n, maxiter=args.pwlf_maxiter, popsize=args.pwlf_popsize, seed=args.seed)
    else:
        m.fitfast(n, pop=args.pwlf_pop)
    return np.asarray(m.fit_breaks)[1:-1], np.asarray(m.slopes), np.asarray(m.intercepts)


def _pwlf(mode: str) -> Callable[[str, int, argparse.Namespace], nnlut.Table]:
    def make(name: str, n: int, args: argparse.Namespace) -> nnlut.Table:
        try:
            import pwlf  # noqa: F401
        except ImportError:
            raise Skip(PWLF_HINT) from None
        bp, s, t = _capped(_pwlf_run, args.pwlf_seconds, name, n, mode, args)
        return _table(name, bp, s, t, f"pwlf-{mode}")

    return make


def _paper(name: str, n: int, args: argparse.Namespace) -> nnlut.Table:
    """The NN-LUT paper's training recipe (see the module docstring)."""
    try:
        import torch
    except ImportError:
        raise Skip("the paper recipe needs torch") from None
    spec = nnlut.get_function(name)
    lo, hi = spec.domain
    g = torch.Generator().manual_seed(args.seed)
    x = torch.rand(100_000, 1, generator=g, dtype=torch.float64) * (hi - lo) + lo
    y = torch.from_numpy(spec(x.numpy())).float()
    # inputs normalised to [-1, 1] for training (an affine map: the network stays N-segment PWL)
    mid, half = (hi + lo) / 2, (hi - lo) / 2
    torch.manual_seed(args.seed)
    net = torch.nn.Sequential(torch.nn.Linear(1, n - 1), torch.nn.ReLU(), torch.nn.Linear(n - 1, 1))
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=[args.epochs // 2, 3 * args.epochs // 4], gamma=0.1)
    loss_fn = torch.nn.L1Loss()
    xn = ((x - mid) / half).float()
    for _ in range(args.epochs):
        perm = torch.randperm(len(x), generator=g)
        for i in range(0, len(x), args.batch):
            idx = perm[i:i + args.batch]
            opt.zero_grad()
            loss = loss_fn(net(xn[idx]), y[idx])
            loss.backward()
            opt.step()
        sched.step()
    w1 = net[0].weight.detach().double().numpy()[:, 0] / half
    b1 = net[0].bias.detach().double().numpy() - w1 * mid
    w2 = net[2].weight.detach().double().numpy()[0]
    b2 = float(net[2].bias.detach().double().numpy()[0])
    return _network_table(name, w1, b1, w2, b2)


def _network_table(name: str, w1: np.ndarray, b1: np.ndarray, w2: np.ndarray, b2: float) -> nnlut.Table:
    """The network sum_k w2[k] relu(w1[k] x + b1[k]) + b2 as a table (one breakpoint per kink)."""
    live = w1 != 0
    kinks = np.unique(-b1[live] / w1[live])
    kinks = kinks[np.isfinite(kinks)]

    def net(u: np.ndarray) -> np.ndarray:
        return np.maximum(u[:, None] * w1 + b1, 0.0) @ w2 + b2

    if len(kinks) == 0:
        probe = np.array([0.0, 1.0])
    else:
        gaps = np.diff(kinks)
        probe = np.concatenate([[kinks[0] - 1.0], kinks[:-1] + gaps / 2, [kinks[-1] + 1.0]])
    d = 1e-3 * np.maximum(np.abs(probe), 1.0)
    d = np.minimum(d, np.concatenate([[1.0], np.diff(kinks) / 4, [1.0]])) if len(kinks) else d
    s = (net(probe + d) - net(probe - d)) / (2 * d)
    t = net(probe) - s * probe
    if len(kinks) == 0:
        s, t = s[:1], t[:1]
    return _table(name, kinks, s, t, "nnlut-paper")


def _nli(name: str, n: int, args: argparse.Namespace) -> nnlut.Table:
    return peers_nli.nli_table(name, n, args.nli_candidates, args.nli_stride)


def gqa_p(name: str, n: int) -> int:
    """The INT8 input scale 2**-P of GQA-LUT's search: the finest that holds its fitting range."""
    return input_frac_for(*peers_gqa.ranges(name, n)[0], 8)


def _gqa(name: str, n: int, args: argparse.Namespace) -> nnlut.Table:
    p = gqa_p(name, n)
    bp, s, t = peers_gqa.gqa_search(name, n, p, generations=args.gqa_generations, seed=args.seed)
    return peers_gqa.as_table(name, bp, s, t, {"method": "gqa-lut", "p": p})


def _gqa_published(name: str, n: int, args: argparse.Namespace) -> nnlut.Table:
    row = peers_gqa.PUBLISHED.get((name, n))
    if row is None:
        have = ", ".join(f"{f} {k}" for f, k in peers_gqa.PUBLISHED)
        raise Skip(f"GQA-LUT publishes tables for {have} only")
    return peers_gqa.as_table(name, *(np.array(v) for v in row), {"method": "gqa-lut-published",
                                                                  "p": peers_gqa.PUBLISHED_P})


REGISTRY: dict[str, Callable[[str, int, argparse.Namespace], Any]] = {
    "nnlut": _nnlut, "nnlut-rr": _nnlut_rr, "pwlf-fit": _pwlf("fit"), "pwlf-fitfast": _pwlf("fitfast"),
    "nnlut-paper": _paper, "nli": _nli, "gqa-lut": _gqa, "gqa-lut-published": _gqa_published,
}


# ---------------------------------------------------------------------------- formats
def to_format(method: str, table: nnlut.Table, fmt: str) -> Any:
    """``table`` in ``fmt`` through nnlut's quantisers (see the module docstring)."""
    if fmt == "float":
        return table
    if fmt == "fp16":
        return to_half(table, "fp16")
    if method in OURS:
        return in_format(table, fmt)
    name = table.function
    spec = nnlut.get_function(name)
    if fmt == "int16":
        rng = DEFAULT_INPUT_RANGE.get(name, spec.domain)
        return quantize_table(table, choose_format(table, rng), input_range=rng, refit=False)
    if method.startswith("gqa-lut"):
        return peers_gqa.as_int8(name, table, int(table.meta["p"]))
    rng = INT8_RANGE.get(name, spec.domain)
    return quantize_table(table, gqa_format(input_frac_for(*rng, 8)), input_range=rng, refit=False)


# ---------------------------------------------------------------------------- measuring
def _metrics(approx: Any, spec: Any, points: int) -> dict[str, Any]:
    inside = nnlut.measure(approx, spec, spec.domain, points=points)
    full = nnlut.full_domain_errors(approx, spec, formats=("fp16",))["fp16"]
    return {"in_max_abs": inside["max_abs"], "in_mean_abs": inside["mean_abs"], "in_max_rel": inside["max_rel"],
            "in_mean_rel": inside["mean_rel"], "full_max_abs": full["max_abs"], "full_mean_abs": full["mean_abs"],
            "full_max_rel": full["max_rel"], "full_mean_rel": full["mean_rel"], "full_points": full["points"],
            "full_nonfinite_outputs": full["nonfinite_outputs"]}


def measure_one(name: str, n: int, method: str, args: argparse.Namespace,
                formats: tuple[str, ...] = FORMATS) -> dict[str, dict[str, Any]]:
    """{format: metrics (or {"skipped": why})} for one method's N-entry table of ``name``."""
    spec = nnlut.get_function(name)
    t0 = time.perf_counter()
    try:
        table = REGISTRY[method](name, n, args)
    except Skip as e:
        return dict.fromkeys(formats, {"skipped": str(e)})
    seconds = time.perf_counter() - t0
    out = {}
    for fmt in formats:
        try:
            made = to_format(method, table, fmt)
        except nnlut.NNLUTError as e:
            out[fmt] = {"skipped": f"{fmt}: {e}"}
            continue
        out[fmt] = _clean({"seconds": seconds, **_metrics(made, spec, args.points)})
    return out


def _clean(d: dict[str, Any]) -> dict[str, Any]:
    # strict JSON: NaN (no relative error defined) and infinities become null
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in d.items()}


def _key(name: str, n: int, method: str, fmt: str) -> str:
    return f"{name}|{n}|{method}|{fmt}"


def _load(path: Path) -> dict[str, Any]:
    if path.exists():
        data = json.loads(path.read_text())
        if all(k.count("|") == 3 for k in data.get("results", {})):
            return data
        print(f"{path}: results from an earlier layout (no format key); starting afresh")
    return {"results": {}, "settings": {}}


def _num(v: Any) -> float:
    return math.nan if v is None else float(v)


def _fmt_cell(v: float) -> str:
    return "-" if v != v else f"{v:.3g}"


def markdown(headers: list[str], rows: list[list[Any]]) -> str:
    """A markdown table (numbers to 3 significant digits, '-' for none)."""
    def cell(v: Any) -> str:
        return _fmt_cell(v) if isinstance(v, float) else str(v)

    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def _cells(res: dict[str, Any]) -> list[tuple[str, int, str]]:
    keys = {(k.split("|")[0], int(k.split("|")[1]), k.split("|")[3]) for k in res}
    return sorted(keys, key=lambda c: (FUNCTIONS.index(c[0]) if c[0] in FUNCTIONS else 99, c[1], FORMATS.index(c[2])
                                       if c[2] in FORMATS else 99))


def print_tables(data: dict[str, Any]) -> list[str]:
    """One markdown table per metric (rows: function, entries and format; columns: methods);
    returns the cells where a peer's max error is below nnlut's best."""
    res = data["results"]
    cells = _cells(res)
    methods = [m for m in METHODS if any(k.split("|")[2] == m for k in res)]
    for metric, title in METRICS:
        rows = []
        for name, n, fmt in cells:
            row: list[Any] = [name, n, fmt]
            for m in methods:
                r = res.get(_key(name, n, m, fmt), {})
                row.append(_num(r.get(metric)) if "skipped" not in r else math.nan)
            rows.append(row)
        print(f"\n### {title}\n")
        print(markdown(["function", "N", "format", *methods], rows))
    beaten = []
    for name, n, fmt in cells:
        for metric in ("in_max_abs", "in_max_rel", "full_max_abs", "full_max_rel"):
            ours = [_num(res.get(_key(name, n, m, fmt), {}).get(metric)) for m in OURS]
            ours = [v for v in ours if v == v]
            if not ours:
                continue
            best = min(ours)
            for m in methods:
                if m in OURS:
                    continue
                v = _num(res.get(_key(name, n, m, fmt), {}).get(metric))
                if v == v and v < best:
                    beaten.append(f"{name} N={n} {fmt} {metric}: {m} {v:.3g} < nnlut {best:.3g}")
    skipped = sorted({f"{k.split('|')[2]} {k.split('|')[0]} N={k.split('|')[1]}: {r['skipped']}"
                      for k, r in res.items() if "skipped" in r and "does not apply" not in r["skipped"]
                      and not r["skipped"].startswith(("range reduction", "GQA-LUT publishes"))})
    print("\n### cells where a peer beats nnlut (best of nnlut and nnlut-rr)\n")
    print("\n".join(f"- {b}" for b in beaten) if beaten else "none")
    print("\n### cells that did not finish or could not be made\n")
    print("\n".join(f"- {s}" for s in skipped) if skipped else "none")
    return beaten


def plot(data: dict[str, Any], out_dir: Path) -> list[Path]:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no plots (pip install 'nnlut[plot]')")
        return []
    out_dir.mkdir(parents=True, exist_ok=True)
    res = data["results"]
    paths = []
    for name in FUNCTIONS:
        keys = [k for k in res if k.startswith(name + "|") and k.endswith("|float") and "skipped" not in res[k]]
        if not keys:
            continue
        rel = name in SCALED
        fig, axes = plt.subplots(1, 2, figsize=(10, 4))
        for ax, metric in zip(axes, (("in_max_rel" if rel else "in_max_abs"), ("full_max_rel" if rel else "full_max_abs")),
                              strict=True):
            for m in METHODS:
                pts = sorted((int(k.split("|")[1]), res[k][metric]) for k in keys if k.split("|")[2] == m
                             and res[k].get(metric) is not None)
                if pts:
                    ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=m)
            ax.set_xscale("log", base=2)
            ax.set_yscale("log")
            ax.set_xlabel("entries N")
            ax.set_ylabel(metric.replace("_", " "))
            ax.set_title(f"{name}: {'in-domain' if metric.startswith('in') else 'every FP16 input'} (float)")
            ax.grid(True, which="both", alpha=0.3)
        axes[0].legend(fontsize=8)
        fig.tight_layout()
        p = out_dir / f"peers_{name}.png"
        fig.savefig(p, dpi=100)
        plt.close(fig)
        paths.append(p)
    return paths


SETTINGS = ("samples", "pwlf_maxiter", "pwlf_popsize", "pwlf_pop", "pwlf_seconds", "epochs", "batch", "points", "seed",
            "nli_candidates", "nli_stride", "gqa_generations")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--functions", nargs="+", default=list(FUNCTIONS), choices=FUNCTIONS)
    ap.add_argument("--entries", nargs="+", type=int, default=list(ENTRIES))
    ap.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    ap.add_argument("--formats", nargs="+", default=list(FORMATS), choices=FORMATS)
    ap.add_argument("--quick", action="store_true",
                    help=f"N = 4 and 16, methods {' '.join(QUICK['methods'])}, a short GQA-LUT search (< 3 minutes)")
    ap.add_argument("--samples", type=int, default=1000, help="pwlf's evenly spaced fitting points (default 1000)")
    ap.add_argument("--pwlf-maxiter", type=int, default=20, help="pwlf fit: differential evolution generations")
    ap.add_argument("--pwlf-popsize", type=int, default=5, help="pwlf fit: population size multiplier")
    ap.add_argument("--pwlf-pop", type=int, default=2, help="pwlf fitfast: number of starts")
    ap.add_argument("--pwlf-seconds", type=float, default=60.0, help="pwlf: give a fit up after this long (default 60)")
    ap.add_argument("--epochs", type=int, default=40, help="paper recipe: epochs over the 100K samples (default 40)")
    ap.add_argument("--batch", type=int, default=1000, help="paper recipe: batch size")
    ap.add_argument("--nli-candidates", type=int, default=384, help="NLI: candidate cut-points (default 384)")
    ap.add_argument("--nli-stride", type=int, default=8, help="NLI: the DP scores every this many FP16 inputs")
    ap.add_argument("--gqa-generations", type=int, default=500, help="GQA-LUT: generations (default 500, as published)")
    ap.add_argument("--points", type=int, default=2**18 + 1, help="in-domain grid points")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "peers.json")
    ap.add_argument("--report-only", action="store_true", help="print the tables and plots of --out, fit nothing")
    ap.add_argument("--plot-dir", type=Path, default=None, help="default: next to --out")
    args = ap.parse_args(argv)
    if args.quick:
        for k, v in QUICK.items():
            setattr(args, k, v)
    data = _load(args.out)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    for name in [] if args.report_only else args.functions:
        for n in args.entries:
            for m in args.methods:
                r = measure_one(name, n, m, args, tuple(args.formats))
                for fmt, cell in r.items():
                    data["results"][_key(name, n, m, fmt)] = cell
                data["settings"][f"{name}|{n}|{m}"] = {k: getattr(args, k) for k in SETTINGS}
                shown = []
                for fmt, cell in r.items():
                    shown.append(f"{fmt}: {cell['skipped']}" if "skipped" in cell else
                                 f"{fmt} in {cell['in_max_abs']:.3g} full {_num(cell['full_max_abs']):.3g}")
                    if "skipped" in cell and fmt == "float":
                        break
                sec = next((c["seconds"] for c in r.values() if "seconds" in c), None)
                print(f"{name:10s} N={n:<3d} {m:18s} " + ("" if sec is None else f"{sec:6.2f} s  ") + "; ".join(shown),
                      flush=True)
                args.out.write_text(json.dumps(data, indent=1, allow_nan=False) + "\n")
    if not args.report_only:
        print(f"measured in {time.perf_counter() - t_start:.0f} s")
    print_tables(data)
    for p in plot(data, args.plot_dir or args.out.parent):
        print(f"wrote {p}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
