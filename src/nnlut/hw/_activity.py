"""Switching activity from real inputs: what each unit sees inside MiniLM on real sentences,
and per-net toggle counts from a gate-level simulation (VCD) turned into OpenSTA activities.

The recorded inputs are the real values at the four functions' inputs:

- ``gelu``: the inputs of every GELU (``encoder.layer[i].intermediate``'s activation);
- ``exp``: attention scores minus their row max (``q k^T / sqrt(d)`` plus the padding mask,
  recomputed from the query and key projections), so ``<= 0``;
- ``reciprocal``: each softmax row's sum of ``exp(score - max)``, in ``[1, L]``;
- ``rsqrt``: each LayerNorm row's variance plus ``eps``; and for I-BERT's integer LayerNorm
  the rows themselves (``ln_rows``), from which its integer variance and std follow;
- ``ibert_sum``: each softmax row's sum of I-BERT's 16-bit i-exp values (its divider's input).

Each array is a float64 numpy vector, shuffled with a fixed seed so that a prefix is a fair
sample of every layer.
"""

from __future__ import annotations

import functools
import math
import re
from pathlib import Path
from typing import Any

import numpy as np

from .._errors import NNLUTError
from .._logging import logger

SENTENCES = 64  # movie-review sentences: enough values for every unit (GELU alone gets ~1.5 M)


@functools.lru_cache(maxsize=2)
def record_inputs(sentences: int = SENTENCES, seed: int = 0) -> dict[str, np.ndarray]:
    """Real inputs of the four functions from MiniLM on the first ``sentences`` movie-review
    sentences (see the module docstring); needs transformers and the sentiment data."""
    import torch

    from ..eval._data import load_set
    from ..eval._models import load_encoder
    from ..ibert._int import int_exp_requant
    from ._units import EXP_SCALE

    tok, model = load_encoder("minilm")
    texts = list(load_set("movie").limit(sentences).texts)
    batch = tok(texts, padding=True, truncation=True, max_length=128, return_tensors="pt")
    rec: dict[str, list[Any]] = {"gelu": [], "exp": [], "reciprocal": [], "rsqrt": [], "ln_rows": [], "ibert_sum": []}
    keep = batch["attention_mask"].bool()
    hooks, qk = [], {}

    def gelu_in(mod: Any, args: tuple) -> None:
        rec["gelu"].append(args[0][keep].flatten())

    def ln_in(mod: Any, args: tuple) -> None:
        x = args[0][keep].double()
        rec["rsqrt"].append(x.var(dim=-1, unbiased=False) + mod.eps)
        rec["ln_rows"].append(x)

    def proj(name: str) -> Any:
        def hook(mod: Any, args: tuple, out: torch.Tensor) -> None:
            qk[name] = out
        return hook

    def scores(mod: Any, args: tuple, out: Any) -> None:  # after the projections ran
        heads = model.config.num_attention_heads
        b, L, h = qk["q"].shape
        q = qk["q"].view(b, L, heads, h // heads).transpose(1, 2).double()
        k = qk["k"].view(b, L, heads, h // heads).transpose(1, 2).double()
        s = q @ k.transpose(-1, -2) / math.sqrt(h // heads)
        s = s.masked_fill(~keep[:, None, None, :], -math.inf)
        d = s - s.amax(dim=-1, keepdim=True)
        rows = keep[:, None, :, None].expand_as(d) & keep[:, None, None, :].expand_as(d)
        rec["exp"].append(d[rows])
        valid_rows = keep[:, None, :].expand(b, heads, L)
        rec["reciprocal"].append(torch.exp(d).sum(dim=-1)[valid_rows])
        qi = torch.round(d / EXP_SCALE).clamp(min=-(2**31)).to(torch.int64)
        rec["ibert_sum"].append(int_exp_requant(qi, EXP_SCALE).sum(dim=-1)[valid_rows])

    for name, mod in model.named_modules():
        if name.endswith("intermediate.intermediate_act_fn"):
            hooks.append(mod.register_forward_pre_hook(gelu_in))
        elif isinstance(mod, torch.nn.LayerNorm):
            hooks.append(mod.register_forward_pre_hook(ln_in))
        elif name.endswith("attention.self.query"):
            hooks.append(mod.register_forward_hook(proj("q")))
        elif name.endswith("attention.self.key"):
            hooks.append(mod.register_forward_hook(proj("k")))
        elif name.endswith("attention.self"):
            hooks.append(mod.register_forward_hook(scores))
    try:
        with torch.no_grad():
            model(**batch)
    finally:
        for h in hooks:
            h.remove()
    if not all(rec.values()):
        raise NNLUTError("could not record every unit's inputs from MiniLM (a module was not found: "
                         + ", ".join(k for k, v in rec.items() if not v) + ")")
    rng = np.random.default_rng(seed)
    out = {}
    for k, v in rec.items():
        a = torch.cat(v).numpy()
        out[k] = a[rng.permutation(len(a))]
    logger.info("recorded MiniLM inputs: %s", {k: v.shape for k, v in out.items()})
    return out


# ---------------------------------------------------------------------------- VCD toggles
_VAR = re.compile(r"\$var\s+\S+\s+(\d+)\s+(\S+)\s+(\S+)\s*(?:\[(\d+)(?::(\d+))?\])?\s*\$end")
_UNITS = {"s": 1e9, "ms": 1e6, "us": 1e3, "ns": 1.0, "ps": 1e-3, "fs": 1e-6}


class _Bits:
    """Toggle counts and time at 1 of every bit of a VCD over a window."""

    def __init__(self, t0: float, t1: float) -> None:
        self.t0, self.t1 = t0, t1
        self.value: dict[tuple[str, int], str] = {}
        self.since: dict[tuple[str, int], float] = {}
        self.toggles: dict[tuple[str, int], int] = {}
        self.high: dict[tuple[str, int], float] = {}

    def change(self, key: tuple[str, int], v: str, t: float) -> None:
        old = self.value.get(key)
        if old == v:
            return
        if old == "1":
            self.high[key] = self.high.get(key, 0.0) + max(0.0, min(t, self.t1) - max(self.since[key], self.t0))
        if old is not None and self.t0 <= t < self.t1:
            self.toggles[key] = self.toggles.get(key, 0) + 1
        self.value[key] = v
        self.since[key] = t

    def close(self) -> None:
        for key, v in self.value.items():
            if v == "1":
                self.high[key] = self.high.get(key, 0.0) + max(0.0, self.t1 - max(self.since[key], self.t0))


def vcd_activity(path: Path, scope: str, t_start: float, t_end: float, period: float) -> dict[str, tuple[float, float]]:
    """Per-bit (transitions per clock period, fraction of time at 1) over ``[t_start, t_end)``
    (ns; ``period`` in ns too) from a VCD dumped with ``$dumpvars(1, <scope>)``; bits are keyed
    as the OpenSTA netlist names them (``name`` for one bit, ``name_<i>`` for bit i of a
    vector). X and Z count as 0."""
    ids: dict[str, list[tuple[str, int, int]]] = {}  # code -> (name, msb, lsb)
    stack: list[str] = []
    target = scope.split(".")
    bits = _Bits(t_start, t_end)
    unit, header, want_scale, t = 1.0, True, False, 0.0
    with open(path) as fh:
        for line in fh:
            if header:
                if want_scale or line.startswith("$timescale"):
                    m = re.search(r"(\d+)\s*(s|ms|us|ns|ps|fs)\b", line)
                    want_scale = m is None
                    if m:
                        unit = int(m.group(1)) * _UNITS[m.group(2)]
                elif line.startswith("$scope"):
                    stack.append(line.split()[2])
                elif line.startswith("$upscope"):
                    stack.pop()
                elif line.startswith("$var") and stack == target:
                    m = _VAR.match(line.strip())
                    if m:
                        w = int(m.group(1))
                        msb = int(m.group(4)) if m.group(4) else w - 1
                        lsb = int(m.group(5)) if m.group(5) else (msb if m.group(4) else 0)
                        name = m.group(3).lstrip("\\")
                        ids.setdefault(m.group(2), []).append((name, msb, lsb) if w > 1 else (name, -1, -1))
                elif line.startswith("$enddefinitions"):
                    header = False
                continue
            c = line[:1]
            if c == "#":
                t = float(line[1:]) * unit
            elif c in "01xzXZ":
                code = line[1:].strip()
                if code in ids:
                    bits.change((code, 0), "1" if c == "1" else "0", t)
            elif c == "b":
                val, code = line[1:].split()
                if code in ids:
                    w = max(abs(msb - lsb) + 1 for _, msb, lsb in ids[code])
                    val = val.rjust(w, "0" if val[0] in "01" else val[0])
                    for i, ch in enumerate(reversed(val[-w:])):
                        bits.change((code, i), "1" if ch == "1" else "0", t)
    bits.close()
    span = t_end - t_start
    out = {}
    for code, names in ids.items():
        for name, msb, lsb in names:
            if msb < 0:
                keys = [(name, (code, 0))]
            else:
                step = 1 if msb >= lsb else -1
                keys = [(f"{name}_{lsb + k * step}", (code, k)) for k in range(abs(msb - lsb) + 1)]
            for n, key in keys:
                out[n] = (bits.toggles.get(key, 0) * period / span, bits.high.get(key, 0.0) / span)
    return out


# OpenSTA 2.0's set_power_activity -pins is broken (it reads an unset variable and keeps only
# input pins): the activities go straight to its per-pin and per-port setters
_TCL_PROCS = """proc nnlut_net_activity {net a d} {
    foreach p [get_pins -of_objects [get_nets $net]] { sta::set_power_pin_activity $p $a $d }
}
proc nnlut_port_activity {port a d} {
    set p [get_ports $port]
    if {[get_property $p direction] == "input"} { sta::set_power_input_port_activity $p $a $d }
}
"""


def activity_tcl(activity: dict[str, tuple[float, float]], nets: set[str], ports: set[str]) -> tuple[str, int]:
    """OpenSTA commands giving every net of the netlist its simulated activity (on every pin of
    the net, and on input ports), and how many of ``nets`` had a simulated value."""
    lines, hit = [_TCL_PROCS], 0
    for n in sorted(nets):
        a = activity.get(n)
        if a is None:
            continue
        hit += 1
        cmd = "nnlut_port_activity" if n in ports else "nnlut_net_activity"
        lines.append(f"{cmd} {{{n}}} {a[0]:.6g} {a[1]:.6g}")
        if n in ports:
            lines.append(f"nnlut_net_activity {{{n}}} {a[0]:.6g} {a[1]:.6g}")
    return "\n".join(lines) + "\n", hit
