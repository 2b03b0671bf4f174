"""Quantisation-aware tables in two number formats, against published and rounded baselines.

1. GQA-LUT's INT8 format (``int8:P``: input scale 2**-P, 8-bit slopes and intercepts with 6
   fractional bits, unrounded output): nnlut's tables for GELU on [-4, 4] and exp on [-8, 0],
   8 and 16 entries, P = 2..6, max and mean |error| over every INT8 code in the range, beside
   GQA-LUT's shipped tables (Dong et al., DAC 2024). Their max errors are the figures quoted
   in nnlut's issue tracker; their means were measured the same way on their shipped
   ``pretrained/*_pwl_{7,15}.json`` tables. Both are quoted here, not recomputed.
2. INT16 (``int16``): the four paper functions' 16-entry tables, rounded after a float fit
   (``quantize_table``) against fitted with the format in the loop (``fit_quantized``): the
   max error over every input code in the table domain, in output LSBs, and how much it adds
   over the float table's own max error on the same codes.

Writes ``benchmarks/results/formats.json`` (or ``--out``) and prints both tables.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

# GQA-LUT's shipped tables, measured on every INT8 code in the range: (max |error|, mean |error|) per P = 2..6
GQA = {
    ("gelu", 16): ([0.0132, 0.0132, 0.0141, 0.0141, 0.0102], [0.003329, 0.003277, 0.003168, 0.003068, 0.00275]),
    ("gelu", 8): ([0.0332, 0.0233, 0.0242, 0.0242, 0.0242], [0.006467, 0.005988, 0.005936, 0.005889, 0.00837]),
    ("exp", 16): ([0.0156, 0.0120, 0.0126, 0.0099, 0.0076], [0.003528, 0.003478, 0.003559, 0.003413, 0.003053]),
    ("exp", 8): ([0.0132, 0.0138, 0.0108, 0.0117, 0.0093], [0.003761, 0.003753, 0.003546, 0.004571, 0.004016]),
}
GQA_RANGE = {"gelu": (-4.0, 4.0), "exp": (-8.0, 0.0)}
PS = (2, 3, 4, 5, 6)


def int8_rows() -> list[dict]:
    import nnlut

    rows = []
    for (func, n), (gmax, gmean) in GQA.items():
        for k, p in enumerate(PS):
            t0 = time.perf_counter()
            ft = nnlut.fit(func, n, format=f"int8:{p}", domain=GQA_RANGE[func])
            e = ft.meta["errors"]
            rows.append({"function": func, "entries": n, "P": p, "max_abs": e["max_abs"], "mean_abs": e["mean_abs"],
                         "gqa_max_abs": gmax[k], "gqa_mean_abs": gmean[k], "codes": e["input_codes"],
                         "seconds": time.perf_counter() - t0})
    return rows


def int16_rows() -> list[dict]:
    from nnlut.fixed import choose_format, quantize_table
    from nnlut.fixed._fitq import fit_quantized
    from nnlut.models import fitted_table

    rows = []
    for func in ("gelu", "exp", "reciprocal", "rsqrt"):
        table = fitted_table(func, "nnlut", 16, "full")
        fmt = choose_format(table)
        lsb = 2.0**-fmt.out_frac
        t0 = time.perf_counter()
        qat = fit_quantized(table, fmt)
        seconds = time.perf_counter() - t0
        for how, ft in (("rounded", quantize_table(table, fmt)), ("quantization-aware", qat)):
            e = ft.meta["errors"]
            rows.append({"function": func, "how": how, "max_lsb": e["max_abs_lsb"],
                         "float_max_lsb": e["float_table_max_abs"] / lsb,
                         "added_lsb": e["max_abs_lsb"] - e["float_table_max_abs"] / lsb,
                         "pointwise_vs_float_lsb": e["extra_over_float_max_lsb"],
                         "seconds": seconds if how != "rounded" else None})
    return rows


def _table(headers: list[str], rows: list[list]) -> str:
    cells = [[h for h in headers]] + [[f"{v:.4g}" if isinstance(v, float) else str(v) for v in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "formats.json"))
    args = ap.parse_args()
    r8, r16 = int8_rows(), int16_rows()
    print("GQA-LUT's INT8 format, every INT8 code in the range (|error|)")
    print(_table(["function", "N", "P", "nnlut max", "GQA-LUT max", "nnlut mean", "GQA-LUT mean", "fit s"],
                 [[r["function"], r["entries"], r["P"], r["max_abs"], r["gqa_max_abs"], r["mean_abs"], r["gqa_mean_abs"],
                   r["seconds"]] for r in r8]))
    beats = all(r["max_abs"] <= r["gqa_max_abs"] and r["mean_abs"] <= r["gqa_mean_abs"] for r in r8)
    print(f"nnlut at or below GQA-LUT in max and mean everywhere: {beats}\n")
    print("INT16, 16 entries, every input code in the table domain (output LSBs)")
    print(_table(["function", "table", "max", "float table max", "added", "pointwise vs float", "fit s"],
                 [[r["function"], r["how"], r["max_lsb"], r["float_max_lsb"], r["added_lsb"], r["pointwise_vs_float_lsb"],
                   r["seconds"] if r["seconds"] is not None else "-"] for r in r16]))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"int8_gqa_format": r8, "int16": r16, "int8_beats_gqa": beats}, indent=1) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
