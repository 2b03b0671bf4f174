"""Fit quality and speed: 16-entry tables for GELU, exp, 1/x and 1/sqrt(x).

For every function: max |error| on a dense grid over the domain for NN-LUT, linear mode,
exponential mode and (GELU, exp) I-BERT, next to the best possible continuous 16-segment
figure and the goal (within 10% of it). Then range reduction (relative error over
[2^-20, 2^20]), GELU's error far outside its domain, and the wall time of the whole
``nnlut fit`` process (interpreter start, imports, fit, baselines, file), median of 3.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import nnlut
from nnlut.cli._common import format_table
from nnlut.fitting import compare

# Reference figures (max |error|, 16 entries): best possible continuous PWL, the goal, a public
# NN-LUT re-implementation and linear mode, as published for these domains.
REFERENCE = {
    "gelu": ((-5.0, 5.0), 2.15e-3, 2.37e-3, 1.9e-2, 1.74e-2),
    "exp": ((-256.0, 0.0), 0.99e-3, 1.09e-3, 4.3e-3, 0.38),
    "reciprocal": ((1.0, 1024.0), 1.86e-3, 2.05e-3, 2.4e-2, 0.38),
    "rsqrt": ((1.0, 1024.0), 1.99e-3, 2.19e-3, 1.8e-2, 0.28),
}
RANGE_REDUCTION = {"reciprocal": (2.35e-4, 2.6e-4), "rsqrt": (3.52e-4, 3.9e-4)}


def cli_seconds(func: str, extra: list[str], repeats: int = 3) -> float:
    times = []
    exe = Path(sys.executable).with_name("nnlut")
    with tempfile.TemporaryDirectory() as d:
        for _ in range(repeats):
            t0 = time.perf_counter()
            subprocess.run([str(exe), "fit", func, "--entries", "16", *extra, "--out", f"{d}/t.json"],
                           check=True, capture_output=True)
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "fit.json"))
    ap.add_argument("--entries", type=int, default=16)
    args = ap.parse_args()
    results: dict = {"entries": args.entries, "functions": {}, "range_reduction": {}, "cli_seconds": {}}
    rows = []
    for name, (dom, best, goal, public, linear_ref) in REFERENCE.items():
        got = {r.method: r.errors["max_abs"] for r in compare(name, args.entries, domain=dom)}
        results["functions"][name] = {"domain": dom, "best_possible": best, "goal": goal, "public": public,
                                      "linear_reference": linear_ref, **got}
        rows.append([name, f"[{dom[0]:g}, {dom[1]:g}]", best, goal, got["nnlut"], got["nnlut"] / best,
                     "yes" if got["nnlut"] <= goal else "NO", got["exponential"], got["linear"],
                     got.get("ibert", float("nan")), public])
    print(format_table(["function", "domain", "best", "goal", "nnlut", "nnlut/best", "goal met", "exponential",
                        "linear", "ibert", "public re-impl"], rows))

    rr_rows = []
    for name, (best, goal) in RANGE_REDUCTION.items():
        table = nnlut.fit(name, args.entries, range_reduction=True)
        e = nnlut.measure(table, nnlut.get_function(name), (2.0**-20, 2.0**20))
        results["range_reduction"][name] = {"best_possible": best, "goal": goal, "max_rel": e["max_rel"]}
        rr_rows.append([name, best, goal, e["max_rel"], "yes" if e["max_rel"] <= goal else "NO"])
    print()
    print(format_table(["range reduction", "best on period", "goal", "max rel over [2^-20, 2^20]", "goal met"], rr_rows))

    gelu = nnlut.fit("gelu", args.entries)
    spec = nnlut.get_function("gelu")
    far = np.array([-1e4, 1e4])
    far_err = float(np.max(np.abs(gelu(far) - spec(far))))
    rsqrt = nnlut.fit("rsqrt", args.entries)
    rs = nnlut.get_function("rsqrt")
    below = nnlut.measure(rsqrt, rs, (0.1, 1.0 - 1e-12))["max_rel"]
    above = nnlut.measure(rsqrt, rs, (1.0, 1024.0))["max_rel"]
    results["tails"] = {"gelu_in_domain": gelu.meta["errors"]["max_abs"], "gelu_at_1e4": far_err,
                        "rsqrt_rel_below_1": below, "rsqrt_rel_1_to_1024": above}
    print(f"\nGELU error at |x| = 1e4: {far_err:.3e} (in-domain {gelu.meta['errors']['max_abs']:.3e}); "
          f"rsqrt paper mode max rel error on [0.1, 1): {below:.3e}, on [1, 1024]: {above:.3e}")

    t_rows = []
    for name in REFERENCE:
        s = cli_seconds(name, [])
        results["cli_seconds"][name] = s
        t_rows.append([f"nnlut fit {name} --entries 16", s])
    for name in RANGE_REDUCTION:
        s = cli_seconds(name, ["--range-reduction"])
        results["cli_seconds"][name + "_rr"] = s
        t_rows.append([f"nnlut fit {name} --range-reduction", s])
    print()
    print(format_table(["whole process (median of 3)", "seconds"], t_rows))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1) + "\n")
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
