"""``nnlut export-model``: an approximated model as a ``torch.export`` program (``.pt2``) in
which every table op is one ``nnlut`` node with its tables as tensor inputs.

Models: the shipped sentence encoders (``minilm``, ``mpnet``) or a local HuggingFace folder
(``AutoModel`` with its tokenizer). The example input is a batch of sentences (``--text``);
the program is checked against the eager model on it before it is written, and its table
sites are listed.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from ._common import ENTRIES, check_output_file, format_table

_TEXT = ["A gorgeous, witty, seductive movie.", "Bad."]


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export-model", help="write an approximated model as a torch.export program with visible tables",
                       description="Approximate a model's non-linear ops with tables and write it as a torch.export "
                                   "program (.pt2): one nnlut op node per approximated site, the tables' breakpoints, "
                                   "slopes and intercepts as its tensor inputs. Load it with nnlut.load_program (or "
                                   "torch.export.load after 'import nnlut.export').")
    p.add_argument("--model", default="minilm", help="minilm (default), mpnet, or a local HuggingFace model folder")
    p.add_argument("--out", required=True, metavar="FILE",
                   help="the file to write: a torch.export program (.pt2) or an ONNX model (.onnx: every table op a "
                        "model-local function of standard ONNX operators; needs the 'onnx' extra)")
    p.add_argument("--entries", "-n", type=ENTRIES, default=16, help="table entries (default 16)")
    p.add_argument("--method", default="nnlut", help="table method: nnlut (default), linear, exponential")
    p.add_argument("--number-format", metavar="SPEC",
                   help="fixed-point or half-precision tables: int16, int8, int8:P, fp16, bf16 (default: float)")
    p.add_argument("--text", nargs="+", metavar="SENTENCE", help="the example batch (default: two sentences)")
    p.add_argument("--json", metavar="FILE", help="also write the table sites as JSON")
    p.set_defaults(handler=run)


def _load(name: str) -> tuple[Any, Any]:
    import os

    from ..eval._models import MODELS, load_encoder

    if name in MODELS:
        return load_encoder(name)
    if os.path.isdir(name):
        from ..eval._local import load_folder

        return load_folder(name, "AutoModel")
    from .._errors import NNLUTError

    raise NNLUTError(f"--model {name!r} is neither a shipped model ({', '.join(sorted(MODELS))}) nor a folder")


def _onnx(wrapped: Any, example: tuple, out: Any, report: Any) -> int:
    from ..export import export_onnx, run_onnx

    proto = export_onnx(wrapped, example, out)
    nodes = [n for n in proto.graph.node if n.domain == "nnlut"]
    rows = [[n.name, n.op_type] for n in nodes]
    print(format_table(["node", "nnlut function"], rows))
    checked = ""
    try:
        import onnxruntime  # noqa: F401  (the check below is optional)
    except ImportError:
        pass
    else:
        (got,) = run_onnx(out, *example)
        want = wrapped(*example).detach()
        checked = (f"; onnxruntime vs eager on the example batch: max |diff| {float((got - want).abs().max()):.3g} "
                   f"(outputs up to {float(want.abs().max()):.3g})")
    print(f"{len(nodes)} table sites as {len(proto.functions)} model-local functions "
          f"({', '.join(f'{k}: {v}' for k, v in sorted(report.counts().items()))} replaced){checked}; wrote {out}")
    return 0


def run(args: argparse.Namespace) -> int:
    import torch

    from .._errors import NNLUTError
    from ..export import LastHiddenState, export_program, save_program, table_sites
    from ..models import ApproxConfig, approximate_

    out = check_output_file(args.out)
    js = check_output_file(args.json) if args.json else None
    config = ApproxConfig(method=args.method, entries=args.entries, number_format=args.number_format)
    tok, model = _load(args.model)
    report = approximate_(model, config)
    batch = tok(args.text or _TEXT, padding=True, return_tensors="pt")
    example = (batch["input_ids"], batch["attention_mask"])

    wrapped = LastHiddenState(model).eval()
    if out.suffix == ".onnx":
        return _onnx(wrapped, example, out, report)
    program = export_program(wrapped, example)
    want = wrapped(*example).detach()
    got = program.module()(*example).detach()
    if not torch.equal(got, want):
        raise NNLUTError(f"the exported program differs from the eager model (max |diff| "
                         f"{float((got - want).abs().max()):.3g}); nothing written")
    save_program(program, out)
    sites = table_sites(program)
    rows = [[s.node, s.op, ", ".join(f"{role}: {t['layout'].get('format', '').replace('nnlut.', '')} "
                                     f"{t['entries']}" for role, t in s.tables.items())] for s in sites]
    print(format_table(["node", "op", "tables (kind, entries)"], rows))
    print(f"{len(sites)} table sites ({', '.join(f'{k}: {v}' for k, v in sorted(report.counts().items()))} replaced); "
          f"program equals the eager model on the example batch; wrote {out}")
    if js is not None:
        from .._files import atomic_write_text

        atomic_write_text(js, json.dumps([{"node": s.node, "op": s.op, "tables": s.tables} for s in sites], indent=1))
    return 0
