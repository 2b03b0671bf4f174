"""Stacked cycle bars by sequence length for both designs, and the speedup curve."""

from __future__ import annotations

from typing import Any

import numpy as np


def plot_cycles(records: list[dict[str, Any]], path: str, title: str) -> None:
    from .._plotting import pyplot as _pyplot
    from .._plotting import save_png as _save

    plt = _pyplot()
    seqs = sorted({r["seq_len"] for r in records})
    by = {(r["seq_len"], r["design"]): r for r in records}
    classes = ["gemm", "gelu", "softmax", "layernorm", "other"]
    colors = {"gemm": "#9aa5b1", "gelu": "#e07a5f", "softmax": "#3d5a80", "layernorm": "#81b29a", "other": "#f2cc8f"}
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(12, 4.2), gridspec_kw={"width_ratios": [3, 1.3]})
    x = np.arange(len(seqs))
    w = 0.38
    for k, design in enumerate(("ibert", "nnlut")):
        bottom = np.zeros(len(seqs))
        for c in classes:
            vals = np.array([by[(L, design)]["cycles"][c] / by[(L, "ibert")]["total"] for L in seqs])
            ax.bar(x + (k - 0.5) * w, vals, w, bottom=bottom, color=colors[c], edgecolor="white", linewidth=0.4,
                   label=c if k == 0 else None, hatch="//" if design == "nnlut" else None)
            bottom += vals
    ax.set_xticks(x, [str(L) for L in seqs])
    ax.set_xlabel("sequence length (left bar: I-BERT kernels, right, hatched: NN-LUT)")
    ax.set_ylabel("cycles / I-BERT total")
    ax.set_title(title)
    ax.legend(fontsize=8, ncol=5, loc="upper center", bbox_to_anchor=(0.5, -0.18))
    sp = [by[(L, "ibert")]["total"] / by[(L, "nnlut")]["total"] for L in seqs]
    ax2.plot(seqs, sp, "o-", color="tab:red")
    ax2.set_xscale("log", base=2)
    ax2.set_xlabel("sequence length")
    ax2.set_ylabel("end-to-end speedup of NN-LUT")
    ax2.grid(alpha=0.3)
    _save(fig, path)
    plt.close(fig)
