"""Table evaluation speed: fused kernels against the native op, the reference evaluation and a
plain copy, in one run; and the forward time of a LUT-swapped MiniLM against the original.

For each size (4K .. 64M elements), entry count (8, 16, 32, 64) and dtype (float32, bfloat16)
the median of ``--repeats`` timings is taken for: the native op (torch GELU / exp / rsqrt), the
reference evaluation (searchsorted + gather), the fused evaluation, and ``x.clone()``; and on
CPU the same for 16-entry INT16 fixed-point tables. Ratios fused/native and fused/copy are
printed; everything is written as JSON.

Fresh outputs dominate the time of large element-wise ops (page faults on first touch). The
fused kernels ask for transparent huge pages on outputs of 32 MiB and more; torch's own ops get
them only with ``THP_MEM_ALLOC_ENABLE=1`` in the environment. Run once with and once without
that variable to separate the kernels' speed from the allocation's (the setting is recorded).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

import torch

import nnlut
from nnlut.cli._common import format_table
from nnlut.core._eval import evaluate_reference
from nnlut.kernels import _cpu

FUNCS = {
    "gelu": (lambda x: torch.nn.functional.gelu(x), lambda n: torch.randn(n) * 3, {}),
    "exp": (torch.exp, lambda n: -torch.rand(n) * 20, {}),
    "rsqrt": (torch.rsqrt, lambda n: torch.rand(n) * 100 + 1e-3, {"range_reduction": True}),
}


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def median_ms(fn, repeats: int, device: str = "cpu") -> float:
    fn()  # warm-up
    _sync(device)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - t0)
    return 1000 * statistics.median(times)


def _repeats_for(size: int, repeats: int) -> int:
    """Fewer timings above 4M elements, where one takes tens of milliseconds."""
    return repeats if size <= 1 << 22 else max(3, repeats // 2)


def bench_ops(sizes, entries, dtypes, repeats, device="cpu"):
    rows, records = [], []
    for name, (native, gen, kw) in FUNCS.items():
        for n_entries in entries:
            table = nnlut.fit(name, n_entries, **kw)
            for dtype in dtypes:
                for size in sizes:
                    x = gen(size).to(device=device, dtype=dtype)
                    reps = _repeats_for(size, repeats)
                    t_native = median_ms(lambda native=native, x=x: native(x), reps, device)
                    t_copy = median_ms(lambda x=x: x.clone(), reps, device)
                    t_fused = median_ms(lambda table=table, x=x: table(x), reps, device)
                    t_ref = (median_ms(lambda table=table, x=x: evaluate_reference(table, x), reps, device)
                             if size <= 1 << 24 else float("nan"))
                    rec = {"function": name, "entries": n_entries, "dtype": str(dtype).replace("torch.", ""), "size": size,
                           "device": device,
                           "native_ms": t_native, "copy_ms": t_copy, "fused_ms": t_fused, "reference_ms": t_ref}
                    records.append(rec)
                    rows.append([name, n_entries, rec["dtype"], size, t_native, t_ref, t_fused, t_copy,
                                 t_fused / t_native, t_fused / t_copy])
    return rows, records


def bench_fixed(sizes, repeats):
    """16-entry INT16 tables (the hardware unit's format) on float32 CPU tensors: the fused
    kernel against the torch reference path (int64 ops in float64) and the native op."""
    from nnlut.fixed import quantize_table

    rows, records = [], []
    for name, (native, gen, kw) in FUNCS.items():
        ft = quantize_table(nnlut.fit(name, 16, **kw))
        for size in sizes:
            if size > 1 << 24:
                continue
            x = gen(size)
            reps = _repeats_for(size, repeats)
            t_native = median_ms(lambda native=native, x=x: native(x), reps)
            t_fused = median_ms(lambda ft=ft, x=x: ft(x), reps)
            t_ref = median_ms(lambda ft=ft, x=x: ft(x.double()).float(), max(3, reps // 2)) if size <= 1 << 22 else float("nan")
            records.append({"function": name, "entries": 16, "format": "int16", "size": size, "native_ms": t_native,
                            "fused_ms": t_fused, "reference_ms": t_ref})
            rows.append([name, size, t_native, t_ref, t_fused, t_fused / t_native, t_ref / t_fused])
    return rows, records


def bench_model(batch: int, tokens: int, repeats: int, device: str = "cpu"):
    """Original (as loaded: sdpa attention) against all ops on 16-entry tables, timed in
    alternation so that both see the same machine load; the median of each is compared."""
    from nnlut.eval._models import load_encoder

    tok, model = load_encoder("minilm")
    model.to(device)
    texts = ["a movie that is long and then longer still " * 20] * batch
    inputs = tok(texts, padding="max_length", truncation=True, max_length=tokens, return_tensors="pt").to(device)

    def fwd():
        with torch.no_grad():
            model(**inputs)

    def once() -> float:
        _sync(device)
        t0 = time.perf_counter()
        fwd()
        _sync(device)
        return 1000 * (time.perf_counter() - t0)

    fwd()
    nnlut.approximate_(model)
    fwd()
    nnlut.restore_(model)
    orig, lut = [], []
    for _ in range(repeats):
        orig.append(once())
        nnlut.approximate_(model)
        lut.append(once())
        nnlut.restore_(model)
    o, l_ = statistics.median(orig), statistics.median(lut)
    return {"batch": batch, "tokens": tokens, "device": device, "original_ms": o, "lut_ms": l_, "ratio": l_ / o,
            "original_runs_ms": orig, "lut_runs_ms": lut}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "kernels.json"))
    ap.add_argument("--sizes", nargs="+", type=int, default=[1 << 12, 1 << 16, 1 << 20, 1 << 24, 1 << 26])
    ap.add_argument("--entries", nargs="+", type=int, default=[8, 16, 32, 64])
    ap.add_argument("--dtypes", nargs="+", default=["float32", "bfloat16"])
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--no-model", action="store_true")
    ap.add_argument("--device", choices=["cpu", "cuda"], default="cuda" if torch.cuda.is_available() else "cpu",
                    help="where to run (default: cuda when present; there the fused path is the Triton kernel)")
    args = ap.parse_args()
    if args.device == "cuda":
        from nnlut.kernels import _triton

        probe = torch.ones(1, device="cuda")
        state = "available" if _triton.usable(probe) else f"UNAVAILABLE: {_triton._import_error()}"
        print(f"Triton kernel: {state}; torch {torch.__version__}, {torch.cuda.get_device_name()}")
    else:
        print(f"fused kernels: {'available' if _cpu.available() else 'UNAVAILABLE: ' + str(_cpu.unavailable_reason())}; "
              f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
              f"THP_MEM_ALLOC_ENABLE={os.environ.get('THP_MEM_ALLOC_ENABLE', 'unset')}")
    rows, records = bench_ops(args.sizes, args.entries, [getattr(torch, d) for d in args.dtypes], args.repeats,
                              args.device)
    print(format_table(["function", "N", "dtype", "elements", "native ms", "reference ms", "fused ms", "copy ms",
                        "fused/native", "fused/copy"], rows))
    fixed_records = []
    if args.device == "cpu":
        frows, fixed_records = bench_fixed(args.sizes, args.repeats)
        print("\nfixed-point tables (16 entries, INT16 unit format), float32 in and out")
        print(format_table(["function", "elements", "native ms", "reference ms", "fused ms", "fused/native",
                            "reference/fused"], frows))
    result = {"machine": platform.machine(), "torch": torch.__version__, "threads": torch.get_num_threads(),
              "device": args.device, "thp_mem_alloc_enable": os.environ.get("THP_MEM_ALLOC_ENABLE"), "ops": records,
              "fixed": fixed_records}
    if not args.no_model:
        m = bench_model(32, 128, max(args.repeats, 9), args.device)
        result["model"] = m
        print(f"\nMiniLM forward, batch {m['batch']} x {m['tokens']} tokens: original {m['original_ms']:.1f} ms, "
              f"all ops on 16-entry tables {m['lut_ms']:.1f} ms, ratio {m['ratio']:.3f}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
