"""Every text model family transformers ships, tried as a user would: ``approximate_`` on a tiny
random-init model of each, with nothing chosen per family.

For each ``model_type`` with a causal-LM or masked-LM head, the default config is shrunk (hidden
64, 2 layers, 4 heads, small experts; every size attribute the config has) and built with
eager attention (``--attn sdpa``: SDPA). One batch of token ids (one row padded) then goes through:

- ``exact``: ``approximate_(method="exact")``, max |output - original| / max |original|;
- ``nnlut16``: the default ``approximate_`` (16-entry NN-LUT on every op), min cosine against
  the original, the replaced counts and how many non-linear sites stay exact.

Each family gets one verdict:

- ``ok``: exact reproduces the original (relative difference <= 1e-5) and NN-LUT-16 runs;
- ``refused``: ``approximate_`` raised ``NNLUTError``: one line naming what it cannot own;
- ``MISMATCH``: ``method="exact"`` changes the output: a silent wrong answer, a defect;
- ``ERROR``: anything else raised by nnlut or by the model after the swap: a defect;
- ``skipped``: the family cannot be built generically (its config or model needs more than the
  shrunk defaults, or another package); says why.

Usage: ``PYTHONPATH=src python benchmarks/family_sweep.py [--out FILE] [--chunk N] [TYPE ...]``.
Families run in chunks, each chunk in a fresh process (a crash or hang costs one chunk, which is
then retried one family per process). Writes JSON (default
``benchmarks/results/family_sweep.json``) and prints a summary and the non-ok rows.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TOL = 1e-5
def _families() -> list[tuple[str, str]]:
    from transformers.models.auto.modeling_auto import (
        MODEL_FOR_CAUSAL_LM_MAPPING_NAMES,
        MODEL_FOR_MASKED_LM_MAPPING_NAMES,
    )

    out = {t: "AutoModelForCausalLM" for t in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES}
    for t in MODEL_FOR_MASKED_LM_MAPPING_NAMES:
        out.setdefault(t, "AutoModelForMaskedLM")
    return sorted(out.items())


def _one(model_type: str, auto: str, attn: str = "eager") -> dict:
    import torch
    import transformers

    import nnlut

    warnings.simplefilter("ignore")
    row: dict = {"type": model_type, "head": auto, "attn": attn}
    t0 = time.perf_counter()
    try:
        from nnlut.models._tiny import MAX_PARAMS, tiny_config

        cfg = tiny_config(model_type)
        with torch.device("meta"):
            n = sum(p.numel() for p in getattr(transformers, auto).from_config(cfg).parameters())
        if n > MAX_PARAMS:
            raise RuntimeError(f"{n / 1e6:.0f} M parameters after shrinking (some size has another name)")
        torch.manual_seed(0)
        model = getattr(transformers, auto).from_config(cfg, attn_implementation=attn).eval()
        vocab = int(getattr(cfg, "vocab_size", 0) or 0)
        if vocab < 16:
            raise RuntimeError(f"vocabulary size {vocab}")
        ids = torch.randint(3, min(vocab, 1000) - 1, (2, 12), generator=torch.Generator().manual_seed(1))
        mask = torch.ones_like(ids)
        mask[1, 8:] = 0
        x = {"input_ids": ids, "attention_mask": mask}
        with torch.no_grad():
            ref = model(**x).logits.float()
        if not torch.isfinite(ref).all():
            raise RuntimeError("the original model's output is not finite")
    except Exception as e:  # noqa: BLE001  (a family that cannot be built generically is reported)
        row.update(verdict="skipped", why=f"{type(e).__name__}: {str(e).splitlines()[0][:160] if str(e) else ''}")
        return row
    row["params"] = sum(p.numel() for p in model.parameters())
    stage = "exact"
    try:
        nnlut.approximate_(model, nnlut.ApproxConfig(method="exact"))
        with torch.no_grad():
            got = model(**x).logits.float()
        row["exact"] = float((got - ref).abs().max() / ref.abs().max())
        nnlut.restore_(model)
        stage = "nnlut16"
        report = nnlut.approximate_(model)
        with torch.no_grad():
            y = model(**x).logits.float()
        row["nnlut16"] = float(torch.nn.functional.cosine_similarity(y[0], ref[0], dim=-1).min())
        row["replaced"] = report.counts()
        row["left_exact"] = sorted({r.get("op", r.get("why", "?")) for r in report.left_exact})
        nnlut.restore_(model)
        with torch.no_grad():
            back = model(**x).logits.float()
        row["restored"] = bool(torch.equal(back, ref))
    except nnlut.NNLUTError as e:
        row.update(verdict="refused", stage=stage, why=str(e).splitlines()[0][:240])
        return row
    except Exception as e:  # noqa: BLE001
        row.update(verdict="ERROR", stage=stage, why=f"{type(e).__name__}: {str(e).splitlines()[0][:200]}")
        return row
    bad = row["exact"] > TOL or not row["restored"]
    row["verdict"] = "MISMATCH" if bad else "ok"
    row["seconds"] = round(time.perf_counter() - t0, 2)
    return row


def _chunk_main(items: list[list[str]], attn: str) -> None:
    for t, auto in items:
        print(json.dumps(_one(t, auto, attn)), flush=True)


def _run_chunk(items: list[tuple[str, str]], timeout: float, attn: str) -> list[dict]:
    cmd = [sys.executable, __file__, "--attn", attn, "--_chunk", json.dumps(items)]
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=ROOT)
        out = p.stdout
    except subprocess.TimeoutExpired as e:
        out = e.stdout.decode() if isinstance(e.stdout, bytes) else (e.stdout or "")
        p = None
    rows = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    done = {r["type"] for r in rows}
    rest = [it for it in items if it[0] not in done]
    if rest and len(items) == 1:
        why = "timed out" if p is None else f"process died (rc {p.returncode}): {p.stderr.strip().splitlines()[-1:]}"
        return rows + [{"type": items[0][0], "head": items[0][1], "verdict": "ERROR", "why": why}]
    for it in rest:
        rows += _run_chunk([it], timeout, attn)
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("types", nargs="*", help="model types (default: every causal-LM and masked-LM family)")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "family_sweep.json"))
    ap.add_argument("--chunk", type=int, default=20, help="families per process (default 20)")
    ap.add_argument("--timeout", type=float, default=600.0, help="seconds per chunk (default 600)")
    ap.add_argument("--attn", default="eager", help="attention implementation the models are built with "
                                                   "(eager, default; sdpa)")
    ap.add_argument("--_chunk", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args._chunk:
        _chunk_main(json.loads(args._chunk), args.attn)
        return 0
    fams = _families()
    if args.types:
        known = dict(fams)
        unknown = [t for t in args.types if t not in known]
        if unknown:
            ap.error(f"unknown model types {unknown}; see transformers' causal/masked LM mappings")
        fams = [(t, known[t]) for t in args.types]
    t0 = time.perf_counter()
    rows: list[dict] = []
    for i in range(0, len(fams), args.chunk):
        rows += _run_chunk(fams[i:i + args.chunk], args.timeout, args.attn)
        print(f"{len(rows)}/{len(fams)} families ({time.perf_counter() - t0:.0f} s)", file=sys.stderr, flush=True)
    import torch
    import transformers

    summary: dict[str, int] = {}
    for r in rows:
        summary[r["verdict"]] = summary.get(r["verdict"], 0) + 1
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"torch": torch.__version__, "transformers": transformers.__version__, "attn": args.attn,
                               "tolerance": TOL, "summary": summary, "rows": rows}, indent=1) + "\n")
    print(f"{len(rows)} families, {args.attn} attention, transformers {transformers.__version__}: "
          + ", ".join(f"{k} {v}" for k, v in sorted(summary.items())))
    print("| family | verdict | exact | nnlut16 | why / left exact |")
    print("|---|---|---|---|---|")
    for r in rows:
        if r["verdict"] == "skipped":
            continue
        ex = f"{r['exact']:.1e}" if "exact" in r else "-"
        cs = f"{r['nnlut16']:.5f}" if "nnlut16" in r else "-"
        print(f"| {r['type']} | {r['verdict']} | {ex} | {cs} | {r.get('why', ', '.join(r.get('left_exact', [])))} |")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT / "src"))
    raise SystemExit(main())
