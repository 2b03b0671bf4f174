"""``nnlut eval``: task accuracy of a model with approximated ops, against FP32."""

from __future__ import annotations

import argparse
import json

from ._common import ENTRIES, SEED, check_output_file, format_table, int_at_least


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="accuracy of a pretrained model with LUT ops beside FP32 and the baselines",
                       description="Evaluate exact, NN-LUT (each op alone and all ops), linear mode, exponential "
                                   "mode and I-BERT on the movie-review test half and the other sentiment sets.")
    p.add_argument("--model", default="minilm", help="minilm (default), mpnet, or a local HuggingFace model folder")
    p.add_argument("--head", choices=("finetuned", "probe"), default="finetuned",
                   help="FP32 reference: a classifier fine-tuned on the training half (cached; default) or a "
                        "linear probe on frozen embeddings (quick)")
    p.add_argument("--entries", "-n", type=ENTRIES, default=16, help="table entries (default 16)")
    p.add_argument("--limit", type=int_at_least(1), help="evaluate only the first N sentences of each set (quick runs)")
    p.add_argument("--configs", nargs="+", metavar="NAME", help="configurations to run (default: all; fp32 always runs)")
    p.add_argument("--extra-for", nargs="*", metavar="NAME",
                   help="configurations that also run the amazon/nyt/tweets sets (default: all; none with no names)")
    p.add_argument("--calibrate", type=int_at_least(0), default=528, metavar="SENTENCES",
                   help="unlabeled training sentences for the calibrated configurations (default 528, 10%% of the "
                        "training half; 0 = none)")
    p.add_argument("--sweep", action="store_true",
                   help="instead of the default configurations: NN-LUT with 16, 8 and 4 entries, calibrated and not")
    p.add_argument("--seed", type=SEED, default=0, help="data split and fine-tuning seed (default 0)")
    p.add_argument("--json", metavar="FILE", help="write all results as JSON")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from .._errors import NNLUTError
    from ..eval import build_task, default_configs, entry_sweep_configs, evaluate_configs
    from ..eval._evaluate import extra_rows, summary_rows

    out = check_output_file(args.json) if args.json else None
    configs = entry_sweep_configs(calibrate=args.calibrate) if args.sweep else default_configs(args.entries, args.calibrate)
    names = [c.name for c in configs]
    if args.configs:
        unknown = [c for c in args.configs if c not in names]
        if unknown:
            raise NNLUTError(f"unknown configuration(s) {', '.join(unknown)}; available: {', '.join(names)}")
        configs = [c for c in configs if c.name == "fp32" or c.name in args.configs]
    extra_for = args.extra_for if args.extra_for is not None else None
    task = build_task(args.model, args.head, seed=args.seed, limit=args.limit, extra=extra_for != [])
    res = evaluate_configs(task, configs, extra_for=extra_for)
    m = task.meta
    print(f"{m['model']} ({m['head']}), movie-review test half: {m['test_sentences']} sentences"
          + (f"; fine-tuned in {m['finetune_seconds']:.0f} s" if "finetune_seconds" in m else ""))
    print(format_table(*summary_rows(res)))
    for name, r in res["configs"].items():
        c = r.get("calibration")
        if c:
            share = c.get("fraction_of_finetune_time")
            print(f"{name}: calibrated on {c['sentences']} unlabeled sentences ({c['train_fraction']:.0%} of the training "
                  f"half) in {c['seconds']:.1f} s" + (f" = {share:.1%} of fine-tuning time" if share is not None else ""))
    h, rows = extra_rows(res)
    if rows:
        print()
        print(format_table(h, rows))
    if out is not None:
        from ..core._io import atomic_write_text

        atomic_write_text(out, json.dumps(res, indent=1, default=float) + "\n")
        print(f"wrote {out}")
    return 0
