"""``nnlut plot``: draw a table beside its function, and the error."""

from __future__ import annotations

import argparse

from ._common import check_interval, check_output_file, finite_float


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("plot", help="plot a table file: function, table and error",
                       description="Draw the exact function, the table and the error over the domain (PNG).")
    p.add_argument("table", metavar="FILE.json", help="a table written by 'nnlut fit'")
    p.add_argument("--out", "-o", required=True, metavar="FILE.png", help="image to write")
    p.add_argument("--domain", nargs=2, type=finite_float, metavar=("LO", "HI"), help="x range (default: the fitted domain)")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from ..core._io import load
    from ..report._plots import plot_table

    out = check_output_file(args.out)
    domain = check_interval(args.domain, "--domain")
    table = load(args.table)
    plot_table(table, str(out), domain=domain)
    print(f"wrote {out}")
    return 0
