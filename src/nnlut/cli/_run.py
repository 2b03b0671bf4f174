"""``nnlut run``: the main job, reproducing the whole study into an output folder."""

from __future__ import annotations

import argparse

from ._common import ENTRIES, SEED, check_output_dir, int_at_least


def register(sub: argparse._SubParsersAction) -> None:
    from ..report._study import SECTIONS

    p = sub.add_parser("run", help="reproduce the whole study: tables, plots and report",
                       description="Run the study's sections and write results.json, report.md, tables and plots.")
    p.add_argument("--out", "-o", default="results", metavar="DIR", help="output folder (default: results)")
    p.add_argument("--entries", "-n", type=ENTRIES, default=16, help="table entries (default 16)")
    p.add_argument("--seed", type=SEED, default=0, help="seed (default 0)")
    p.add_argument("--head", choices=("auto", "finetuned", "probe"), default="auto",
                   help="FP32 reference for the model section: the fine-tuned classifier when cached (auto), "
                        "always fine-tune (finetuned), or a linear probe (probe)")
    p.add_argument("--eval-limit", type=int_at_least(1), default=1000, help="test sentences in the model section (default 1000)")
    p.add_argument("--only", nargs="+", metavar="SECTION", choices=list(SECTIONS),
                   help=f"run only these sections: {', '.join(SECTIONS)}")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from .._files import OutputFolder
    from ..report._study import Settings, run_study

    out = check_output_dir(args.out)
    settings = Settings(entries=args.entries, seed=args.seed, head=args.head, eval_limit=args.eval_limit)
    with OutputFolder(out, kind="study") as stage:
        run_study(str(stage.path), settings, args.only, echo=print)
    print(f"\nwrote {out}/report.md and {out}/results.json")
    return 0
