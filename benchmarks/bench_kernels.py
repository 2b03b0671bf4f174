"""Table evaluation speed: fused kernels against the native op, the reference evaluation and a
plain copy, in one run; the fused row ops against torch's; the per-call time at small sizes; and
the forward time of a LUT-swapped MiniLM against the original.

For every built-in function, every scaling its default tables have (none; paper and full range
reduction for 1/x and 1/sqrt x), each entry count (``--entries``, default 16), dtype (float32,
bfloat16) and size (4K .. 16M elements), the native op, the reference evaluation (searchsorted +
gather, up to 1M), the fused evaluation and ``x.clone()`` are timed in ``--repeats`` alternated
rounds (medians); on CPU the same for 16-entry INT16 and INT8 fixed-point tables and FP16/BF16
half tables, the fused softmax, LayerNorm and RMSNorm against torch's (rows of 1024), and the
eager per-call time on 64 and 4096 values through the public paths (``nnlut.ops.lut_activation``,
a swapped ``nn.GELU`` alone and inside its model, the row ops on rows of 64) against torch's ops
and a copy. Ratios fused/native and fused/copy are printed; everything is written as JSON.
``--quick``: 16M values only, no reference or model, half tables in FP16 on 256K values (under
2 minutes).

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

F = torch.nn.functional
FUNCS = {
    "gelu": (F.gelu, lambda n: torch.randn(n) * 3),
    "gelu_tanh": (lambda x: F.gelu(x, approximate="tanh"), lambda n: torch.randn(n) * 3),
    "silu": (F.silu, lambda n: torch.randn(n) * 4),
    "sigmoid": (torch.sigmoid, lambda n: torch.randn(n) * 4),
    "tanh": (torch.tanh, lambda n: torch.randn(n) * 2),
    "exp": (torch.exp, lambda n: -torch.rand(n) * 20),
    "reciprocal": (torch.reciprocal, lambda n: torch.rand(n) * 100 + 1e-3),
    "rsqrt": (torch.rsqrt, lambda n: torch.rand(n) * 100 + 1e-3),
}


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def interleaved_ms(fns: dict, repeats: int, device: str = "cpu") -> dict:
    """Median ms of each function, timed in ``repeats`` rounds that run every function once (so
    all see the same machine load)."""
    for fn in fns.values():
        fn()  # warm-up
    times = {k: [] for k in fns}
    for _ in range(repeats):
        for k, fn in fns.items():
            _sync(device)
            t0 = time.perf_counter()
            fn()
            _sync(device)
            times[k].append(time.perf_counter() - t0)
    return {k: 1000 * statistics.median(v) for k, v in times.items()}


def median_ms(fn, repeats: int, device: str = "cpu") -> float:
    return interleaved_ms({"f": fn}, repeats, device)["f"]


def _tables(name: str, entries: int):
    """(scaling, table) for every scaling the function's default tables have: none, or paper
    and full range reduction where it is range-reduced (1/x, 1/sqrt x: their default table
    without a scaling is the paper one)."""
    from nnlut.core._functions import get_function
    from nnlut.models import fitted_table

    scalings = ["paper", "full"] if get_function(name).scaling is not None else ["none"]
    return [(sc, fitted_table(name, "nnlut", entries, sc)) for sc in scalings]


_INPUTS: dict = {}


def _input(name: str, gen, size: int) -> torch.Tensor:
    """The function's benchmark input of ``size`` values (made once, reused by every table)."""
    if (name, size) not in _INPUTS:
        _INPUTS[(name, size)] = gen(size)
    return _INPUTS[(name, size)]


def bench_ops(sizes, entries, dtypes, repeats, device="cpu", reference=True):
    rows, records = [], []
    for name, (native, gen) in FUNCS.items():
        for n_entries in entries:
            for scaling, table in _tables(name, n_entries):
                for dtype in dtypes:
                    for size in sizes:
                        x = _input(name, gen, size).to(device=device, dtype=dtype)
                        fns = {"native": lambda native=native, x=x: native(x), "copy": lambda x=x: x.clone(),
                               "fused": lambda table=table, x=x: table(x)}
                        if reference and size <= 1 << 20:
                            fns["reference"] = lambda table=table, x=x: evaluate_reference(table, x)
                        t = interleaved_ms(fns, repeats, device)
                        rec = {"function": name, "entries": n_entries, "scaling": scaling,
                               "dtype": str(dtype).replace("torch.", ""), "size": size, "device": device,
                               "native_ms": t["native"], "copy_ms": t["copy"], "fused_ms": t["fused"],
                               "reference_ms": t.get("reference", float("nan"))}
                        records.append(rec)
                        rows.append([name, n_entries, scaling, rec["dtype"], size, t["native"], rec["reference_ms"],
                                     t["fused"], t["copy"], t["fused"] / t["native"], t["fused"] / t["copy"]])
    return rows, records


def bench_fixed(sizes, repeats):
    """Fixed-point tables on float32 CPU tensors: 16-entry INT16 (the hardware unit's format)
    and INT8 (8-bit inputs and slopes) datapaths, every scaling, against the native op and a copy."""
    from nnlut.fixed import choose_format, quantize_table

    formats = {"int16": {}, "int8": {"in_bits": 8, "slope_bits": 8}}
    rows, records = [], []
    for name, (native, gen) in FUNCS.items():
        for scaling, table in _tables(name, 16):
            for fmt_name, kw in formats.items():
                try:
                    ft = quantize_table(table, choose_format(table, **kw))
                except Exception as e:  # a format the function's range does not fit: say so
                    print(f"  {name} {scaling} {fmt_name}: {e}")
                    continue
                for size in sizes:
                    x = _input(name, gen, size)
                    t = interleaved_ms({"native": lambda native=native, x=x: native(x), "copy": lambda x=x: x.clone(),
                                        "fused": lambda ft=ft, x=x: ft(x)}, repeats)
                    records.append({"function": name, "entries": 16, "scaling": scaling, "format": fmt_name, "size": size,
                                    "native_ms": t["native"], "copy_ms": t["copy"], "fused_ms": t["fused"]})
                    rows.append([name, scaling, fmt_name, size, t["native"], t["fused"], t["copy"],
                                 t["fused"] / t["native"], t["fused"] / t["copy"]])
    return rows, records


def bench_half(sizes, repeats, precisions=("fp16", "bf16")):
    """Half-precision tables (FP16 and BF16 datapaths, 16 entries) on float32 CPU tensors,
    every scaling, against the native op and a copy."""
    from nnlut.fixed import to_half

    rows, records = [], []
    for name, (native, gen) in FUNCS.items():
        for scaling, table in _tables(name, 16):
            for precision in precisions:
                try:
                    ht = to_half(table, precision)
                except Exception as e:  # a precision the table does not fit: say so
                    print(f"  {name} {scaling} {precision}: {e}")
                    continue
                for size in sizes:
                    x = _input(name, gen, size)
                    t = interleaved_ms({"native": lambda native=native, x=x: native(x), "copy": lambda x=x: x.clone(),
                                        "fused": lambda ht=ht, x=x: ht(x)}, repeats)
                    records.append({"function": name, "entries": 16, "scaling": scaling, "format": precision,
                                    "size": size, "native_ms": t["native"], "copy_ms": t["copy"], "fused_ms": t["fused"]})
                    rows.append([name, scaling, precision, size, t["native"], t["fused"], t["copy"],
                                 t["fused"] / t["native"], t["fused"] / t["copy"]])
    return rows, records


def _row_cases(x, w, b, exp, rec, rsqrt):
    from nnlut.kernels import layernorm, rmsnorm, softmax

    return {
        "softmax": (lambda: torch.softmax(x, -1), lambda: softmax(x, -1, exp, rec)),
        "layernorm": (lambda: F.layer_norm(x, (1024,), w, b, 1e-5), lambda: layernorm(x, (1024,), w, b, 1e-5, rsqrt)),
        "rmsnorm": (lambda: F.rms_norm(x, (1024,), w, 1e-5), lambda: rmsnorm(x, w, 1e-5, rsqrt)),
    }


def bench_rows(sizes, repeats):
    """The fused softmax, LayerNorm and RMSNorm (16-entry tables) against torch's, on rows of
    1024 float32 values."""
    from nnlut.models import fitted_table

    exp, rec = fitted_table("exp", "nnlut", 16, "none"), fitted_table("reciprocal", "nnlut", 16, "full")
    rsqrt = fitted_table("rsqrt", "nnlut", 16, "full")
    rows, records = [], []
    for size in sizes:
        x = torch.randn(max(1, size // 1024), 1024) * 3
        for op, (native, fused) in _row_cases(x, torch.randn(1024), torch.randn(1024), exp, rec, rsqrt).items():
            t = interleaved_ms({"torch": native, "fused": fused}, repeats)
            records.append({"op": op, "size": x.numel(), "torch_ms": t["torch"], "fused_ms": t["fused"]})
            rows.append([op, x.numel(), t["torch"], t["fused"], t["fused"] / t["torch"]])
    return rows, records


def bench_overhead(repeats: int, calls: int = 2000, sizes=(64, 4096)):
    """Per-call time (us, eager) at small sizes through the paths a model takes: a 16-entry
    GELU table by ``nnlut.ops.lut_activation``, by a swapped ``nn.GELU`` module and by calling
    the table; its INT16 form; the fused softmax, LayerNorm and RMSNorm (``nnlut.ops``) on rows
    of 64; against torch's own ops and a copy. ``swapped_model`` calls the swapped model (which
    also serves the non-linear functions its code calls), ``module`` the swapped module alone.
    Best of ``repeats`` rounds of ``calls`` calls (the rounds alternate the functions)."""
    from nnlut.fixed import choose_format, quantize_table
    from nnlut.models import fitted_table
    from nnlut.ops import lut_activation, lut_layernorm, lut_rmsnorm, lut_softmax

    table = fitted_table("gelu", "nnlut", 16, "none")
    ft = quantize_table(table, choose_format(table))
    exp, rec = fitted_table("exp", "nnlut", 16, "none"), fitted_table("reciprocal", "nnlut", 16, "full")
    rsqrt = fitted_table("rsqrt", "nnlut", 16, "full")
    module = torch.nn.Sequential(torch.nn.GELU())
    nnlut.approximate_(module, verify=False)
    out = []
    for size in sizes:
        x = torch.randn(size)
        xr = x.view(-1, 64)
        w, b = torch.randn(64), torch.randn(64)
        fns = {"lut_activation": lambda x=x: lut_activation(x, table), "swapped_model": lambda x=x: module(x),
               "module": lambda x=x: module[0](x),
               "table_call": lambda x=x: table(x), "fixed_int16": lambda x=x: lut_activation(x, ft),
               "native_gelu": lambda x=x: F.gelu(x), "native_exp": lambda x=x: torch.exp(x),
               "copy": lambda x=x: x.clone(),
               "lut_softmax": lambda xr=xr: lut_softmax(xr, -1, exp, rec), "torch_softmax": lambda xr=xr: torch.softmax(xr, -1),
               "lut_layernorm": lambda xr=xr, w=w, b=b: lut_layernorm(xr, (64,), w, b, 1e-5, rsqrt),
               "torch_layernorm": lambda xr=xr, w=w, b=b: F.layer_norm(xr, (64,), w, b, 1e-5),
               "lut_rmsnorm": lambda xr=xr, w=w: lut_rmsnorm(xr, w, 1e-5, rsqrt),
               "torch_rmsnorm": lambda xr=xr, w=w: F.rms_norm(xr, (64,), w, 1e-5)}
        best = {k: float("inf") for k in fns}
        with torch.no_grad():
            for fn in fns.values():
                fn()
            for _ in range(repeats):
                for k, fn in fns.items():
                    t0 = time.perf_counter()
                    for _ in range(calls):
                        fn()
                    best[k] = min(best[k], 1e6 * (time.perf_counter() - t0) / calls)
        out.append({"size": size, **{f"{k}_us": v for k, v in best.items()}})
    return out


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
    ap.add_argument("--sizes", nargs="+", type=int, default=[1 << 12, 1 << 16, 1 << 20, 1 << 24])
    ap.add_argument("--entries", nargs="+", type=int, default=[16])
    ap.add_argument("--dtypes", nargs="+", default=["float32", "bfloat16"])
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--no-model", action="store_true")
    ap.add_argument("--quick", action="store_true",
                    help="16M elements only, no reference, no model, fewer overhead calls (under 2 minutes on CPU)")
    ap.add_argument("--device", choices=["cpu", "cuda"], default="cuda" if torch.cuda.is_available() else "cpu",
                    help="where to run (default: cuda when present; there the fused path is the Triton kernel)")
    args = ap.parse_args()
    if args.quick:
        args.sizes, args.no_model = [1 << 24], True
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
                              args.device, reference=not args.quick)
    print(format_table(["function", "N", "scaling", "dtype", "elements", "native ms", "reference ms", "fused ms", "copy ms",
                        "fused/native", "fused/copy"], rows))
    result = {"machine": platform.machine(), "torch": torch.__version__, "threads": torch.get_num_threads(),
              "device": args.device, "thp_mem_alloc_enable": os.environ.get("THP_MEM_ALLOC_ENABLE"),
              "load_start": os.getloadavg(), "ops": records}
    if args.device == "cpu":
        frows, result["fixed"] = bench_fixed(args.sizes, args.repeats)
        print("\nfixed-point tables (16 entries), float32 in and out")
        print(format_table(["function", "scaling", "format", "elements", "native ms", "fused ms", "copy ms", "fused/native",
                            "fused/copy"], frows))
        # half tables run their numpy datapath (no fused kernel): --quick times FP16 on 256K values
        hrows, result["half"] = (bench_half([1 << 18], args.repeats, ("fp16",)) if args.quick
                                 else bench_half(args.sizes, args.repeats))
        print("\nhalf-precision tables (16 entries), float32 in and out")
        print(format_table(["function", "scaling", "precision", "elements", "native ms", "fused ms", "copy ms",
                            "fused/native", "fused/copy"], hrows))
        rrows, result["rows"] = bench_rows(args.sizes, args.repeats)
        print("\nrow ops (rows of 1024 float32 values, 16-entry tables)")
        print(format_table(["op", "elements", "torch ms", "fused ms", "fused/torch"], rrows))
        result["overhead"] = bench_overhead(args.repeats, calls=200 if args.quick else 2000)
        keys = [k[:-3] for k in result["overhead"][0] if k.endswith("_us")]
        print("\nper-call time, us, eager (best of the rounds; rows of 64 for the row ops)")
        print(format_table(["path", *(f"{o['size']} values" for o in result["overhead"])],
                           [[k, *(o[f"{k}_us"] for o in result["overhead"])] for k in keys]))
    if not args.no_model:
        m = bench_model(32, 128, max(args.repeats, 9), args.device)
        result["model"] = m
        print(f"\nMiniLM forward, batch {m['batch']} x {m['tokens']} tokens: original {m['original_ms']:.1f} ms, "
              f"all ops on 16-entry tables {m['lut_ms']:.1f} ms, ratio {m['ratio']:.3f}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    result["load_end"] = os.getloadavg()
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {out} (load {result['load_start'][0]:.1f} at the start, {result['load_end'][0]:.1f} at the end)")


if __name__ == "__main__":
    main()
