"""nnlut beside other ways of making piecewise-linear approximations, on the same functions.

Methods (each makes an N-segment continuous piecewise-linear function of x):

- ``nnlut``: :func:`nnlut.fit` with its defaults (asymptote tails count as entries; 1/x and
  1/sqrt x in paper mode, a table on [1, 1024] and power-of-two input scaling below 1);
- ``nnlut-rr``: 1/x and 1/sqrt x with full range reduction (one power-of-two period);
- ``pwlf-fit``, ``pwlf-fitfast``: the pwlf package (least squares on ``--samples`` evenly
  spaced points; ``fit`` is differential evolution over the breakpoints, shortened here by
  ``--pwlf-maxiter`` and ``--pwlf-popsize`` because pwlf's defaults take many minutes at 8 and
  more segments; ``fitfast`` is multi-start L-BFGS with ``--pwlf-pop`` starts). Beyond the
  fitted domain pwlf's end segments continue, as ``predict`` does;
- ``nnlut-paper``: the NN-LUT paper's recipe, written here from the paper: a one-hidden-layer
  ReLU network with N-1 hidden neurons (N segments) trained on 100K uniform samples of the
  domain with the L1 loss, Adam at learning rate 1e-3 and a multi-step decay (x0.1 at 50% and
  75% of the epochs), in float32 on inputs normalised to [-1, 1]; ``--epochs`` is kept small
  so that a run takes minutes (the paper trains far longer: these rows are a short run). The network is a
  continuous PWL function everywhere (its end segments continue).

Metrics, all in float64 against the exact function: in-domain max and mean absolute and
relative error (:func:`nnlut.measure`'s dense grid over the function's default domain) and
full-domain max and mean absolute and relative error, relative error floored at 2^-14, over
every finite FP16 input (:func:`nnlut.full_domain_errors`; inputs whose exact value overflows
FP16 are excluded, exp covers x <= 0), and the fit time.

pwlf is optional: ``pip install pwlf`` (or ``pip install nnlut[peers]``); without it the pwlf
rows are skipped with that message. The paper recipe needs torch.

Results merge into ``--out`` (JSON, keyed by function, entries and method), so a large sweep
can be run in pieces; every run prints one table per metric over everything in the file and
writes one plot of max error against entries per function (``--plot-dir``).

Example (about three minutes on two cores)::

    python benchmarks/peers.py --functions gelu silu --entries 4 8 16
    python benchmarks/peers.py --report-only     # the tables and plots of everything measured
"""

from __future__ import annotations

import argparse
import json
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

import nnlut
from nnlut.cli._common import format_table

FUNCTIONS = ("gelu", "silu", "exp", "reciprocal", "rsqrt", "sigmoid", "tanh")
ENTRIES = (4, 8, 16, 32)
METHODS = ("nnlut", "nnlut-rr", "pwlf-fit", "pwlf-fitfast", "nnlut-paper")
SCALED = ("reciprocal", "rsqrt")
METRICS = (("in_max_abs", "in-domain max abs"), ("in_mean_abs", "in-domain mean abs"),
           ("in_max_rel", "in-domain max rel"), ("in_mean_rel", "in-domain mean rel"),
           ("full_max_abs", "full-domain (every FP16) max abs"), ("full_mean_abs", "full-domain mean abs"),
           ("full_max_rel", "full-domain max rel (floor 2^-14)"), ("full_mean_rel", "full-domain mean rel"),
           ("seconds", "fit seconds"))
PWLF_HINT = "pwlf is not installed: pip install pwlf (or pip install 'nnlut[peers]')"

Approx = Callable[[np.ndarray], np.ndarray]


class Skip(Exception):
    """A method that does not apply or cannot run here (the message says why)."""


# ---------------------------------------------------------------------------- methods
def _nnlut(name: str, n: int, args: argparse.Namespace) -> Approx:
    return nnlut.fit(name, n)


def _nnlut_rr(name: str, n: int, args: argparse.Namespace) -> Approx:
    if name not in SCALED:
        raise Skip("range reduction is for 1/x and 1/sqrt x")
    return nnlut.fit(name, n, range_reduction=True)


def _pwlf_model(name: str, args: argparse.Namespace) -> Any:
    try:
        import pwlf
    except ImportError:
        raise Skip(PWLF_HINT) from None
    spec = nnlut.get_function(name)
    lo, hi = spec.domain
    x = np.linspace(lo, hi, args.samples)
    return pwlf.PiecewiseLinFit(x, spec(x), seed=args.seed)


def _pwlf_fit(name: str, n: int, args: argparse.Namespace) -> Approx:
    if n > args.pwlf_max_entries:
        raise Skip(f"above --pwlf-max-entries {args.pwlf_max_entries}")
    m = _pwlf_model(name, args)
    m.fit(n, maxiter=args.pwlf_maxiter, popsize=args.pwlf_popsize, seed=args.seed)
    return m.predict


def _pwlf_fitfast(name: str, n: int, args: argparse.Namespace) -> Approx:
    if n > args.pwlf_max_entries:
        raise Skip(f"above --pwlf-max-entries {args.pwlf_max_entries}")
    m = _pwlf_model(name, args)
    m.fitfast(n, pop=args.pwlf_pop)
    return m.predict


def _paper(name: str, n: int, args: argparse.Namespace) -> Approx:
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

    def f(u: np.ndarray) -> np.ndarray:
        u = np.asarray(u, dtype=np.float64)
        with np.errstate(all="ignore"):
            return np.maximum(u[..., None] * w1 + b1, 0.0) @ w2 + b2

    return f


REGISTRY: dict[str, Callable[[str, int, argparse.Namespace], Approx]] = {
    "nnlut": _nnlut, "nnlut-rr": _nnlut_rr, "pwlf-fit": _pwlf_fit, "pwlf-fitfast": _pwlf_fitfast,
    "nnlut-paper": _paper,
}


# ---------------------------------------------------------------------------- measuring
def measure_one(name: str, n: int, method: str, args: argparse.Namespace) -> dict[str, Any]:
    spec = nnlut.get_function(name)
    t0 = time.perf_counter()
    try:
        approx = REGISTRY[method](name, n, args)
    except Skip as e:
        return {"skipped": str(e)}
    seconds = time.perf_counter() - t0
    inside = nnlut.measure(approx, spec, spec.domain, points=args.points)
    full = nnlut.full_domain_errors(approx, spec, formats=("fp16",))["fp16"]
    return _clean({"seconds": seconds, "in_max_abs": inside["max_abs"], "in_mean_abs": inside["mean_abs"],
            "in_max_rel": inside["max_rel"], "in_mean_rel": inside["mean_rel"],
            "full_max_abs": full["max_abs"], "full_mean_abs": full["mean_abs"], "full_max_rel": full["max_rel"],
            "full_mean_rel": full["mean_rel"], "full_points": full["points"],
            "full_nonfinite_outputs": full["nonfinite_outputs"]})


def _clean(d: dict[str, Any]) -> dict[str, Any]:
    # strict JSON: NaN (no relative error defined) and infinities become null
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in d.items()}


def _key(name: str, n: int, method: str) -> str:
    return f"{name}|{n}|{method}"


def _load(path: Path) -> dict[str, Any]:
    if path.exists():
        return json.loads(path.read_text())
    return {"results": {}}


def _num(v: Any) -> float:
    return math.nan if v is None else float(v)


def print_tables(data: dict[str, Any]) -> list[str]:
    """One table per metric (rows: function and entries; columns: methods); returns the cells
    (function, entries, metric) where a peer's max error is below nnlut's best."""
    res = data["results"]
    cells = sorted({(k.split("|")[0], int(k.split("|")[1])) for k in res},
                   key=lambda c: (FUNCTIONS.index(c[0]) if c[0] in FUNCTIONS else 99, c[1]))
    methods = [m for m in METHODS if any(k.endswith("|" + m) for k in res)]
    for metric, title in METRICS:
        rows = []
        for name, n in cells:
            row: list[Any] = [name, n]
            for m in methods:
                r = res.get(_key(name, n, m), {})
                row.append(_num(r.get(metric)) if "skipped" not in r else math.nan)
            rows.append(row)
        print(f"\n{title}")
        print(format_table(["function", "N", *methods], rows))
    beaten = []
    for name, n in cells:
        for metric in ("in_max_abs", "in_max_rel", "full_max_abs", "full_max_rel"):
            ours = [_num(res.get(_key(name, n, m), {}).get(metric)) for m in ("nnlut", "nnlut-rr")]
            ours = [v for v in ours if v == v]
            if not ours:
                continue
            best = min(ours)
            for m in methods:
                if m.startswith("nnlut") and m != "nnlut-paper":
                    continue
                v = _num(res.get(_key(name, n, m), {}).get(metric))
                if v == v and v < best:
                    beaten.append(f"{name} N={n} {metric}: {m} {v:.3g} < nnlut {best:.3g}")
    print("\ncells where a peer beats nnlut (best of nnlut and nnlut-rr):")
    print("\n".join(beaten) if beaten else "none")
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
        keys = [k for k in res if k.startswith(name + "|") and "skipped" not in res[k]]
        if not keys:
            continue
        rel = name in SCALED
        fig, axes = plt.subplots(1, 2, figsize=(10, 4))
        for ax, metric in zip(axes, (("in_max_rel" if rel else "in_max_abs"), ("full_max_rel" if rel else "full_max_abs")),
                              strict=True):
            for m in METHODS:
                pts = sorted((int(k.split("|")[1]), res[k][metric]) for k in keys if k.endswith("|" + m)
                             and res[k].get(metric) is not None)
                if pts:
                    ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=m)
            ax.set_xscale("log", base=2)
            ax.set_yscale("log")
            ax.set_xlabel("entries N")
            ax.set_ylabel(metric.replace("_", " "))
            ax.set_title(f"{name}: {'in-domain' if metric.startswith('in') else 'every FP16 input'}")
            ax.grid(True, which="both", alpha=0.3)
        axes[0].legend(fontsize=8)
        fig.tight_layout()
        p = out_dir / f"peers_{name}.png"
        fig.savefig(p, dpi=100)
        plt.close(fig)
        paths.append(p)
    return paths


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--functions", nargs="+", default=list(FUNCTIONS), choices=FUNCTIONS)
    ap.add_argument("--entries", nargs="+", type=int, default=list(ENTRIES))
    ap.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    ap.add_argument("--samples", type=int, default=1000, help="pwlf's evenly spaced fitting points (default 1000)")
    ap.add_argument("--pwlf-maxiter", type=int, default=20, help="pwlf fit: differential evolution generations")
    ap.add_argument("--pwlf-popsize", type=int, default=5, help="pwlf fit: population size multiplier")
    ap.add_argument("--pwlf-pop", type=int, default=2, help="pwlf fitfast: number of starts")
    ap.add_argument("--pwlf-max-entries", type=int, default=16, help="skip pwlf above this many segments")
    ap.add_argument("--epochs", type=int, default=40, help="paper recipe: epochs over the 100K samples (default 40)")
    ap.add_argument("--batch", type=int, default=1000, help="paper recipe: batch size")
    ap.add_argument("--points", type=int, default=2**18 + 1, help="in-domain grid points")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "peers.json")
    ap.add_argument("--report-only", action="store_true", help="print the tables and plots of --out, fit nothing")
    ap.add_argument("--plot-dir", type=Path, default=None, help="default: next to --out")
    args = ap.parse_args(argv)
    data = _load(args.out)
    data.setdefault("settings", {})
    args.out.parent.mkdir(parents=True, exist_ok=True)
    for name in [] if args.report_only else args.functions:
        for n in args.entries:
            for m in args.methods:
                r = measure_one(name, n, m, args)
                data["results"][_key(name, n, m)] = r
                data["settings"][_key(name, n, m)] = {k: getattr(args, k) for k in (
                    "samples", "pwlf_maxiter", "pwlf_popsize", "pwlf_pop", "epochs", "batch", "points", "seed")}
                shown = r.get("skipped") or (f"in max abs {r['in_max_abs']:.3g}, FP16 max rel {_num(r['full_max_rel']):.3g}, "
                                             f"{r['seconds']:.1f} s")
                print(f"{name:10s} N={n:<3d} {m:13s} {shown}", flush=True)
                args.out.write_text(json.dumps(data, indent=1, allow_nan=False) + "\n")
    print_tables(data)
    for p in plot(data, args.plot_dir or args.out.parent):
        print(f"wrote {p}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
