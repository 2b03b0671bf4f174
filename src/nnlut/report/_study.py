"""The main job: reproduce the study and write a report with tables and plots.

Each section is a function ``(out_dir, settings) -> Section``; ``run_study`` runs the ones
asked for, writes ``results.json`` (all numbers) and ``report.md`` (tables and plots), and
returns the sections. Sections that need optional parts (models, hardware tools) report why
they were skipped instead of failing the whole run.
"""

from __future__ import annotations

import json
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import __version__
from .._errors import NNLUTError
from .._logging import logger
from ..core._io import atomic_write_text

PAPER_FUNCTIONS = ("gelu", "exp", "reciprocal", "rsqrt")


@dataclass
class Section:
    name: str
    title: str
    text: str  # printed table
    markdown: str
    data: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    skipped: str | None = None


@dataclass
class Settings:
    entries: int = 16
    seed: int = 0
    head: str = "auto"  # fine-tuned classifier when cached, else a linear probe
    eval_limit: int = 1000  # test sentences for the model section
    probe_train: int = 2000  # training sentences for the probe
    calibrate: int = 528  # unlabeled training sentences for the calibrated row (10% of the half)
    lm_sequences: int = 64  # held-out sequences of 512 bytes for the decoder LM section


def _cell(v: Any) -> str:
    """A table cell: floats to 4 significant digits, NaN as '-'."""
    if isinstance(v, float):
        return "-" if v != v else f"{v:.4g}"
    return str(v)


def _fmt(v: float) -> str:
    return "-" if v != v else f"{v:.3e}"


def section_tables(out: Path, settings: Settings) -> Section:
    """Fit the paper's four functions with every method; tables, plots, error figures."""
    import numpy as np

    from .._text import format_table
    from ..core._functions import get_function
    from ..fitting import compare
    from ..ibert._float import IBERT_FUNCTIONS
    from ._plots import plot_error_curves, plot_table

    tables_dir = out / "tables"
    tables_dir.mkdir(exist_ok=True)
    rows_txt, data, md_rows = [], {}, []
    plots = []
    data_tables: dict[str, Any] = {}
    for name in PAPER_FUNCTIONS:
        spec = get_function(name)
        rows = compare(name, settings.entries, seed=settings.seed)
        data[name] = [r.as_dict() for r in rows]
        by = {r.method: r for r in rows}
        for r in rows:
            if r.table is not None:
                r.table.save(str(tables_dir / f"{name}_{r.method}_{settings.entries}.json"))
        nn = by["nnlut"].errors
        rec = [name, f"[{nn['domain'][0]:g}, {nn['domain'][1]:g}]"]
        for m in ("nnlut", "linear", "exponential", "ibert"):
            e = by[m].errors if m in by else None
            rec += [e["max_abs"] if e else float("nan"), e["mean_abs"] if e else float("nan")]
        rows_txt.append(rec)
        md_rows.append("| " + " | ".join([rec[0], rec[1]] + [_fmt(v) for v in rec[2:]]) + " |")
        nn_table = by["nnlut"].table
        assert nn_table is not None
        data_tables[name] = nn_table
        png = f"{name}_table.png"
        plot_table(nn_table, str(out / png))
        lo, hi = nn["domain"]
        x = np.geomspace(lo, hi, 4001) if lo > 0 and hi / lo > 100 else np.linspace(lo, hi, 4001)
        curves = [(m, x, by[m].table(x) - spec(x)) for m in ("nnlut", "linear", "exponential")]  # type: ignore[misc]
        if name in IBERT_FUNCTIONS:
            curves.append(("ibert", x, IBERT_FUNCTIONS[name](x) - spec(x)))
        err_png = f"{name}_errors.png"
        plot_error_curves(curves, str(out / err_png), title=f"{name}: |error| of {settings.entries}-entry tables")
        plots += [png, err_png]
    headers = ["function", "domain", "nnlut max", "nnlut mean", "linear max", "linear mean", "expo max",
               "expo mean", "ibert max", "ibert mean"]
    text = format_table(headers, rows_txt)
    md = "| " + " | ".join(headers) + " |\n|" + "---|" * len(headers) + "\n" + "\n".join(md_rows) + "\n\n"
    md += "Errors are absolute, on a dense grid (2^20+1 points) over each domain; every table has the " \
          "minimax-optimal values for its breakpoints. rsqrt is fitted on [1, 1024] and serves [0.1, 1) by " \
          "power-of-four input scaling. Tables are in `tables/`.\n\n"
    full_text, full_md, data["full_domain"] = _full_domain_table(data_tables)
    text += "\n\nNN-LUT tables over every input a number format holds\n" + full_text
    md += full_md
    md += "\n".join(f"![{p}]({p})" for p in plots) + "\n"
    return Section("tables", f"Function tables, {settings.entries} entries", text, md, data)


def _full_domain_table(tables: dict[str, Any]) -> tuple[str, str, dict[str, Any]]:
    """Each NN-LUT table's full-domain errors: text table, markdown table with a note, data."""
    from .._text import format_table
    from ..fitting._full import FULL_HEADERS, full_domain_rows

    headers = ["function", *FULL_HEADERS]
    rows, data = [], {}
    for name, table in tables.items():
        full = table.meta["errors"]["full_domain"]
        data[name] = full
        rows += [[name, *r] for r in full_domain_rows(full)]
    text = format_table(headers, rows)
    md = "Over every input a number format holds (every finite FP16 value, every finite BF16 value, and " \
         "a log-spaced FP32 sweep from the smallest normal to the largest finite value, both signs), with " \
         "the tails and input scaling: relative error is |t - f| / max(|f|, 2^-14). Inputs whose exact value " \
         "is not finite in the format (1/0, rsqrt of negatives, 1/x at FP16 subnormals) are excluded; exp " \
         "covers its softmax inputs, x <= 0.\n\n"
    md += "| " + " | ".join(headers) + " |\n|" + "---|" * len(headers) + "\n"
    md += "\n".join("| " + " | ".join(_fmt(v) if isinstance(v, float) else str(v) for v in r) + " |" for r in rows)
    return text, md + "\n\n", data


def section_models(out: Path, settings: Settings) -> Section:
    """MiniLM with every op replaced, beside the baselines, on a stratified sample of the test half."""
    from .._text import format_table
    from ..eval import build_task, default_configs, evaluate_configs
    from ..eval._evaluate import summary_rows

    try:
        task = build_task("minilm", settings.head, seed=settings.seed, limit=settings.eval_limit,
                          train_limit=settings.probe_train, extra=False)
    except NNLUTError as e:
        return Section("models", "MiniLM accuracy", "", "", skipped=str(e))
    res = evaluate_configs(task, default_configs(settings.entries, calibrate=settings.calibrate))
    headers, rows = summary_rows(res)
    findings = model_findings(res, settings.entries)
    text = format_table(headers, rows) + "\n" + findings
    m = task.meta
    how = ("a classifier fine-tuned on the training half" if m["head"] == "finetuned"
           else f"a logistic-regression probe on frozen FP32 embeddings of a seeded stratified sample of "
                f"{m.get('probe_train_sentences')} training sentences")
    md = (f"MiniLM-L6 on {m['test_sentences']} sentences of the movie-review test half ({m['subset']}, "
          f"{m['positive_share']:.1%} positive); FP32 reference: {how}. "
          "Δ acc is in points against FP32 with its paired-bootstrap 95% interval; McNemar p is the mid-p of "
          "McNemar's test on the sentences where the two disagree; '≈ fp32' marks a configuration whose interval "
          "contains 0 and whose McNemar p is at least 0.05. Agreement is the share of FP32's predictions kept, "
          "cosine compares mean-pooled final hidden states with FP32's; op errors are max |output error| over the "
          "first batches. Full runs: `nnlut eval`.\n\n" + findings + "\n\n")
    md += "| " + " | ".join(headers) + " |\n|" + "---|" * len(headers) + "\n"
    md += "\n".join("| " + " | ".join(r[0:1] + [_cell(v) for v in r[1:]]) + " |"
                     for r in rows) + "\n"
    return Section("models", "MiniLM accuracy with LUT ops", text, md, res)


def model_findings(res: dict[str, Any], entries: int) -> str:
    """One sentence each for FP32, linear mode and NN-LUT on all ops (calibrated too), with
    their intervals, from the results of :func:`nnlut.eval.evaluate_configs` or of the
    logits evaluator."""
    from ..eval._evaluate import format_ci, verdict

    c = res["configs"]
    parts = [f"FP32 accuracy {c['fp32']['accuracy']:.2%}."]
    for name, label in ((f"linear{entries}-all", f"Linear mode ({entries} entries)"),
                        (f"nnlut{entries}-all", f"NN-LUT ({entries} entries, all ops)"),
                        (f"nnlut{entries}-all-calibrated", "Calibrated NN-LUT")):
        r = c.get(name)
        if r is None:
            continue
        v = verdict(r)
        what = ("is indistinguishable from FP32" if v == "≈ fp32" else
                "loses accuracy" if v == "worse" else "gains accuracy")
        parts.append(f"{label} {what}: Δ {r['delta_accuracy_pt']:+.2f} pt, 95% CI {format_ci(r['delta_ci_pt'])}, "
                     f"McNemar p {r['mcnemar']['p_mid']:.3g} (lost {r['mcnemar']['lost']}, "
                     f"gained {r['mcnemar']['gained']}).")
    return " ".join(parts)


def section_lm(out: Path, settings: Settings) -> Section:
    """nnlut's byte-level decoder LM (SiLU, RMSNorm, RoPE, causal softmax): held-out perplexity."""
    from .._text import format_table
    from ..eval._lm_eval import build_lm_task, evaluate_lm, lm_configs, lm_rows

    try:
        task = build_lm_task(settings.seed, settings.lm_sequences)
    except NNLUTError as e:
        return Section("lm", "Decoder LM perplexity", "", "", skipped=str(e))
    res = evaluate_lm(task, lm_configs(settings.entries), seed=settings.seed)
    headers, rows = lm_rows(res)
    m, c = task.meta, res["configs"]
    n = settings.entries
    findings = [f"FP32 perplexity {c['fp32']['perplexity']:.3f} (vocabulary {m['vocab_size']} bytes)."]
    for name in (f"nnlut{n}-all", "nnlut8-all-calibrated", f"linear{n}-all"):
        if name in c:
            lo, hi = c[name]["delta_perplexity_ci_pct"]
            findings.append(f"{name}: {c[name]['perplexity']:.3f}, {c[name]['delta_perplexity_pct']:+.2f}% "
                            f"(95% CI [{lo:+.2f}, {hi:+.2f}]%).")
    sm = m["softmax_inputs"]
    md = (f"A {m['parameters']:,}-parameter LLaMA-style model (4 layers, SiLU-gated MLP, RMSNorm, rotary positions) "
          f"trained here on the sentiment sentences in {m['train_seconds']:.0f} s (cached), judged on "
          f"{m['test_sequences']} held-out sequences of {m['context']} bytes. Softmax inputs (scores minus the row "
          f"max) reach {sm['min']:.1f}; 0.1% lie below {sm['q001']:.1f}. The interval is a paired bootstrap over "
          "sequences of the perplexity ratio; 'pos>=384' is perplexity at positions whose softmax spans 384+ keys. "
          "`nnlut eval --model lm`.\n\n" + " ".join(findings) + "\n\n")
    md += "| " + " | ".join(headers) + " |\n|" + "---|" * len(headers) + "\n"
    md += "\n".join("| " + " | ".join(r[0:1] + [_cell(v) for v in r[1:]]) + " |"
                     for r in rows) + "\n"
    return Section("lm", "Decoder LM perplexity with LUT ops", format_table(headers, rows) + "\n" + " ".join(findings),
                   md, res)


def section_vision(out: Path, settings: Settings) -> Section:
    """A ViT trained on scikit-learn's digits: accuracy with intervals."""
    from .._text import format_table
    from ..eval import default_configs
    from ..eval._logits import evaluate_logits, logits_rows
    from ..eval._vit import build_vit_task

    try:
        task = build_vit_task(settings.seed)
    except NNLUTError as e:
        return Section("vision", "ViT accuracy", "", "", skipped=str(e))
    res = evaluate_logits(task, default_configs(settings.entries, calibrate=4), seed=settings.seed)
    headers, rows = logits_rows(res)
    findings = model_findings(res, settings.entries)
    m = task.meta
    md = (f"A {m['parameters']:,}-parameter ViT (4 layers, 2x2-pixel patches; GELU, LayerNorm, softmax) trained here "
          f"on half of scikit-learn's digits in {m['train_seconds']:.0f} s (cached), judged on the other "
          f"{m['test_images']} images; intervals and marks as in the MiniLM table. `nnlut eval --model vit-digits`."
          "\n\n" + findings + "\n\n")
    md += "| " + " | ".join(headers) + " |\n|" + "---|" * len(headers) + "\n"
    md += "\n".join("| " + " | ".join(r[0:1] + [_cell(v) for v in r[1:]]) + " |"
                     for r in rows) + "\n"
    return Section("vision", "ViT accuracy with LUT ops", format_table(headers, rows) + "\n" + findings, md, res)


def section_system(out: Path, settings: Settings) -> Section:
    """BERT-base on the NPU built from the measured units, fitted to the paper's three points."""
    from .._text import format_table
    from ..system import BERT_BASE, HWNPU, explain, fit_hw, load_units, simulate_hw, speedups
    from ..system._plot import plot_cycles

    hw_report = out / "hw" / "report.json"  # the hardware section's fresh report, when it ran first
    units, source = load_units(hw_report if hw_report.exists() else None)
    fit = fit_hw(units)
    npu = HWNPU(**fit["npu"])
    seqs = [16, 32, 64, 128, 256, 512, 1024, 2048, 4096]
    records = [simulate_hw(units, npu, BERT_BASE, L, d) for L in seqs for d in ("ibert", "nnlut")]
    for r in records:
        r.pop("parts", None)
    sp = speedups(records)
    by = {(r["seq_len"], r["design"]): r for r in records}
    rows = [[L, 100 * by[(L, "ibert")]["nonlinear_share"], 100 * by[(L, "nnlut")]["nonlinear_share"], sp[L]] for L in seqs]
    headers = ["seq", "I-BERT NL share %", "NN-LUT NL share %", "speedup"]
    plot_cycles(records, str(out / "system_cycles.png"), f"BERT-base, batch {npu.batch}: cycles by op class")
    ex = explain(units, npu)
    text = format_table(headers, rows)
    f, r = fit["figures"], fit["residuals"]
    md = (f"NPU built from the measured function units (`{Path(source).name}`), its other parameters fitted by grid "
          f"search ({fit['searched']} configurations, {fit['within_tolerance']} within every tolerance) to the "
          f"paper's three points: `{json.dumps(fit['npu'])}`. I-BERT non-linear share {f['ibert_share_16']:.1%} at 16 "
          f"tokens (paper 17.7%, residual {r['ibert_share_16']:+.1%}) and {f['ibert_share_1024']:.1%} at 1024 (paper "
          f"37.8%, {r['ibert_share_1024']:+.1%}); NN-LUT at 1024: share {f['nnlut_share_1024']:.1%} (paper 21.5%, "
          f"{r['nnlut_share_1024']:+.1%}), speedup {f['speedup_1024']:.2f}x (paper 1.26x, {r['speedup_1024']:+.2f}). "
          f"NN-LUT cuts the non-linear cycles {ex['nonlinear_gain']:.2f}x at 1024: its units take "
          f"{ex['nnlut']['units'] / ex['nnlut']['nonlinear_cycles']:.0%} of its non-linear cycles, the vector ops "
          f"around the functions (the same in both designs) {ex['nnlut']['around'] / ex['nnlut']['nonlinear_cycles']:.0%}"
          ". `nnlut sim` reproduces this.\n\n| " + " | ".join(headers) + " |\n|---|---|---|---|\n")
    md += "\n".join(f"| {L} | {a:.1f} | {b:.1f} | {c:.3f} |" for L, a, b, c in rows)
    md += "\n\n![system](system_cycles.png)\n"
    return Section("system", "System model: NPU cycles, I-BERT vs NN-LUT", text, md,
                   {"fit": {k: v for k, v in fit.items() if k != "grid"}, "explain": ex, "units_source": source,
                    "records": records, "speedup": {str(k): v for k, v in sp.items()}})


def section_hardware(out: Path, settings: Settings) -> Section:
    """Generated units, verified and synthesized: NN-LUT against I-BERT."""
    from .._text import format_table
    from ..hw import missing_tools, run_flow
    from ..hw._summary import function_rows, hw_rows, summary_lines

    lack = missing_tools()
    if lack:
        return Section("hardware", "Hardware", "", "", skipped="hardware tools missing: " + ", ".join(lack))
    rep = run_flow(str(out / "hw"), entries=settings.entries)
    headers, rows = hw_rows(rep)
    s = rep["summary"]
    text = format_table(headers, rows)
    text += "\n" + "\n".join(summary_lines(rep))
    md = (f"Every unit is generated, simulated with Icarus Verilog against the Python golden model "
          f"({rep['vectors_per_unit']} vectors each, RTL and gate level), synthesized with Yosys to the OSU 0.18um "
          f"library and timed with OpenSTA; {rep['power_note']}. Files in `hw/`.\n\n")
    md += "| " + " | ".join(headers) + " |\n|" + "---|" * len(headers) + "\n"
    md += "\n".join("| " + " | ".join(f"{v:.4g}" if isinstance(v, float) else str(v) for v in r) + " |" for r in rows)
    md += (f"\n\nThe programmable NN-LUT unit (serving GELU, exp, 1/x and 1/sqrt x by reloading) takes "
           f"{s['area_ratio_nnlut_over_ibert']:.2f}x the area of I-BERT's {', '.join(s['ibert_set'])}; four hard-wired "
           f"NN-LUT units take {s['area_ratio_roms_over_ibert']:.2f}x.\n")
    md += "".join(f"{line}.\n" for line in summary_lines(rep)[1:])
    fh, fr = function_rows(rep)
    text += "\n" + format_table(fh, fr)
    md += "\nPer function, each unit at its best clock (x: NN-LUT over I-BERT):\n\n"
    md += "| " + " | ".join(fh) + " |\n|" + "---|" * len(fh) + "\n"
    md += "\n".join("| " + " | ".join(f"{v:.4g}" if isinstance(v, float) else str(v) for v in r) + " |" for r in fr)
    md += "\n"
    return Section("hardware", "Hardware: NN-LUT unit against I-BERT's units", text, md, rep)


def section_export(out: Path, settings: Settings) -> Section:
    """MiniLM with every op on tables out of PyTorch: a torch.export program and an ONNX model,
    each run and compared with the eager approximated model."""
    import tempfile

    import torch

    from .._text import format_table

    try:
        import onnxruntime  # noqa: F401  (the section needs it)

        from ..eval._models import load_encoder
        from ..export import LastHiddenState, export_onnx, export_program, load_program, run_onnx, save_program, table_sites
        tok, _ = load_encoder("minilm")
    except (ImportError, NNLUTError) as e:
        return Section("export", "Deployment", "", "", skipped=f"needs onnx, onnxruntime and MiniLM ({e})")
    from ..models import ApproxConfig, approximate_

    sentences = ["A gorgeous, witty, seductive movie.", "The plot is nothing but boilerplate clichés.",
                 "It's a lovely film with lovely performances.", "Too slow, too long and too little happens."] * 8
    batch = tok(sentences, padding="max_length", max_length=64, return_tensors="pt")
    args = (batch["input_ids"], batch["attention_mask"])

    rows, data = [], {}
    for fmt in (None, "int16", "int8"):
        _, model = load_encoder("minilm")
        approximate_(model, ApproxConfig(entries=settings.entries, number_format=fmt))
        m = LastHiddenState(model).eval()
        want = m(*args).detach()
        with tempfile.TemporaryDirectory() as tmp:
            program = export_program(m, args)
            save_program(program, Path(tmp) / "m.pt2")
            got_pt2 = load_program(Path(tmp) / "m.pt2").module()(*args).detach()
            proto = export_onnx(m, args, Path(tmp) / "m.onnx")
            (got,) = run_onnx(Path(tmp) / "m.onnx", *args)
            size = (Path(tmp) / "m.onnx").stat().st_size
        mask = args[1].unsqueeze(-1).float()
        cos = float(torch.nn.functional.cosine_similarity((got * mask).sum(1), (want * mask).sum(1)).min())
        name = fmt or "float"
        data[name] = {"table_sites": len(table_sites(program)), "onnx_functions": len(proto.functions),
                      "onnx_bytes": size, "pt2_max_abs_diff": float((got_pt2 - want).abs().max()),
                      "onnx_max_abs_diff": float((got - want).abs().max()), "onnx_min_cosine": cos,
                      "max_abs_output": float(want.abs().max())}
        d = data[name]
        rows.append([name, d["table_sites"], d["onnx_functions"], d["pt2_max_abs_diff"], d["onnx_max_abs_diff"],
                     d["onnx_min_cosine"]])
    headers = ["tables", "table sites", "ONNX functions", "program vs eager (max |diff|)",
               "onnxruntime vs eager (max |diff|)", "onnxruntime min cosine"]
    text = format_table(headers, rows)
    md = (f"MiniLM with every op on {settings.entries}-entry tables, 32 sentences of 64 tokens: the torch.export "
          "program (one nnlut node per site, tables as its tensor inputs) saved and loaded, and the ONNX model (every "
          "table op a model-local function of standard ONNX operators) in onnxruntime, against the eager approximated "
          "model.\n\n| " + " | ".join(headers) + " |\n|" + "---|" * len(headers) + "\n")
    md += "\n".join("| " + " | ".join(_cell(v) for v in r) + " |" for r in rows) + "\n"
    return Section("export", "Deployment: torch.export and ONNX", text, md, data)


SECTIONS: dict[str, Callable[[Path, Settings], Section]] = {
    "tables": section_tables,
    "models": section_models,
    "lm": section_lm,
    "vision": section_vision,
    "system": section_system,
    "hardware": section_hardware,
    "export": section_export,
}


def run_study(out_dir: str, settings: Settings, sections: list[str] | None = None,
              echo: Callable[[str], None] | None = None) -> list[Section]:
    """Run the study's sections into ``out_dir``; write ``results.json`` and ``report.md``."""
    names = sections if sections else list(SECTIONS)
    unknown = [n for n in names if n not in SECTIONS]
    if unknown:
        raise NNLUTError(f"unknown section(s) {', '.join(unknown)}; available: {', '.join(SECTIONS)}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    done: list[Section] = []
    for name in names:
        t0 = time.perf_counter()
        logger.info("section %s", name)
        sec = SECTIONS[name](out, settings)
        sec.seconds = time.perf_counter() - t0
        done.append(sec)
        if echo is not None:
            echo(f"\n== {sec.title} ({sec.seconds:.1f} s) ==\n" + (sec.skipped and f"skipped: {sec.skipped}" or sec.text))
        _write(out, settings, done)
    return done


def _write(out: Path, settings: Settings, done: list[Section]) -> None:
    results = {
        "nnlut_version": __version__, "python": platform.python_version(), "machine": platform.machine(),
        "settings": settings.__dict__,
        "sections": {s.name: {"title": s.title, "seconds": s.seconds, "skipped": s.skipped, "data": s.data}
                     for s in done},
    }
    atomic_write_text(out / "results.json", json.dumps(results, indent=1, default=float) + "\n")
    md = ["# nnlut study report", "", f"nnlut {__version__}; settings: {settings.__dict__}.", ""]
    for s in done:
        md += [f"## {s.title}", "", f"_{s.seconds:.1f} s_", ""]
        md += [f"Skipped: {s.skipped}", ""] if s.skipped else [s.markdown, ""]
    atomic_write_text(out / "report.md", "\n".join(md))
