"""``nnlut hw`` (the hardware flow) and ``nnlut export`` (fixed-point table files)."""

from __future__ import annotations

import argparse

from ._common import ENTRIES, check_interval, check_output_dir, finite_float, format_table


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("hw", help="generate, verify, synthesize and time the NN-LUT unit and I-BERT's units",
                       description="Generate Verilog for the NN-LUT unit (programmable and hard-wired) and I-BERT's "
                                   "units, simulate each against the Python golden model (RTL and gate level), "
                                   "synthesize to OSU 0.18um with Yosys and time it with OpenSTA.")
    p.add_argument("--out", "-o", required=True, metavar="DIR", help="output folder (Verilog, netlists, report.json)")
    p.add_argument("--entries", "-n", type=ENTRIES, default=16, help="table entries (default 16)")
    p.add_argument("--no-gate-level", action="store_true", help="skip the gate-level simulations (faster)")
    p.add_argument("--only", nargs="+", metavar="UNIT", help="run only these units (e.g. nnlut_int8_unit nnlut_fp16_unit; "
                                                              "an unknown name lists the others)")
    p.set_defaults(handler=run_hw)

    e = sub.add_parser("export", help="write a table in fixed point: JSON, C header and $readmemh files",
                       description="Quantise a table file to the INT16/INT32 datapath and write it as JSON, a C "
                                   "header and $readmemh memory files.")
    e.add_argument("table", metavar="FILE.json", help="a table written by 'nnlut fit'")
    e.add_argument("--out", "-o", required=True, metavar="DIR", help="output folder")
    e.add_argument("--input-range", nargs=2, type=finite_float, metavar=("LO", "HI"), help="input range of the integer format")
    e.add_argument("--exact-intercepts", action="store_true",
                   help="keep intercepts at the product's precision (32-bit, exact multiply-add) instead of two "
                        "guard bits below the output LSB")
    e.add_argument("--no-refit", action="store_true", help="round the values without refitting them to the rounded breakpoints")
    e.set_defaults(handler=run_export)


def run_hw(args: argparse.Namespace) -> int:
    from .._files import OutputFolder
    from ..hw import run_flow
    from ..hw._summary import function_rows, hw_rows, summary_lines

    out = check_output_dir(args.out)
    with OutputFolder(out, kind="hardware") as stage:
        report = run_flow(str(stage.path), entries=args.entries, gate_level=not args.no_gate_level,
                          only=tuple(args.only) if args.only else None)
    print(format_table(*hw_rows(report)))
    print("\nper function (latency at each unit's best clock; x: NN-LUT over I-BERT)")
    print(format_table(*function_rows(report)))
    print()
    for line in summary_lines(report):
        print(line)
    print(f"{report['power_note']}; tools: {report['tools']['yosys']}, {report['tools']['iverilog']}, "
          f"OpenSTA {report['tools']['sta']}")
    print(f"wrote {out}/report.json")
    return 0


def run_export(args: argparse.Namespace) -> int:
    from .._errors import NNLUTError
    from .._files import OutputFolder
    from ..core._io import load
    from ..fixed import choose_format, quantize_table, to_c_header, to_json, to_memh

    out = check_output_dir(args.out)
    rng = check_interval(args.input_range, "--input-range")
    table = load(args.table)
    try:
        fmt = choose_format(table, rng, icpt_guard=None if args.exact_intercepts else 2)
        ft = quantize_table(table, fmt, input_range=rng, refit=not args.no_refit)
    except NNLUTError:
        raise
    except (ValueError, ArithmeticError, IndexError) as e:  # a table or range the integer formats cannot hold
        where = f" over [{rng[0]:g}, {rng[1]:g}]" if rng else ""
        raise NNLUTError(f"cannot quantise {args.table!r} to the fixed-point datapath{where}: {e}") from None
    name = table.function or "table"
    with OutputFolder(out, kind="export") as stage:
        stage.write_text(f"{name}_fixed.json", to_json(ft))
        stage.write_text(f"{name}.h", to_c_header(ft, name))
        for fname, text in to_memh(ft).items():
            stage.write_text(f"{name}_{fname}", text)
    e = ft.meta["errors"]
    print(f"{name}: {ft.entries} entries, format {e['format']}")
    print(format_table(["max |error|", "in output LSBs", "float table max |error|", "extra over float (max LSB)",
                        "extra over float (mean LSB)"],
                       [[e["max_abs"], e["max_abs_lsb"], e["float_table_max_abs"], e["extra_over_float_max_lsb"],
                         e["extra_over_float_mean_lsb"]]]))
    print(f"wrote {out}/{name}_fixed.json, {name}.h and {name}_*.memh")
    return 0
