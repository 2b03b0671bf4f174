"""``nnlut eval``: task accuracy or perplexity of a model with approximated ops, against FP32.

Models: the shipped sentence encoders (``minilm``, ``mpnet``) on the sentiment task, nnlut's
own decoder LM (``lm``), a ViT on scikit-learn's digits (``vit-digits``), or a local
HuggingFace folder with ``--data`` (a sequence classifier with a TSV file, a causal LM with a
text file). Runs data-parallel under ``torchrun``; only rank 0 prints and writes.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from typing import Any

from ._common import ENTRIES, SEED, check_output_file, format_table, int_at_least

CALIBRATE_DEFAULTS = {"sentiment": 528, "lm": 32, "vit-digits": 4, "classifier": 4, "causal-lm": 8}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="accuracy or perplexity of a model with LUT ops beside FP32 and the baselines",
                       description="Evaluate exact, NN-LUT (each op alone and all ops), linear mode, exponential "
                                   "mode and I-BERT, with confidence intervals against FP32. Under torchrun "
                                   "(torchrun --nproc_per_node N -m nnlut eval ...) the work is split across processes.")
    p.add_argument("--model", default="minilm",
                   help="minilm (default), mpnet, lm (nnlut's own byte-level LLaMA-style decoder, trained and cached "
                        "on first use), vit-digits (a ViT on scikit-learn's digits), or a local HuggingFace folder")
    p.add_argument("--data", metavar="FILE",
                   help="with a local model folder: a TSV file of 'text<TAB>label' lines (sequence classifier) or a "
                        "text file (causal LM, perplexity)")
    p.add_argument("--head", choices=("finetuned", "probe"), default="finetuned",
                   help="sentiment models' FP32 reference: a classifier fine-tuned on the training half (cached; "
                        "default) or a linear probe on frozen embeddings (quick)")
    p.add_argument("--entries", "-n", type=ENTRIES, default=16, help="table entries (default 16)")
    p.add_argument("--limit", type=int_at_least(1),
                   help="evaluate a seeded stratified sample of N sentences / images, or N sequences (quick runs)")
    p.add_argument("--configs", nargs="+", metavar="NAME", help="configurations to run (default: all; fp32 always runs)")
    p.add_argument("--extra-for", nargs="*", metavar="NAME",
                   help="sentiment: configurations that also run the amazon/nyt/tweets sets (default: all; none with "
                        "no names)")
    p.add_argument("--calibrate", type=int_at_least(0), metavar="N",
                   help="calibration data of the calibrated configurations (0 = none): unlabeled training sentences "
                        "(sentiment, default 528 = 10%% of the training half), training sequences (lm, default 32), "
                        "batches (vit-digits and local classifiers, default 4; local LMs: sequences, default 8)")
    p.add_argument("--context", type=int_at_least(2),
                   help="local causal LM: tokens per sequence (default min(512, model maximum))")
    p.add_argument("--sweep", action="store_true",
                   help="sentiment: NN-LUT with 16, 8 and 4 entries, calibrated and not, instead of the defaults")
    p.add_argument("--seed", type=SEED, default=0, help="data split, subset and training seed (default 0)")
    p.add_argument("--json", metavar="FILE", help="write all results as JSON")
    p.set_defaults(handler=run)


def _select(configs: list[Any], wanted: list[str] | None) -> list[Any]:
    from .._errors import NNLUTError

    if not wanted:
        return configs
    names = [c.name for c in configs]
    unknown = [c for c in wanted if c not in names]
    if unknown:
        raise NNLUTError(f"unknown configuration(s) {', '.join(unknown)}; available: {', '.join(names)}")
    return [c for c in configs if c.name == "fp32" or c.name in wanted]


def _calibrate(args: argparse.Namespace, kind: str) -> int:
    return CALIBRATE_DEFAULTS[kind] if args.calibrate is None else args.calibrate


def _sentiment(args: argparse.Namespace) -> tuple[dict[str, Any], list[str]]:
    from ..eval import build_task, default_configs, entry_sweep_configs, evaluate_configs
    from ..eval._evaluate import extra_rows, summary_rows

    cal = _calibrate(args, "sentiment")
    configs = entry_sweep_configs(calibrate=cal) if args.sweep else default_configs(args.entries, cal)
    configs = _select(configs, args.configs)
    task = build_task(args.model, args.head, seed=args.seed, limit=args.limit, extra=args.extra_for != [])
    res = evaluate_configs(task, configs, extra_for=args.extra_for)
    m = task.meta
    lines = [f"{m['model']} ({m['head']}), movie-review test half: {m['test_sentences']} sentences ({m['subset']}, "
             f"{m['positive_share']:.1%} positive)" + (f"; fine-tuned in {m['finetune_seconds']:.0f} s"
                                                        if "finetune_seconds" in m else ""),
             format_table(*summary_rows(res))]
    for name, r in res["configs"].items():
        c = r.get("calibration")
        if c:
            share = c.get("fraction_of_finetune_time")
            lines.append(f"{name}: calibrated on {c['sentences']} unlabeled sentences ({c['train_fraction']:.0%} of the "
                         f"training half) in {c['seconds']:.1f} s"
                         + (f" = {share:.1%} of fine-tuning time" if share is not None else ""))
    h, rows = extra_rows(res)
    if rows:
        lines += ["", format_table(h, rows)]
    return res, lines


def _lm_lines(res: dict[str, Any], head: str) -> list[str]:
    from ..eval._lm_eval import lm_rows

    return [head, format_table(*lm_rows(res)),
            "Δ ppl: change of perplexity against FP32 with a paired bootstrap 95% interval over sequences."]


def _lm(args: argparse.Namespace) -> tuple[dict[str, Any], list[str]]:
    from ..eval._lm_eval import build_lm_task, evaluate_lm, lm_configs

    cal = _calibrate(args, "lm")
    task = build_lm_task(args.seed, args.limit, cal)
    res = evaluate_lm(task, _select(lm_configs(args.entries, cal), args.configs), seed=args.seed)
    m = task.meta
    sm = m["softmax_inputs"]
    head = (f"nnlut byte-level LM ({m['parameters']:,} parameters, vocabulary {m['vocab_size']}, trained in "
            f"{m['train_seconds']:.0f} s): {m['test_sequences']} held-out sequences of {m['context']} tokens; "
            f"softmax inputs reach {sm['min']:.1f} (0.1% below {sm['q001']:.1f})")
    return res, _lm_lines(res, head)


def _vit(args: argparse.Namespace) -> tuple[dict[str, Any], list[str]]:
    from ..eval import default_configs
    from ..eval._logits import evaluate_logits, logits_rows
    from ..eval._vit import build_vit_task

    task = build_vit_task(args.seed, args.limit)
    res = evaluate_logits(task, _select(default_configs(args.entries, _calibrate(args, "vit-digits")), args.configs),
                          seed=args.seed)
    m = task.meta
    return res, [f"ViT on digits ({m['parameters']:,} parameters, trained in {m['train_seconds']:.0f} s): "
                 f"{m['test_images']} test images", format_table(*logits_rows(res))]


def _local(args: argparse.Namespace) -> tuple[dict[str, Any], list[str]]:
    from ..eval import default_configs
    from ..eval._lm_eval import evaluate_lm, lm_configs
    from ..eval._local import build_causal_task, build_classifier_task, model_kind
    from ..eval._logits import evaluate_logits, logits_rows

    kind = model_kind(args.model)
    cal = _calibrate(args, kind)
    if kind == "classifier":
        task = build_classifier_task(args.model, args.data, calibrate_batches=max(cal, 1))
        res = evaluate_logits(task, _select(default_configs(args.entries, cal), args.configs), seed=args.seed)
        return res, [f"{args.model} on {args.data}: {len(task.labels)} texts", format_table(*logits_rows(res))]
    lm = build_causal_task(args.model, args.data, context=args.context, limit=args.limit, calibrate=max(cal, 1))
    res = evaluate_lm(lm, _select(lm_configs(args.entries, cal), args.configs), seed=args.seed)
    m = lm.meta
    return res, _lm_lines(res, f"{args.model} on {args.data}: {m['test_sequences']} sequences of {m['context']} tokens")


def _coverage_lines(res: dict[str, Any]) -> list[str]:
    """One line: each configuration's share of non-linear work on tables in one traced batch,
    and the largest exact ops left."""
    parts = []
    for name, r in res["configs"].items():
        c = r.get("coverage")
        if c is None:
            continue
        exact = ", ".join(f"{op} {n}" for op, n in list(c["exact_by_op"].items())[:3])
        parts.append(f"{name} {c['coverage']:.2%}" + (f" (exact: {exact})" if exact else ""))
    if not parts:
        return []
    items = next(r["coverage"]["items"] for r in res["configs"].values() if "coverage" in r)
    return [f"non-linear work on tables (one batch of {items}, counted at the dispatcher): " + "; ".join(parts)]


RUNNERS: dict[str, Callable[[argparse.Namespace], tuple[dict[str, Any], list[str]]]] = {
    "lm": _lm, "vit-digits": _vit,
}


def run(args: argparse.Namespace) -> int:
    from .._errors import NNLUTError
    from ..eval._dist import init_from_env, is_main

    out = check_output_file(args.json) if args.json else None
    if args.data is not None and args.model in (*RUNNERS, "minilm", "mpnet"):
        raise NNLUTError(f"--data goes with a local model folder, not with the built-in model {args.model!r}")
    init_from_env()
    runner = RUNNERS.get(args.model) or (_local if args.data is not None else _sentiment)
    res, lines = runner(args)
    lines += _coverage_lines(res)
    if not is_main():
        return 0
    print("\n".join(lines))
    if out is not None:
        from ..core._io import atomic_write_text

        atomic_write_text(out, json.dumps(res, indent=1, default=float) + "\n")
        print(f"wrote {out}")
    return 0
