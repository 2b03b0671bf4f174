"""``nnlut calibrate``: refit a model's tables on unlabeled sentences and save them."""

from __future__ import annotations

import argparse
import json

from ._common import ENTRIES, SEED, check_output_dir, format_table, int_at_least


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("calibrate", help="refit a model's tables on unlabeled data, model frozen; save them",
                       description="Approximate the model's ops, observe each table's inputs on unlabeled training "
                                   "sentences, refit the tables, and write them with a manifest to a folder.")
    p.add_argument("--model", default="minilm", help="minilm (default), mpnet, or a local HuggingFace model folder")
    p.add_argument("--head", choices=("auto", "finetuned", "probe"), default="auto",
                   help="classifier whose encoder is calibrated (default: the fine-tuned one when cached)")
    p.add_argument("--sentences", type=int_at_least(1), default=528, help="unlabeled training sentences to use (default 528)")
    p.add_argument("--entries", "-n", type=ENTRIES, default=16, help="table entries (default 16)")
    p.add_argument("--method", choices=("nnlut", "linear", "exponential"), default="nnlut", help="starting tables")
    p.add_argument("--format", metavar="SPEC", dest="number_format", default=None,
                   help="tables in a number format (int16, int8, int8:P, fp16, bf16); with int8 calibration "
                        "also chooses each table's power-of-two input scale 2^-P from the data (default: float)")
    p.add_argument("--per-layer", action="store_true", help="one table per module instead of one per op type")
    p.add_argument("--evaluate", type=int_at_least(0), default=0, metavar="N",
                   help="also compare accuracy before and after on the first N test sentences")
    p.add_argument("--seed", type=SEED, default=0, help="data split seed (default 0)")
    p.add_argument("--out", "-o", required=True, metavar="DIR", help="folder for the tables and manifest.json")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from ..calibration import calibrate, save_calibration
    from ..eval import build_task
    from ..eval._classifier import encode_batches, run_model
    from ..fixed import parse_format
    from ..models import ApproxConfig, approximate_

    if args.number_format is not None:
        parse_format(args.number_format)  # a bad spec fails before any work
    out = check_output_dir(args.out)
    task = build_task(args.model, args.head, seed=args.seed, limit=args.evaluate or None, extra=False)
    assert task.train is not None
    clf, tok = task.classifier, task.tokenizer
    ref = run_model(clf, tok, task.test, desc="fp32") if args.evaluate else None
    approximate_(clf, ApproxConfig(method=args.method, entries=args.entries, share_tables=not args.per_layer,
                                  number_format=args.number_format))
    before = run_model(clf, tok, task.test, desc="before") if args.evaluate else None
    texts = task.train.texts[: args.sentences]
    rep = calibrate(clf, (b for _, b in encode_batches(tok, texts, 64, 128)))
    report = json.dumps({"task": task.meta, "sentences": len(texts), **rep.as_dict()}, indent=1, default=float) + "\n"
    folder = save_calibration(clf, out, extra={"report.json": report})
    rows = [[t["function"], len(t["modules"]), t.get("samples", 0), t.get("rms_before", float("nan")),
             t.get("rms_after", float("nan")), _scale_cell(t), "; ".join(t["notes"]) or "-"] for t in rep.tables]
    print(f"calibrated {len(rep.tables)} tables on {len(texts)} unlabeled sentences in {rep.seconds:.1f} s "
          f"(observing {rep.seconds_observe:.1f} s, refitting {rep.seconds_refit:.1f} s)"
          + (f" = {rep.seconds / task.meta['finetune_seconds']:.1%} of fine-tuning time"
             if "finetune_seconds" in task.meta else ""))
    print(format_table(["table", "modules", "samples", "rms error before", "rms error after", "INT8 input scale", "notes"], rows))
    if args.evaluate and ref is not None and before is not None:
        after = run_model(clf, tok, task.test, desc="after")
        labels = task.test.labels
        acc = {k: float((v["logits"].argmax(1) == labels[v["index"]]).mean()) for k, v in
               (("fp32", ref), ("before", before), ("after", after))}
        agree = {k: float((v["logits"].argmax(1) == ref["logits"].argmax(1)).mean()) for k, v in
                 (("before", before), ("after", after))}
        print(format_table(["", "accuracy", "agreement with fp32"],
                           [["fp32", acc["fp32"], 1.0], ["uncalibrated", acc["before"], agree["before"]],
                            ["calibrated", acc["after"], agree["after"]]]))
    print(f"wrote {folder}/manifest.json and {len(list((folder / 'tables').iterdir()))} table files")
    return 0


def _scale_cell(record: dict) -> str:
    """The INT8 input scale calibration chose (and the one before), with their held-out errors."""
    sc = record.get("input_scale")
    if not sc:
        return "-"
    err = {c["P"]: c["rms"] for c in sc["candidates"]}
    text = f"2^-{sc['chosen']} (rms {err[sc['chosen']]:.3g})"
    if sc.get("before"):
        text += f", was 2^-{sc['before']['P']} (rms {sc['before']['rms']:.3g})"
    return text
