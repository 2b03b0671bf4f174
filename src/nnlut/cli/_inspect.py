"""``nnlut inspect``: what a model's forward runs on tables and what still runs exact, where."""

from __future__ import annotations

import argparse
import json


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "inspect", help="coverage: which non-linear work of a model runs on tables, which exact",
        description="Approximate a model with the default config, run one traced forward on a probe batch and "
                    "list every non-linear op that ran: on tables, exact on data (where and why) and static "
                    "(weights and positions only). MODEL is a local model folder or a transformers model type "
                    "(built tiny from its default config, random weights).")
    p.add_argument("model", metavar="MODEL", help="model folder, or a model type such as llama, bloom, mamba")
    p.add_argument("--attn", default="eager", help="attention implementation to build with (default eager; sdpa)")
    p.add_argument("--tokens", type=int, default=12, help="probe length in tokens (default 12)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from .._errors import NNLUTError
    from ..models import approximate_
    from ..models._tiny import load_model, probe_inputs
    from ..models._trace import trace_coverage

    if args.tokens < 2:
        raise NNLUTError(f"--tokens must be at least 2, got {args.tokens}")
    model = load_model(args.model, attn=args.attn)
    probe = probe_inputs(model, args.tokens)
    before = trace_coverage(model, **probe)
    report = approximate_(model, probe=probe)
    after = report.coverage
    assert after is not None
    if args.json:
        print(json.dumps({"model": args.model, "attn": args.attn, "before": before.as_dict(),
                          "report": report.as_dict()}, indent=1, default=str))
        return 0
    print(f"{args.model} ({type(model).__name__}, {args.attn} attention, probe 2 x {args.tokens} tokens)")
    print(f"  original:     {before.total('exact')} data-dependent non-linear evaluations, all exact")
    print(f"  approximated: {after}")
    print(f"  replaced modules: {report.counts() or 'none'}")
    for r in report.not_run:
        print(f"  replaced but never ran: {r['name']} ({r['op']})")
    ran = [c for c in report.calls if c["on"] == "table"]
    if ran:
        print(f"  calls on tables: {len(ran)} sites, e.g. " + ", ".join(c["site"] for c in ran[:4]))
    exact = sorted(after.of("exact"), key=lambda r: -r["elements"])
    why = {r["name"]: r["why"] for r in report.left_exact}
    served = {c["site"].rsplit("#", 1)[0]: c["why"] for c in report.calls if c["on"] == "exact"}
    for r in exact:
        reason = served.get(r["site"]) or (why.get(r["site"], "").split(";")[0] if r["site"] in why else "")
        reason = reason or f"no table serves {r['op']} here"
        print(f"  EXACT  {r['site']}#{r['op']}: {r['elements']} evaluations in {r['calls']} calls ({reason})")
    for r in sorted(after.of("static"), key=lambda r: -r["elements"]):
        print(f"  static {r['site']}#{r['op']}: {r['elements']} evaluations (weights and positions only)")
    return 0
