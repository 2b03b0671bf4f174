"""Coverage of nnlut's tables over tiny transformers families: how much of each model's
data-dependent non-linear work runs on tables after the default ``approximate_``.

For each family, the default config is shrunk (``nnlut.models._tiny``: hidden 64, 2 layers,
4 heads, as the family sweep does) and built with eager attention (``--attn sdpa``: SDPA). One
probe batch (2 x 12 token ids, one row padded) goes through the original model and through the
approximated one, each traced at the dispatcher (``trace_coverage``: every aten op, its
evaluations, whether it depends on the input). Per family:

- ``before``: data-dependent non-linear evaluations of the original (all exact);
- ``modules_only``: those still exact after ``approximate_`` with ``calls=False`` (modules
  replaced, calls in the model's code left exact);
- ``exact`` / ``table`` / ``static``: after ``approximate_``, evaluations that still ran exact on
  data, that ran on tables, and that depend on weights and positions only;
- ``coverage``: table / (table + exact); ``cosine``: minimum cosine of the output rows against
  the original (rows the original gives as zeros left out); ``exact_ops``: where the exact work is (``site#op``).

Usage: ``PYTHONPATH=src python benchmarks/coverage.py [--attn eager|sdpa] [--all] [--out FILE] [TYPE ...]``
(default: the families below; ``--all``: every causal-LM and masked-LM model type). Writes JSON
(default ``benchmarks/results/coverage_<attn>.json``) and prints a table and the summary:
families with no exact data-dependent non-linear op with modules only and with calls, and the
share of all families' non-linear work on tables.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FAMILIES = ("llama", "mistral", "qwen2", "qwen3", "phi3", "granite", "gemma", "gemma2", "gemma3_text", "olmo2",
            "gpt2", "gpt_neox", "bloom", "falcon", "t5", "bart", "bert", "roberta", "electra", "modernbert",
            "deberta-v2", "mamba", "jamba", "mixtral", "qwen2_moe", "qwen3_moe", "deepseek_v3")


def _output(out):  # noqa: ANN001, ANN202
    return (out.logits if getattr(out, "logits", None) is not None else out.last_hidden_state).float()


def _one(model_type: str, attn: str) -> dict:
    import torch

    import nnlut
    from nnlut.models._tiny import load_model, probe_inputs
    from nnlut.models._trace import trace_coverage

    row: dict = {"type": model_type, "attn": attn}
    t0 = time.perf_counter()
    try:
        model = load_model(model_type, attn=attn)
        x = probe_inputs(model)
        if model.config.is_encoder_decoder:
            x["decoder_input_ids"] = x["input_ids"][:, :6]
        before = trace_coverage(model, **x)
        with torch.no_grad():
            ref = _output(model(**x))
    except Exception as e:  # noqa: BLE001  (a family that cannot be built generically is reported)
        row.update(verdict="skipped", why=f"{type(e).__name__}: {str(e).splitlines()[0][:160] if str(e) else ''}")
        return row
    try:
        nnlut.approximate_(model, nnlut.ApproxConfig(calls=False))
        modules_only = trace_coverage(model, **x)
        nnlut.restore_(model)
        report = nnlut.approximate_(model, probe=x)
        after = report.coverage
        with torch.no_grad():
            y = _output(model(**x))
    except nnlut.NNLUTError as e:
        row.update(verdict="refused", why=str(e).splitlines()[0][:240])
        return row
    except Exception as e:  # noqa: BLE001
        row.update(verdict="ERROR", why=f"{type(e).__name__}: {str(e).splitlines()[0][:200]}")
        return row
    rows = ref.flatten(0, -2).norm(dim=-1) > 0  # rows the model zeroes (padding, Flaubert) have no direction
    cos = torch.nn.functional.cosine_similarity(y.flatten(0, -2)[rows], ref.flatten(0, -2)[rows], dim=-1)
    exact_ops = sorted(after.of("exact"), key=lambda r: -r["elements"])
    row.update(verdict="ok", before=before.total("exact"), modules_only=modules_only.total("exact"),
               modules_only_ops=sorted({f"{r['site'].split('.')[-1]}#{r['op']}" for r in modules_only.of("exact")}),
               exact=after.total("exact"), table=after.total("table"),
               static=after.total("static"), coverage=after.coverage, cosine=float(cos.min()),
               exact_ops=[f"{r['site']}#{r['op']} ({r['elements']})" for r in exact_ops],
               not_run=[r["name"] for r in report.not_run], seconds=round(time.perf_counter() - t0, 2))
    return row


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("types", nargs="*", help=f"model types (default: {' '.join(FAMILIES)})")
    ap.add_argument("--all", action="store_true", help="every model type with a causal-LM or masked-LM head")
    ap.add_argument("--attn", default="eager", help="attention implementation (eager, default; sdpa)")
    ap.add_argument("--out", help="JSON to write (default benchmarks/results/coverage_<attn>.json)")
    args = ap.parse_args()
    warnings.simplefilter("ignore")
    import torch
    import transformers

    transformers.logging.set_verbosity_error()
    torch.set_num_threads(1)
    rows = []
    types = args.types or FAMILIES
    if args.all:
        from transformers.models.auto import modeling_auto as ma

        types = sorted({*ma.MODEL_FOR_CAUSAL_LM_MAPPING_NAMES, *ma.MODEL_FOR_MASKED_LM_MAPPING_NAMES})
    for t in types:
        rows.append(_one(t, args.attn))
        r = rows[-1]
        print(f"{t}: {r['verdict']}" + (f" coverage {r['coverage']:.4%}" if "coverage" in r else f" ({r.get('why')})"),
              file=sys.stderr, flush=True)
    ok = [r for r in rows if r["verdict"] == "ok"]
    table, exact = sum(r["table"] for r in ok), sum(r["exact"] for r in ok)
    summary = {
        "families": len(rows), "built": len(ok),
        "no_exact_modules_only": sum(r["modules_only"] == 0 for r in ok), "no_exact_after": sum(r["exact"] == 0 for r in ok),
        "work_on_tables_modules_only": 1 - sum(r["modules_only"] for r in ok) / max(1, sum(r["before"] for r in ok)),
        "exact_share_at_most_0.1%": sum(r["exact"] <= 1e-3 * r["before"] for r in ok),
        "work_on_tables": table / (table + exact) if table + exact else 1.0,
        "mean_coverage_modules_only": sum(1 - r["modules_only"] / r["before"] if r["before"] else 1.0 for r in ok)
        / max(1, len(ok)),
        "mean_coverage": sum(r["coverage"] for r in ok) / max(1, len(ok)),
        "min_cosine": min((r["cosine"] for r in ok), default=None),
        "refused": [r["type"] for r in rows if r["verdict"] == "refused"],
        "errors": [r["type"] for r in rows if r["verdict"] == "ERROR"],
    }
    out = Path(args.out or ROOT / "benchmarks" / "results" / f"coverage_{args.attn}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"torch": torch.__version__, "transformers": transformers.__version__, "attn": args.attn,
                               "summary": summary, "rows": rows}, indent=1) + "\n")
    print("| family | verdict | original (exact) | modules only: exact | with calls: exact | table | static | coverage "
          "| min cos | exact ops (modules only) |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        if r["verdict"] != "ok":
            print(f"| {r['type']} | {r['verdict']} | | | | | | | | {r.get('why', '')} |")
            continue
        print(f"| {r['type']} | ok | {r['before']} | {r['modules_only']} | {r['exact']} | {r['table']} | {r['static']} "
              f"| {r['coverage']:.4%} | {r['cosine']:.5f} | {', '.join(r['modules_only_ops'][:4])} |")
    print(f"{summary['built']}/{summary['families']} built ({args.attn}); no exact data-dependent non-linear op: "
          f"{summary['no_exact_modules_only']} with modules only, {summary['no_exact_after']} with calls; exact work "
          f"<= 0.1% of the original's: {summary['exact_share_at_most_0.1%']}; non-linear work on tables: "
          f"{summary['work_on_tables_modules_only']:.2%} modules only, {summary['work_on_tables']:.4%} with calls "
          f"(per-family mean {summary['mean_coverage_modules_only']:.2%} and {summary['mean_coverage']:.4%}); "
          f"min cosine {summary['min_cosine']}")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
