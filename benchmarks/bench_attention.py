"""Attention at long context: the fused LUT attention op against SDPA and the unfused LUT
attention, and a tiny LLaMA's forward with every op on tables against the original (SDPA).

Each measurement runs in a fresh process (so that its peak memory is its own: the growth of
the resident set over the process's state before the call, from ``ru_maxrss``), and the
implementations of one configuration run one after the other, ``--repeats`` rounds
alternated, so all see the same machine load; the median of each is compared.

    op:    (batch 1, heads, tokens, head dim) q, k, v; SDPA (torch), fused LUT
           (``nnlut.kernels.flash_attention``) and unfused LUT (scores, the fused LUT softmax
           kernel, probabilities @ values) for tokens 512 .. 16384, head dims 64 and 128,
           causal and not, float32 and bfloat16 (the unfused path is skipped where its scores
           would exceed ``--unfused-max-gb``)
    model: LLaMA, hidden 256, 8 heads, 2 layers, batch 1, at ``--model-tokens``: the original
           (SDPA) against ``nnlut.approximate_`` with the default tables

Writes JSON (``--out``) and, with matplotlib, a plot beside it. ``--quick``: a small grid.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

IMPLS = ("sdpa", "fused", "unfused")


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _tables():
    from nnlut.models import fitted_table

    return fitted_table("exp", "nnlut", 16, "none"), fitted_table("reciprocal", "nnlut", 16, "full")


def _op_fn(impl: str, q, k, v, causal: bool):
    from nnlut.kernels import _flash
    from nnlut.ops import lut_attention_softmax

    exp, rec = _tables()
    scale = q.shape[-1] ** -0.5
    if impl == "sdpa":
        return lambda: torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=causal)
    if impl == "fused":
        lo, hi = _flash.band(causal, None, k.shape[2], q.shape[2])
        return lambda: _flash.flash_attention(q, k, v, exp, rec, lo=lo, hi=hi)
    mask = None
    if causal:
        n = q.shape[2]
        mask = torch.zeros(n, n, dtype=torch.float32).masked_fill_(
            torch.ones(n, n, dtype=torch.bool).triu_(1), torch.finfo(torch.float32).min)[None, None]

    def unfused():
        s = torch.matmul(q.float(), k.float().transpose(2, 3))
        p = lut_attention_softmax(s, scale, mask, exp, rec, inplace=True)
        return torch.matmul(p, v.float()).transpose(1, 2).contiguous().to(q.dtype)

    return unfused


def worker_op(impl: str, tokens: int, heads: int, dim: int, causal: bool, dtype: str, reps: int) -> dict:
    torch.manual_seed(0)
    q, k, v = (torch.randn(1, heads, tokens, dim).to(getattr(torch, dtype)) for _ in range(3))
    fn = _op_fn(impl, q, k, v, causal)
    base = _rss_mb()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return {"ms": 1000 * statistics.median(times), "peak_mb": _peak_mb() - base}


def _llama(tokens: int):
    import transformers

    torch.manual_seed(0)
    cfg = transformers.LlamaConfig(vocab_size=256, hidden_size=256, intermediate_size=688, num_hidden_layers=2,
                                   num_attention_heads=8, num_key_value_heads=8, max_position_embeddings=2 * tokens,
                                   attn_implementation="sdpa")
    return transformers.LlamaForCausalLM(cfg).eval()


def worker_model(impl: str, tokens: int, reps: int) -> dict:
    import nnlut

    model = _llama(tokens)
    ids = torch.randint(0, 256, (1, tokens), generator=torch.Generator().manual_seed(1))
    if impl == "lut":
        nnlut.approximate_(model)
    with torch.no_grad():
        model(ids[:, :64])  # warm-up (kernel build, thread pool)
        base = _rss_mb()
        times = []
        for _ in range(reps):
            t0 = time.perf_counter()
            model(ids)
            times.append(time.perf_counter() - t0)
    return {"ms": 1000 * statistics.median(times), "peak_mb": _peak_mb() - base,
            "attn": model.config._attn_implementation}


def _spawn(args: list[str]) -> dict:
    res = subprocess.run([sys.executable, __file__, "--worker", *args], capture_output=True, text=True)
    if res.returncode != 0:
        return {"error": res.stderr.strip().splitlines()[-1] if res.stderr.strip() else f"exit {res.returncode}"}
    return json.loads(res.stdout.strip().splitlines()[-1])


def _median(runs: list[dict], key: str) -> float:
    vals = [r[key] for r in runs if key in r]
    return statistics.median(vals) if vals else float("nan")


def bench_ops(tokens, dims, causals, dtypes, heads, repeats, reps, unfused_max_gb):
    records = []
    for dtype in dtypes:
        for dim in dims:
            for causal in causals:
                for n in tokens:
                    impls = [i for i in IMPLS if i != "unfused" or heads * n * n * 4 / 2**30 <= unfused_max_gb]
                    runs = {i: [] for i in impls}
                    for _ in range(repeats):
                        for i in impls:
                            runs[i].append(_spawn(["op", i, str(n), str(heads), str(dim), str(int(causal)), dtype,
                                                   str(reps)]))
                    rec = {"tokens": n, "heads": heads, "dim": dim, "causal": causal, "dtype": dtype}
                    for i in impls:
                        rec[f"{i}_ms"], rec[f"{i}_peak_mb"] = _median(runs[i], "ms"), _median(runs[i], "peak_mb")
                        errors = [r["error"] for r in runs[i] if "error" in r]
                        if errors:
                            rec[f"{i}_error"] = errors[0]
                    rec["fused_vs_sdpa"] = rec["fused_ms"] / rec["sdpa_ms"]
                    if "unfused_ms" in rec:
                        rec["fused_vs_unfused"] = rec["fused_ms"] / rec["unfused_ms"]
                    records.append(rec)
                    print(f"{dtype:8s} d={dim:3d} {'causal' if causal else 'full  '} {n:6d} tokens: "
                          f"SDPA {rec['sdpa_ms']:8.1f} ms {rec['sdpa_peak_mb']:7.1f} MB | fused {rec['fused_ms']:8.1f} ms "
                          f"{rec['fused_peak_mb']:7.1f} MB | unfused "
                          + (f"{rec['unfused_ms']:8.1f} ms {rec['unfused_peak_mb']:7.1f} MB" if "unfused_ms" in rec
                             else "skipped") + f" | fused/SDPA {rec['fused_vs_sdpa']:.2f}", flush=True)
    return records


def bench_model(tokens, repeats, reps):
    records = []
    for n in tokens:
        runs = {"sdpa": [], "lut": []}
        for _ in range(repeats):
            for i in runs:
                runs[i].append(_spawn(["model", i, str(n), str(reps)]))
        rec = {"tokens": n, "original_ms": _median(runs["sdpa"], "ms"), "lut_ms": _median(runs["lut"], "ms"),
               "original_peak_mb": _median(runs["sdpa"], "peak_mb"), "lut_peak_mb": _median(runs["lut"], "peak_mb"),
               "runs": runs}
        rec["time_ratio"] = rec["lut_ms"] / rec["original_ms"]
        rec["memory_ratio"] = rec["lut_peak_mb"] / rec["original_peak_mb"]
        records.append(rec)
        print(f"tiny LLaMA forward, {n} tokens: original (SDPA) {rec['original_ms']:.0f} ms, "
              f"{rec['original_peak_mb']:.0f} MB peak; all ops on tables {rec['lut_ms']:.0f} ms, "
              f"{rec['lut_peak_mb']:.0f} MB; time {rec['time_ratio']:.2f}x, memory {rec['memory_ratio']:.2f}x", flush=True)
    return records


def plot(records, path: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    groups = sorted({(r["dtype"], r["dim"], r["causal"]) for r in records})
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for g in groups:
        rs = [r for r in records if (r["dtype"], r["dim"], r["causal"]) == g]
        label = f"{g[0]} d={g[1]} {'causal' if g[2] else 'full'}"
        axes[0].plot([r["tokens"] for r in rs], [r["fused_vs_sdpa"] for r in rs], marker="o", label=label)
        axes[1].plot([r["tokens"] for r in rs], [r["fused_peak_mb"] / max(r["sdpa_peak_mb"], 1e-3) for r in rs],
                     marker="o", label=label)
    for ax, title in zip(axes, ("time, fused LUT / SDPA", "peak memory, fused LUT / SDPA"), strict=True):
        ax.set_xscale("log", base=2)
        ax.axhline(1.0, color="grey", lw=0.8)
        ax.set_xlabel("tokens")
        ax.set_title(title)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        kind, rest = sys.argv[2], sys.argv[3:]
        if kind == "op":
            impl, n, h, d, c, dt, reps = rest
            out = worker_op(impl, int(n), int(h), int(d), c == "1", dt, int(reps))
        else:
            impl, n, reps = rest
            out = worker_model(impl, int(n), int(reps))
        print(json.dumps(out))
        return
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "attention.json"))
    ap.add_argument("--tokens", nargs="+", type=int, default=[512, 1024, 2048, 4096, 8192, 16384])
    ap.add_argument("--dims", nargs="+", type=int, default=[64, 128])
    ap.add_argument("--heads", type=int, default=8)
    ap.add_argument("--dtypes", nargs="+", default=["float32", "bfloat16"])
    ap.add_argument("--causal", nargs="+", choices=["yes", "no"], default=["yes", "no"])
    ap.add_argument("--model-tokens", nargs="+", type=int, default=[4096, 16384])
    ap.add_argument("--repeats", type=int, default=3, help="rounds of fresh processes, alternated")
    ap.add_argument("--reps", type=int, default=2, help="timed calls in each process")
    ap.add_argument("--unfused-max-gb", type=float, default=2.0)
    ap.add_argument("--no-ops", action="store_true")
    ap.add_argument("--no-model", action="store_true")
    ap.add_argument("--quick", action="store_true", help="tokens 512 and 2048, head dim 64, causal, 1 round")
    args = ap.parse_args()
    if args.quick:
        args.tokens, args.dims, args.causal, args.repeats, args.reps = [512, 2048], [64], ["yes"], 1, 1
        args.model_tokens = [1024]
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, load {os.getloadavg()[0]:.1f}")
    result = {"machine": platform.machine(), "torch": torch.__version__, "threads": torch.get_num_threads(),
              "load_start": os.getloadavg()}
    if not args.no_ops:
        result["ops"] = bench_ops(args.tokens, args.dims, [c == "yes" for c in args.causal], args.dtypes, args.heads,
                                  args.repeats, args.reps, args.unfused_max_gb)
    if not args.no_model:
        result["model"] = bench_model(args.model_tokens, args.repeats, args.reps)
    result["load_end"] = os.getloadavg()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    if result.get("ops"):
        plot(result["ops"], out.with_suffix(".png"))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
