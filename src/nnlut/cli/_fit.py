"""``nnlut fit``: fit one table and print its errors beside the baselines."""

from __future__ import annotations

import argparse
import math

from ._common import ENTRIES, SEED, check_interval, check_output_file, finite_float, format_table, int_at_least

# above this many entries the other table methods are not fitted for comparison unless asked
# (--baselines all): an NN-LUT training of hundreds of entries takes minutes
BASELINE_MAX_ENTRIES = 64
BASELINES = ("auto", "all", "none")


def register(sub: argparse._SubParsersAction) -> None:
    from ..core._functions import list_functions
    from ..fitting import METHODS

    p = sub.add_parser("fit", help="fit a table for a function and compare it with the baselines",
                       description="Fit an N-entry table, save it as JSON and print max/mean absolute and "
                                   "relative error over the domain beside linear mode, exponential mode and I-BERT.")
    p.add_argument("function", metavar="FUNC", help=f"function name: {', '.join(list_functions())}")
    p.add_argument("--entries", "-n", type=ENTRIES, default=16, help="number of table entries N (default 16)")
    p.add_argument("--domain", nargs=2, type=finite_float, metavar=("LO", "HI"),
                   help="evaluation domain (default: the function's)")
    p.add_argument("--method", choices=METHODS, default="nnlut", help="how breakpoints are placed (default nnlut)")
    p.add_argument("--range-reduction", action="store_true",
                   help="table on one power-of-two period with every positive input reduced to it (reciprocal, rsqrt)")
    p.add_argument("--seed", type=SEED, default=0, help="seed for perturbed restarts (default 0)")
    p.add_argument("--restarts", type=int_at_least(1, 1000), default=1, help="NN-LUT training runs, best kept (default 1)")
    p.add_argument("--format", metavar="SPEC", dest="number_format",
                   help="fit in a number format with quantisation in the loop: int16, int8, int8:P (P = 0..7), fp16, bf16")
    p.add_argument("--baselines", choices=BASELINES, default="auto",
                   help=f"the other methods fitted for comparison: auto (default): all up to {BASELINE_MAX_ENTRIES} "
                        "entries, above that I-BERT's polynomial only (an NN-LUT fit of hundreds of entries takes "
                        "minutes); all; none")
    p.add_argument("--out", "-o", required=True, metavar="FILE.json", help="where to write the table")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from ..core._functions import get_function
    from ..fitting import METHODS, compare

    out = check_output_file(args.out)
    if args.number_format is not None:
        return _run_format(args, out)
    spec = get_function(args.function)
    domain = check_interval(args.domain, "--domain")
    others = tuple(m for m in METHODS if m != args.method)
    baselines = getattr(args, "baselines", "auto")
    skipped = others if baselines == "none" or (baselines == "auto" and args.entries > BASELINE_MAX_ENTRIES) else ()
    rows = compare(spec, args.entries, domain=domain, range_reduction=args.range_reduction, seed=args.seed,
                   restarts=args.restarts, methods=(args.method,) + tuple(m for m in others if m not in skipped),
                   include_ibert=baselines != "none")
    chosen = rows[0].table
    assert chosen is not None
    chosen.save(str(out))
    e = rows[0].errors
    lo, hi = e["domain"]
    mode = " with full range reduction" if args.range_reduction else (
        f" (table on [{chosen.domain[0]:g}, {chosen.domain[1]:g}], {chosen.scaling.mode} scaling)" if chosen.scaling else
        f" (tails fitted on [{chosen.domain[0]:g}, {chosen.domain[1]:g}])" if list(chosen.domain) != [lo, hi] else "")
    print(f"{spec.name}, {args.entries} entries, domain [{lo:g}, {hi:g}]{mode}; {e['points']} grid points")
    table_rows = []
    for r in rows:
        ratio = r.errors["max_abs"] / e["max_abs"] if e["max_abs"] > 0 else math.nan
        table_rows.append([r.method + (" *" if r is rows[0] else ""), r.errors["max_abs"], r.errors["mean_abs"],
                           r.errors["max_rel"], r.errors["mean_rel"], ratio, r.seconds])
    print(format_table(["method", "max abs", "mean abs", "max rel", "mean rel", "max abs / *", "fit s"], table_rows))
    if skipped:
        why = "--baselines none" if baselines == "none" else f"above {BASELINE_MAX_ENTRIES} entries; --baselines all fits them"
        print(f"not fitted for comparison: {', '.join(skipped)} ({why})")
    _print_full_domain(rows[0].method, e.get("full_domain"))
    print(f"wrote {out}")
    return 0


def _print_full_domain(what: str, full: dict | None) -> None:
    from ..fitting._full import FULL_HEADERS, full_domain_rows

    if not full:
        return
    lo, hi = full["inputs"]
    within = "" if (lo, hi) == ("-inf", "inf") else f" in [{lo}, {hi}]"
    print(f"\n{what}, full domain: every finite input{within}, relative error |t - f| / max(|f|, 2^-14); "
          "inputs whose exact value is not finite in the format are excluded")
    print(format_table(list(FULL_HEADERS), full_domain_rows(full)))
    sp = full.get("specials")
    if sp:
        pairs = ", ".join(f"{x} -> {sp['table'][x]}" for x in sp["table"])
        print(f"special inputs: {pairs}" + ("" if sp["match"] else f" (exact: {sp['exact']}: WRONG)"))


def _run_format(args: argparse.Namespace, out: object) -> int:
    from ..fixed._fitq import fit_in_format

    kw = {} if args.number_format.strip().lower().startswith("int8") else {
        "method": args.method, "range_reduction": args.range_reduction, "seed": args.seed, "restarts": args.restarts}
    table = fit_in_format(args.function, args.entries, args.number_format,
                          domain=tuple(args.domain) if args.domain else None, **kw)
    table.save(str(out))
    e = table.meta.get("errors", {})
    print(f"{args.function}, {table.entries} entries, format {args.number_format}"
          + (f"; {e['input_codes']} input codes" if "input_codes" in e else ""))
    cols = [k for k in ("max_abs", "mean_abs", "max_abs_lsb", "float_table_max_abs") if k in e]
    if cols:
        print(format_table(cols, [[e[k] for k in cols]]))
    _print_full_domain(f"{args.number_format} table", e.get("full_domain"))
    print(f"wrote {out}")
    return 0
