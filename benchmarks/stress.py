"""The input ranges LLMs produce, fed to nnlut's ops: is the error still the in-domain error?

NN-LUT as usually implemented fits each table on a narrow range and lets its end segments run
on beyond it; LLM activations leave that range (SiLU inputs beyond +-100, RMSNorm variances over
many decades, attention logits with gaps beyond 100, long rows of near-equal logits). This feeds
each op, called as a model calls it (``nnlut.ops.lut_activation``, ``lut_softmax``,
``lut_layernorm``, ``lut_rmsnorm``, float32 inputs), such inputs and measures the output against
the exact op computed in float64: max absolute error and max relative error
``|t - f| / max(|f|, 2**-14)``, per op and input range, beside the in-domain error of the same op.

Table sets (16 entries each):

- ``nnlut``: the default tables, ``nnlut.models.fitted_table(name, "nnlut", 16, "full")``
  (asymptote tails for GELU/SiLU/exp, range reduction for 1/x and 1/sqrt x);
- ``linear``: the same tails and scaling with equal-width breakpoints (``method="linear"``);
- ``narrow``: NN-LUT as usually implemented: GELU, SiLU and exp fitted with ``nnlut.fit`` on
  (-5, 5) (exp on (-5, 0)) without tails, the end segments continuing beyond it (what the
  paper's ReLU network does there); 1/x and 1/sqrt x as the NN-LUT paper scales them (table on
  [1, 1024], inputs below 1 scaled by powers of two, inputs above 1024 clamped to it).

Input ranges (the in-domain range lies inside every table set's fitted range):

- GELU, SiLU: in-domain x uniform on (-5, 5); then log-spaced magnitudes |x| in [5, 10],
  [10, 100], [100, 1000], both signs;
- 1/x on softmax row sums: in-domain s in [1, 1024]; then [1024, 1e6] log-spaced (the
  reciprocal table alone, as lut_softmax applies it to the sum);
- RMSNorm (eps 1e-6), LayerNorm (eps 1e-5, rows with a mean of twice their spread): rows of
  1024 Gaussian values whose variance runs log-spaced over in-domain [0.1, 1000], then
  [1e-6, 0.1] and [1000, 1e8];
- softmax: in-domain rows (16 times as many) of 16 logits uniform on (-5, 0) (sums 2 to 16); rows of
  256 logits uniform on (-G, 0) with G from 100 to 1000 plus one at 0 (logit gaps beyond 100);
  rows of 4096 to 65536 near-equal logits N(0, 0.1^2) (exp-sums up to ~6.5e4: the reciprocal
  table beyond 1024, up to 1e6, is measured on its own in the 1/x rows).

Run: ``python benchmarks/stress.py`` (about a minute: the narrow GELU/SiLU/exp fits take most
of it). Writes ``benchmarks/results/stress.json`` (or ``--out``) and prints a table.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import time
from pathlib import Path
from typing import Any

import torch

from nnlut import Tail, fit, get_function
from nnlut.models import fitted_table
from nnlut.ops import lut_activation, lut_layernorm, lut_rmsnorm, lut_softmax

FLOOR = 2.0**-14
NARROW = (-5.0, 5.0)
KINDS = ("nnlut", "linear", "narrow")


def narrow_table(name: str, method: str = "nnlut") -> Any:
    """``name`` fitted on (-5, 5) (intersected with its inputs) with free end segments that
    continue beyond it; 1/x and 1/sqrt x: the NN-LUT paper's scaling."""
    if name in ("reciprocal", "rsqrt"):
        return fitted_table(name, "nnlut", 16, "paper")
    spec = get_function(name)
    lo, hi = max(NARROW[0], spec.inputs[0]), min(NARROW[1], spec.inputs[1])
    spec = dataclasses.replace(spec, domain=(lo, hi), fit_domain=None, tails=(Tail("extend"), Tail("extend")))
    return fit(spec, 16, method=method)


def table_sets(narrow_method: str) -> dict[str, dict[str, Any]]:
    names = ("gelu", "silu", "exp", "reciprocal", "rsqrt")
    return {"nnlut": {n: fitted_table(n, "nnlut", 16, "full") for n in names},
            "linear": {n: fitted_table(n, "linear", 16, "full") for n in names},
            "narrow": {n: narrow_table(n, narrow_method) for n in names}}


def errors(out: torch.Tensor, exact: torch.Tensor) -> dict[str, Any]:
    """Max absolute and relative (floor 2^-14) error of ``out`` against float64 ``exact``;
    outputs that are not finite where the exact value is are counted, not maximised over."""
    t = out.double()
    ok = torch.isfinite(t)
    d = (t - exact).abs()[ok]
    rel = d / exact.abs()[ok].clamp_min(FLOOR)
    return {"max_abs": float(d.max()) if d.numel() else None, "max_rel": float(rel.max()) if rel.numel() else None,
            "values": int(exact.numel()), "nonfinite_outputs": int((~ok).sum())}


def _logspace_signed(lo: float, hi: float, n: int, gen: torch.Generator) -> torch.Tensor:
    mag = torch.exp(torch.empty(n, dtype=torch.float64).uniform_(math.log(lo), math.log(hi), generator=gen))
    sign = torch.where(torch.rand(n, generator=gen) < 0.5, -1.0, 1.0).double()
    return (mag * sign).float()


# ------------------------------------------------------------------ cases: name -> [(range, inputs)]
def activation_cases(n: int, gen: torch.Generator) -> list[tuple[str, torch.Tensor]]:
    inside = torch.empty(n, dtype=torch.float64).uniform_(*NARROW, generator=gen).float()
    return [("in-domain |x|<5", inside)] + [
        (f"|x| {lo:g}-{hi:g}", _logspace_signed(lo, hi, n, gen)) for lo, hi in ((5, 10), (10, 100), (100, 1000))]


def sum_cases(n: int, gen: torch.Generator) -> list[tuple[str, torch.Tensor]]:
    def logu(lo: float, hi: float) -> torch.Tensor:
        return torch.exp(torch.empty(n, dtype=torch.float64).uniform_(math.log(lo), math.log(hi), generator=gen)).float()
    return [("in-domain s 1-1024", logu(1.0, 1024.0)), ("s 1024-1e6", logu(1024.0, 1e6))]


def norm_rows(var_lo: float, var_hi: float, rows: int, width: int, mean: float, gen: torch.Generator) -> torch.Tensor:
    var = torch.exp(torch.linspace(math.log(var_lo), math.log(var_hi), rows, dtype=torch.float64))[:, None]
    z = torch.randn(rows, width, dtype=torch.float64, generator=gen)
    return (var.sqrt() * (z + mean)).float()


def norm_cases(rows: int, width: int, mean: float, gen: torch.Generator) -> list[tuple[str, torch.Tensor]]:
    return [("in-domain var 0.1-1000", norm_rows(0.1, 1e3, rows, width, mean, gen)),
            ("var 1e-6-0.1", norm_rows(1e-6, 0.1, rows, width, mean, gen)),
            ("var 1000-1e8", norm_rows(1e3, 1e8, rows, width, mean, gen))]


def softmax_cases(rows: int, gen: torch.Generator) -> list[tuple[str, Any]]:
    inside = -5.0 * torch.rand(16 * rows, 16, generator=gen)
    gaps = torch.exp(torch.linspace(math.log(100.0), math.log(1000.0), rows))[:, None]
    wide = -gaps * torch.rand(rows, 256, generator=gen)
    wide[:, 0] = 0.0
    out: list[tuple[str, Any]] = [("in-domain 16 keys in (-5,0)", inside), ("gaps 100-1000, 256 keys", wide)]
    out += [(f"{keys} near-equal keys", 0.1 * torch.randn(max(1, rows // 16), keys, generator=gen))
            for keys in (4096, 16384, 65536)]
    return out


# ------------------------------------------------------------------ ops: (cases, approximate, exact)
def op_specs(args: argparse.Namespace) -> dict[str, tuple[list, Any, Any]]:
    gen = torch.Generator().manual_seed(args.seed)
    return {
        "gelu": (activation_cases(args.n, gen), lambda x, T: lut_activation(x, T["gelu"]),
                 lambda x: torch.nn.functional.gelu(x.double())),
        "silu": (activation_cases(args.n, gen), lambda x, T: lut_activation(x, T["silu"]),
                 lambda x: torch.nn.functional.silu(x.double())),
        "reciprocal (row sums)": (sum_cases(args.n, gen), lambda x, T: lut_activation(x, T["reciprocal"]),
                                  lambda x: 1.0 / x.double()),
        "rmsnorm": (norm_cases(args.rows, args.width, 0.0, gen),
                    lambda x, T: lut_rmsnorm(x, None, 1e-6, T["rsqrt"]),
                    lambda x: x.double() * torch.rsqrt(x.double().pow(2).mean(-1, keepdim=True) + 1e-6)),
        "layernorm": (norm_cases(args.rows, args.width, 2.0, gen),
                      lambda x, T: lut_layernorm(x, (x.shape[-1],), None, None, 1e-5, T["rsqrt"]),
                      lambda x: torch.nn.functional.layer_norm(x.double(), (x.shape[-1],), None, None, 1e-5)),
        "softmax": (softmax_cases(args.rows, gen), lambda x, T: lut_softmax(x, -1, T["exp"], T["reciprocal"]),
                    lambda x: torch.softmax(x.double(), -1)),
    }


def describe(op: str, x: torch.Tensor) -> dict[str, Any]:
    if op == "softmax":
        d = x.double()
        sums = torch.exp(d - d.max(-1, keepdim=True).values).sum(-1)
        gap = (d.max(-1).values - d.min(-1).values)
        return {"shape": list(x.shape), "max_gap": float(gap.max()), "sum_range": [float(sums.min()), float(sums.max())]}
    if op in ("rmsnorm", "layernorm"):
        var = x.double().var(-1)
        return {"shape": list(x.shape), "var_range": [float(var.min()), float(var.max())]}
    return {"values": int(x.numel()), "abs_range": [float(x.abs().min()), float(x.abs().max())]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "stress.json"))
    ap.add_argument("--n", type=int, default=2**16, help="inputs per range for the elementwise ops")
    ap.add_argument("--rows", type=int, default=64, help="rows per range for the row ops")
    ap.add_argument("--width", type=int, default=1024, help="row width of the norms")
    ap.add_argument("--narrow-method", default="nnlut", choices=("nnlut", "linear"))
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    t0 = time.perf_counter()
    sets = table_sets(args.narrow_method)
    fit_s = time.perf_counter() - t0
    results: dict[str, Any] = {"entries": 16, "rel_floor": FLOOR, "narrow_domain": list(NARROW),
                               "narrow_method": args.narrow_method, "seed": args.seed, "ops": {}}
    for op, (cases, approx, exact) in op_specs(args).items():
        rows: dict[str, Any] = {}
        for rng, x in cases:
            ref = exact(x)
            rows[rng] = {"inputs": describe(op, x)} | {k: errors(approx(x, sets[k]), ref) for k in KINDS}
        inside = next(iter(rows.values()))
        summary = {}
        for k in KINDS:
            outside = [r[k] for name, r in rows.items() if r is not inside]
            summary[k] = {m: {"in_domain": inside[k][m], "llm_range": max(o[m] for o in outside),
                              "ratio": max(o[m] for o in outside) / max(inside[k][m], 1e-300)}
                          for m in ("max_abs", "max_rel")}
        results["ops"][op] = {"ranges": rows, "summary": summary}
    results["seconds"] = {"tables": fit_s, "total": time.perf_counter() - t0}

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1))
    head = f"{'op':<22}{'input range':<28}" + "".join(f"{k + ' abs':>12}{k + ' rel':>12}" for k in KINDS)
    print(head)
    print("-" * len(head))
    for op, r in results["ops"].items():
        for rng, row in r["ranges"].items():
            cells = "".join(f"{row[k]['max_abs']:>12.3g}{row[k]['max_rel']:>12.3g}" for k in KINDS)
            bad = sum(row[k]["nonfinite_outputs"] for k in KINDS)
            print(f"{op:<22}{rng:<28}{cells}" + (f"  ({bad} non-finite)" if bad else ""))
    print("\nLLM-range max / in-domain max:")
    for op, r in results["ops"].items():
        s = r["summary"]
        print(f"  {op:<22}" + "  ".join(f"{k}: abs x{s[k]['max_abs']['ratio']:.3g} rel x{s[k]['max_rel']['ratio']:.3g}"
                                         for k in KINDS))
    print(f"\ntables {fit_s:.1f} s, total {results['seconds']['total']:.1f} s; wrote {out}")


if __name__ == "__main__":
    main()
