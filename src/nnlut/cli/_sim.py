"""``nnlut sim``: the NPU model across sequence lengths, I-BERT's kernels against NN-LUT."""

from __future__ import annotations

import argparse
import json

from ._common import check_output_file, format_table, int_at_least

SEQ_LENS = [16, 32, 64, 128, 256, 512, 1024, 2048, 4096]


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sim", help="model an NPU running an encoder: cycles per op class, I-BERT vs NN-LUT",
                       description="Simulate one forward pass on an NPU (systolic array + vector unit). By default "
                                   "the NPU is built from the measured function units (the figures shipped with nnlut, "
                                   "or a fresh 'nnlut hw' report with --hw DIR), its other parameters fitted to the "
                                   "paper's three points; --config gives an operation-count NPU instead.")
    p.add_argument("--model", default="bert-base", help="bert-base (default), minilm, mpnet, or a config.json path")
    p.add_argument("--seq", nargs="+", type=int_at_least(1, 1 << 20), default=SEQ_LENS, metavar="L", help="sequence lengths")
    p.add_argument("--batch", type=int_at_least(1, 1 << 20), help="batch size (default: the fitted one, or 1 with --config)")
    p.add_argument("--hw", metavar="DIR", help="a folder written by 'nnlut hw' (its report.json): the units' cycles, "
                                               "latency and clock (default: the measured figures shipped with nnlut)")
    p.add_argument("--config", metavar="FILE.json",
                   help="an operation-count NPU instead (keys of nnlut.system.NPUConfig); not with --hw")
    p.add_argument("--json", metavar="FILE", help="write {'records': [...], ...} as JSON")
    p.add_argument("--plot", metavar="FILE.png", help="stacked cycle bars by sequence length, and the speedup")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from .._errors import NNLUTError
    from ..system import NPUConfig, shape_of, speedups, sweep

    out = check_output_file(args.json) if args.json else None
    plot = check_output_file(args.plot) if args.plot else None
    bad = [L for L in args.seq if L < 1]
    if bad:
        raise NNLUTError(f"sequence lengths must be positive, got {bad}")
    shape = shape_of(args.model)
    if args.config and args.hw:
        raise NNLUTError("--config (an operation-count NPU) and --hw (an NPU from measured units) exclude each other")
    if not args.config:
        return _run_hw(args, shape, out, plot)
    cfg = NPUConfig.load(args.config)
    batch = args.batch if args.batch is not None else 1
    records = sweep(shape, sorted(args.seq), cfg, batch)
    _show(records, speedups(records), shape.name, batch, {"config": cfg.to_dict()}, out, plot)
    return 0


def _show(records: list[dict], sp: dict, name: str, batch: int, extra: dict, out: object, plot: object) -> None:
    """Print the cycle table; write the JSON (``extra`` joins the records) and the plot when asked."""
    rows = []
    for r in records:
        c = r["cycles"]
        rows.append([r["seq_len"], r["design"]] + [c[k] / 1e6 for k in ("gemm", "gelu", "softmax", "layernorm", "other")]
                    + [r["total"] / 1e6, 100 * r["nonlinear_share"], sp[r["seq_len"]] if r["design"] == "nnlut" else 1.0])
    print(f"{name}, batch {batch} (Mcycles)")
    print(format_table(["seq", "design", "gemm", "gelu", "softmax", "layernorm", "other", "total", "NL share %",
                        "speedup"], rows))
    if out is not None:
        from ..core._io import atomic_write_text

        payload = {"model": name, "batch": batch, **extra, "records": records,
                   "speedup": {str(k): v for k, v in sp.items()}}
        atomic_write_text(out, json.dumps(payload, indent=1) + "\n")
        print(f"wrote {out}")
    if plot is not None:
        from ..system._plot import plot_cycles

        plot_cycles(records, str(plot), f"{name}, batch {batch}: cycles by op class")
        print(f"wrote {plot}")


def _run_hw(args: argparse.Namespace, shape: object, out: object, plot: object) -> int:
    """The NPU built from the measured units, fitted to the paper's three points."""
    from dataclasses import replace

    from .._errors import NNLUTError
    from ..system import HWNPU, explain, fit_hw, load_units, simulate_hw

    units, source = load_units(args.hw)
    fit = fit_hw(units)
    npu = HWNPU(**fit["npu"])
    if args.batch is not None:
        if args.batch < 1:
            raise NNLUTError(f"batch must be positive, got {args.batch}")
        npu = replace(npu, batch=args.batch)
    print(f"NPU from the measured units ({source}: " + ", ".join(
        f"{n} {u.latency_cycles:g} cyc @ {u.fmax_mhz:.1f} MHz" for n, u in sorted(units.items())
        if n in ("nnlut_unit", "ibert_gelu", "ibert_exp", "ibert_div32", "ibert_isqrt", "ibert_div31")) + ")")
    print(f"  fitted ({fit['searched']} configurations, {fit['within_tolerance']} within every tolerance): "
          f"{json.dumps(fit['npu'])}")
    names = {"ibert_share_16": "I-BERT share at 16", "ibert_share_1024": "I-BERT share at 1024",
             "nnlut_share_1024": "NN-LUT share at 1024", "speedup_1024": "speedup at 1024",
             "speedup_max": "top speedup, 16-1024"}
    rows = [[names[k], fit["figures"][k], fit["paper"][k], fit["residuals"][k], fit["tolerances"][k]]
            for k in names]
    print(format_table(["point", "model", "paper", "residual", "tolerance"], rows))
    ex = explain(units, npu)
    nn, ib = ex["nnlut"], ex["ibert"]
    print(f"  at 1024 tokens NN-LUT cuts the non-linear cycles {ex['nonlinear_gain']:.2f}x: its units take "
          f"{nn['units'] / nn['nonlinear_cycles']:.0%} of its non-linear cycles (I-BERT's units "
          f"{ib['units'] / ib['nonlinear_cycles']:.0%} of I-BERT's); the vector ops around the functions (max, sum, "
          f"normalise, mean, variance: the same in both designs) take {nn['around'] / nn['nonlinear_cycles']:.0%}, "
          f"and ops bound by the SRAM port ({npu.sram_bytes_per_cycle:g} B/cycle), the same for both designs: "
          + (", ".join(o for o, b in nn["bound"].items() if b == "memory") or "none")
          + "; these, not the function units, hold the gain below the units' own ratio")
    records = [simulate_hw(units, npu, shape, L, d) for L in sorted(args.seq) for d in ("ibert", "nnlut")]
    for r in records:
        r.pop("parts", None)
    from ..system import speedups

    sp = speedups(records)
    name = getattr(shape, "name", str(shape))
    _show(records, sp, name, npu.batch, {"npu": npu.to_dict(), "units_source": source,
                                         "fit": {k: v for k, v in fit.items() if k != "grid"}, "explain": ex}, out, plot)
    return 0
