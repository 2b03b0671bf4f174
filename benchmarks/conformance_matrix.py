"""Family x execution mode matrix of approximate_ on tiny random-init transformers models.

Each family runs in its own process (a fresh torch.compile / torch.export state), on the
configs of ``tests/models/conformance/families.py``. Columns:

- exact: max |exact-method output - original| / max |original| (0 = bit-identical);
- nnlut16: min over examples of the cosine between the NN-LUT-16 (all ops) and original outputs;
- generate: greedy tokens (6 new, KV cache) identical to the original's under ``exact``, and
  cached equal to uncached under NN-LUT-16;
- compile: max |torch.compile (inductor) - eager| of the NN-LUT-16 model;
- export: max |torch.export program - eager| of the NN-LUT-16 model (or the error);
- bf16: cosine of the bfloat16 model with tables against the bfloat16 original;
- save/load: torch.save then torch.load of the approximated model gives identical outputs.

Usage: ``PYTHONPATH=src:. python benchmarks/conformance_matrix.py [--out FILE] [FAMILY ...]``.
Writes JSON (default ``benchmarks/results/conformance.json``) and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _one(name: str) -> dict:
    import torch
    from tests.models.conformance.families import FAMILIES, output

    import nnlut

    warnings.simplefilter("ignore")
    fam = FAMILIES[name]
    why = fam.available()
    if why:
        return {"family": name, "skipped": why}
    row: dict = {"family": name}
    t0 = time.perf_counter()

    def cos(a, b):
        return float(torch.nn.functional.cosine_similarity(a.float().flatten(1), b.float().flatten(1), dim=1).min())

    model, x = fam.build("eager"), fam.inputs()
    ref = output(model, x)
    nnlut.approximate_(model, nnlut.ApproxConfig(method="exact"))
    row["exact"] = float((output(model, x) - ref).abs().max() / ref.abs().max())
    nnlut.restore_(model)
    report = nnlut.approximate_(model)
    y = output(model, x)
    row["nnlut16"] = cos(y, ref)
    row["replaced"] = report.counts()
    row["left_exact"] = len(report.left_exact)
    if fam.kind in ("causal", "seq2seq", "audio"):
        gx = {k: v for k, v in x.items() if k != "decoder_input_ids"}
        gen = dict(max_new_tokens=6, min_new_tokens=6, do_sample=False, pad_token_id=0)
        with torch.no_grad():
            cached = model.generate(**gx, **gen)
            uncached = model.generate(**gx, **gen, use_cache=False)
            nnlut.restore_(model)
            want = model.generate(**gx, **gen)
            nnlut.approximate_(model, nnlut.ApproxConfig(method="exact"))
            got = model.generate(**gx, **gen)
            nnlut.restore_(model)
            nnlut.approximate_(model)
        row["generate"] = bool(torch.equal(got, want) and torch.equal(cached, uncached))
    buf = io.BytesIO()
    torch.save(model, buf)
    buf.seek(0)
    row["save_load"] = bool(torch.equal(output(torch.load(buf, weights_only=False), x), y))
    try:
        ex = {**x, "use_cache": False} if fam.kind != "encoder" else x
        program = torch.export.export(model, (), ex, strict=False)
        with torch.no_grad():
            out = program.module()(**ex)
        out = next(getattr(out, k) for k in ("logits", "last_hidden_state", "logits_per_image") if hasattr(out, k))
        row["export"] = float((out - output(model, ex)).abs().max())
    except Exception as e:  # recorded in the matrix
        row["export"] = f"{type(e).__name__}: {str(e).splitlines()[0][:120]}"
    try:
        compiled = torch.compile(model, backend="inductor")
        row["compile"] = float((output(compiled, x) - y).abs().max())
    except Exception as e:
        row["compile"] = f"{type(e).__name__}: {str(e).splitlines()[0][:120]}"
    half, hx = fam.build("eager", torch.bfloat16), fam.inputs(torch.bfloat16)
    href = output(half, hx)
    nnlut.approximate_(half)
    row["bf16"] = cos(output(half, hx), href)
    row["seconds"] = round(time.perf_counter() - t0, 1)
    return row


def _fmt(v) -> str:
    if v is None:
        return "n/a"
    if isinstance(v, bool):
        return "yes" if v else "**no**"
    if isinstance(v, float):
        return "0" if v == 0 else f"{v:.6f}" if 0.5 < v <= 1 else f"{v:.1e}"
    return f"fails ({v.split(':')[0]})"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("families", nargs="*")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "conformance.json"))
    ap.add_argument("--one", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        print(json.dumps(_one(args.one)))
        return
    sys.path.insert(0, str(ROOT))
    from tests.models.conformance.families import FAMILIES

    names = args.families or list(FAMILIES)
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'src'}:{ROOT}"}
    rows = []
    for n in names:
        run = subprocess.run([sys.executable, __file__, "--one", n], capture_output=True, text=True, env=env)
        try:
            rows.append(json.loads(run.stdout.strip().splitlines()[-1]))
        except (IndexError, ValueError):
            rows.append({"family": n, "error": run.stderr.strip().splitlines()[-1][:200] if run.stderr else "?"})
        print(f"{n}: {rows[-1]}", file=sys.stderr)
    import torch
    import transformers

    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"torch": torch.__version__, "transformers": transformers.__version__,
                                          "rows": rows}, indent=1) + "\n")
    cols = ["exact", "nnlut16", "generate", "compile", "export", "bf16", "save_load"]
    print("| family | " + " | ".join(cols) + " |")
    print("|---|" + "---|" * len(cols))
    for r in rows:
        if "skipped" in r or "error" in r:
            print(f"| {r['family']} | " + (r.get("skipped") or r.get("error")) + " |" * len(cols))
            continue
        print(f"| {r['family']} | " + " | ".join(_fmt(r.get(c)) for c in cols) + " |")


if __name__ == "__main__":
    main()
