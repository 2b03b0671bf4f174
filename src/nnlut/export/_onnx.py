"""An approximated model as an ONNX model whose table ops are model-local functions.

Every nnlut op of the model's exported program becomes one node of the ``nnlut`` domain that
calls a model-local ONNX function; the function's body uses standard ONNX operators only, so
onnxruntime runs the model without a custom-op library and ``onnx.inliner`` can inline the
functions for tools that do not read them:

- a table: the compare stage (``GreaterOrEqual`` against the breakpoints, summed to a segment
  index), one ``Gather`` of slope and intercept, ``Mul`` and ``Add``; the power-of-two range
  reduction (exponent found with ``Log``/``Floor`` and corrected by comparison, scaling in
  float64, exactly), tails, limits and NaN handling around it. A fixed-point table is its
  integer datapath (input quantisation, int64 multiply-add, flooring shifts, rounding,
  saturation); a half-precision table rounds through ``Cast`` to FP16 or BF16.
- softmax, attention softmax, LayerNorm, RMSNorm and fused attention: their composite forms
  (reductions and the table functions of their roles).

The table tensors stay inputs of each function (initializers of the graph: the hardware
team's LUT contents), one function per distinct table and input type. Elementwise tables give
the eager model's values bit for bit; the row ops sum in float32 where nnlut's CPU kernels sum
in float64 (agreement to rounding). Shapes are those of the example inputs.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch

from .._errors import NNLUTError

DOMAIN = "nnlut"
_OPSET = 18


def _need_onnx() -> tuple[Any, Any, Any]:
    try:
        import onnx
        import onnxscript
        from onnx import helper
    except ImportError:
        raise NNLUTError("ONNX export needs onnx and onnxscript: pip install 'nnlut[onnx]'") from None
    return onnx, onnxscript, helper


# ---------------------------------------------------------------------------- function bodies
class _Body:
    """Nodes of one function body, with fresh value names."""

    def __init__(self, helper: Any, onnx: Any) -> None:
        self.h, self.onnx, self.nodes, self.n = helper, onnx, [], 0

    def _name(self) -> str:
        self.n += 1
        return f"v{self.n}"

    def op(self, op_type: str, *inputs: str, domain: str = "", **attrs: Any) -> str:
        out = self._name()
        self.nodes.append(self.h.make_node(op_type, list(inputs), [out], domain=domain, **attrs))
        return out

    def const(self, value: Any, dtype: Any) -> str:
        arr = np.asarray(value, dtype=dtype)
        return self.op("Constant", value=self.onnx.numpy_helper.from_array(arr))

    def cast(self, x: str, to: int) -> str:
        return self.op("Cast", x, to=to)


_NP = {1: np.float32, 11: np.float64, 10: np.float16, 16: np.float32}  # bfloat16 constants go through float32
_DOUBLE, _FLOAT, _INT64, _BOOL = 11, 1, 7, 9
_HALF_TYPES = {"fp16": 10, "bf16": 16}


def _np_of(elem: int) -> Any:
    return _NP.get(elem, np.float32)


def _compute_type(elem: int) -> int:
    """The dtype a table is evaluated in: float64 and float32 as they are, others in float32."""
    return elem if elem in (_DOUBLE, _FLOAT) else _FLOAT


def _frexp_exponent(b: _Body, ax: str) -> str:
    """floor(log2(ax)) as float64 for finite ax > 0 (ax float64), exact: a Log estimate
    corrected by comparing with the powers of two around it."""
    e = b.op("Floor", b.op("Div", b.op("Log", ax), b.const(math.log(2.0), np.float64)))
    two = b.const(2.0, np.float64)
    p = b.op("Pow", two, e)
    e = b.op("Where", b.op("Less", ax, p), b.op("Sub", e, b.const(1.0, np.float64)), e)
    p = b.op("Pow", two, e)
    return b.op("Where", b.op("GreaterOrEqual", ax, b.op("Mul", p, two)), b.op("Add", e, b.const(1.0, np.float64)), e)


def _reduce(b: _Body, sc: Any, xd: str) -> tuple[str, str]:
    """(u, j) of nnlut's range reduction in float64 (see nnlut.core._eval.reduce_input)."""
    ax = b.op("Abs", xd) if sc.negative == "odd" else xd
    ok = b.op("And", b.op("Greater", ax, b.const(0.0, np.float64)), b.op("Less", ax, b.const(math.inf, np.float64)))
    safe = b.op("Where", ok, ax, b.const(1.0, np.float64))
    big_e = _frexp_exponent(b, safe)
    big_e = b.op("Where", ok, big_e, b.const(-1.0, np.float64))  # frexp(0) = (0, 0): big_e = -1
    j = b.op("Floor", b.op("Div", big_e, b.const(float(sc.q), np.float64)))
    if sc.mode == "paper":
        j = b.op("Min", j, b.const(0.0, np.float64))
    u = b.op("Mul", ax, b.op("Pow", b.const(2.0, np.float64), b.op("Mul", j, b.const(-float(sc.q), np.float64))))
    return u, j


def _restore(b: _Body, sc: Any, xd: str, yd: str, j: str) -> str:
    """nnlut's output correction (nnlut.core._eval.restore_output) in float64."""
    y = b.op("Mul", yd, b.op("Pow", b.const(2.0, np.float64), b.op("Mul", j, b.const(float(sc.shift_per_period),
                                                                                            np.float64))))
    # inf with the zero's sign (1/-0 = rsqrt(-0) = -inf): the sign of 1/x, which is inf there
    signed_inf = b.op("Div", b.const(1.0, np.float64), xd)
    y = b.op("Where", b.op("Equal", xd, b.const(0.0, np.float64)), signed_inf, y)
    neg = b.op("Less", xd, b.const(0.0, np.float64))
    return b.op("Where", neg, b.op("Neg", y), y) if sc.negative == "odd" else b.op("Where", neg,
                                                                                b.const(math.nan, np.float64), y)


def _index(b: _Body, u: str, bp: str) -> str:
    """The compare stage: the segment index ``#{bp <= u}`` of every value."""
    ge = b.op("GreaterOrEqual", b.op("Unsqueeze", u, b.const([-1], np.int64)), bp)
    return b.op("ReduceSum", b.cast(ge, _INT64), b.const([-1], np.int64), keepdims=0)


def _segments(b: _Body, u: str, bp: str, s: str, t: str) -> str:
    """One compare stage and one multiply-add: ``s[idx] * u + t[idx]``."""
    idx = _index(b, u, bp)
    return b.op("Add", b.op("Mul", b.op("Gather", s, idx), u), b.op("Gather", t, idx))


def _specials(b: _Body, x: str, y: str, limits: Sequence[float], np_dtype: Any) -> str:
    y = b.op("Where", b.op("Equal", x, b.const(math.inf, np_dtype)), b.const(limits[1], np_dtype), y)
    y = b.op("Where", b.op("Equal", x, b.const(-math.inf, np_dtype)), b.const(limits[0], np_dtype), y)
    return b.op("Where", b.op("IsNaN", x), x, y)


def _layout_parts(d: Mapping[str, Any]) -> tuple[Any, tuple, Any, tuple[float, float]]:
    from ..core._io import decode_limits
    from ..core._scaling import Scaling

    sc = Scaling.from_dict(d["scaling"]) if d.get("scaling") else None
    tails = tuple(d.get("tails") or ("extend", "extend"))
    limits = decode_limits(d.get("limits")) or (math.nan, math.nan)
    return sc, tails, d.get("domain"), limits


def _float_table(b: _Body, x: str, bp: str, s: str, t: str, d: Mapping[str, Any], elem: int) -> str:
    c = _compute_type(elem)
    npc = _np_of(c)
    xc = x if c == elem else b.cast(x, c)
    bp, s, t = (b.cast(v, c) for v in (bp, s, t))
    sc, tails, domain, limits = _layout_parts(d)
    if sc is not None:
        xd = xc if c == _DOUBLE else b.cast(xc, _DOUBLE)
        ud, j = _reduce(b, sc, xd)
        u = ud if c == _DOUBLE else b.cast(ud, c)
    else:
        u = xc
    if tails[0] == "clamp":
        u = b.op("Max", u, b.const(domain[0], npc))
    if tails[1] == "clamp":
        u = b.op("Min", u, b.const(domain[1], npc))
    y = _segments(b, u, bp, s, t)
    if sc is not None:
        yd = _restore(b, sc, xd, y if c == _DOUBLE else b.cast(y, _DOUBLE), j)
        y = yd if c == _DOUBLE else b.cast(yd, c)
    y = _specials(b, xc, y, limits, npc)
    return y if c == elem else b.cast(y, elem)


def _floor_shift(b: _Body, a: str, k: int) -> str:
    """``a >> k`` (arithmetic, flooring) on int64."""
    q = b.const(1 << k, np.int64)
    return b.op("Div", b.op("Sub", a, b.op("Mod", a, q, fmod=0)), q)


def _fixed_table(b: _Body, x: str, bp: str, s: str, t: str, d: Mapping[str, Any], elem: int) -> str:
    from ..core._io import decode_limits
    from ..core._scaling import Scaling
    from ..fixed._format import FixedFormat

    f = d["fmt"]
    fmt = FixedFormat.from_dict(f)
    pshift, tshift, shift = fmt.pshift, fmt.tshift, fmt.shift
    sc = Scaling.from_dict(d["scaling"]) if d.get("scaling") else None
    limits = decode_limits(d.get("limits")) or (math.nan, math.nan)
    xd = b.cast(x, _DOUBLE)

    def core(u: str) -> str:
        v = b.op("Mul", u, b.const(2.0 ** f["in_frac"], np.float64))
        v = b.op("Where", b.op("IsNaN", v), b.const(0.0, np.float64), v)
        v = b.op("Round", v)
        v = b.op("Min", b.op("Max", v, b.const(-(2.0 ** (f["in_bits"] - 1)), np.float64)),
                 b.const(2.0 ** (f["in_bits"] - 1) - 1, np.float64))
        q = b.cast(v, _INT64)
        idx = _index(b, q, bp)
        prod = b.op("Mul", b.op("Gather", s, idx), q)
        if pshift > 0:
            prod = _floor_shift(b, prod, pshift)
        ti = b.op("Gather", t, idx)
        if tshift > 0:
            ti = b.op("Mul", ti, b.const(1 << tshift, np.int64))
        acc = b.op("Add", prod, ti)
        if shift > 0:
            if f.get("rounding", "half_up") == "half_up":
                acc = b.op("Add", acc, b.const(1 << (shift - 1), np.int64))
            acc = _floor_shift(b, acc, shift)
        acc = b.op("Min", b.op("Max", acc, b.const(-(2 ** (f["out_bits"] - 1)), np.int64)),
                   b.const(2 ** (f["out_bits"] - 1) - 1, np.int64))
        return b.op("Mul", b.cast(acc, _DOUBLE), b.const(2.0 ** -f["out_frac"], np.float64))

    if sc is None:
        y = core(xd)
    else:
        u, j = _reduce(b, sc, xd)
        y = _restore(b, sc, xd, core(u), j)
    y = _specials(b, xd, y, limits, np.float64)
    return y if elem == _DOUBLE else b.cast(y, elem)


def _half_table(b: _Body, x: str, bp: str, s: str, t: str, d: Mapping[str, Any], elem: int) -> str:
    h = _HALF_TYPES[d["precision"]]
    big = 65504.0 if d["precision"] == "fp16" else float(torch.finfo(torch.bfloat16).max)
    sc, tails, domain, limits = _layout_parts(d["source"])
    xd = b.cast(x, _DOUBLE)

    def rnd(v: str) -> str:
        return b.cast(b.cast(v, h), _DOUBLE)

    def core(u: str) -> str:
        v = rnd(b.op("Min", b.op("Max", u, b.const(-big, np.float64)), b.const(big, np.float64)))
        idx = _index(b, v, bp)
        return rnd(b.op("Add", rnd(b.op("Mul", b.op("Gather", s, idx), v)), b.op("Gather", t, idx)))

    if sc is None:
        u = xd
        if tails[0] == "clamp":
            u = b.op("Max", u, b.const(domain[0], np.float64))
        if tails[1] == "clamp":
            u = b.op("Min", u, b.const(domain[1], np.float64))
        y = core(u)
    else:
        u, j = _reduce(b, sc, xd)
        u = b.op("Min", b.op("Max", u, b.const(domain[0], np.float64)), b.const(domain[1], np.float64))
        y = _restore(b, sc, xd, core(u), j)
    y = _specials(b, xd, y, limits, np.float64)
    return y if elem == _DOUBLE else b.cast(y, elem)


_TABLE_BODIES: dict[str, Callable[..., str]] = {
    "nnlut.table": _float_table, "nnlut.fixed-table": _fixed_table, "nnlut.half-table": _half_table}


# ---------------------------------------------------------------------------- model-local functions
class _Functions:
    """The model-local functions of one export, made once per (kind of op, layout, types)."""

    def __init__(self) -> None:
        self.onnx, _, self.h = _need_onnx()
        self.protos: dict[str, Any] = {}
        self.about: dict[str, dict[str, Any]] = {}  # function name -> what it computes (metadata)

    def _add(self, name: str, inputs: list[str], build: Callable[[_Body], str], doc: str,
             about: Mapping[str, Any] | None = None) -> str:
        if about is not None:
            self.about[name] = dict(about)
        if name not in self.protos:
            b = _Body(self.h, self.onnx)
            out = build(b)
            b.nodes.append(self.h.make_node("Identity", [out], ["y"]))
            self.protos[name] = self.h.make_function(
                DOMAIN, name, inputs, ["y"], b.nodes,
                [self.h.make_opsetid("", _OPSET), self.h.make_opsetid(DOMAIN, 1)], doc_string=doc)
        return name

    def table(self, layout: str, elem: int) -> str:
        """The function ``y = table(x, breakpoints, slopes, intercepts)`` for inputs of type ``elem``."""
        d = json.loads(layout)
        kind = d.get("format", "nnlut.table")
        digest = hashlib.sha256(f"{layout}|{elem}".encode()).hexdigest()[:10]
        fn = d.get("function") or "table"
        name = f"{kind.split('.')[1].replace('-', '_')}_{fn}_{d.get('entries')}_{digest}"
        fmt = _format_name(d)
        return self._add(name, ["x", "breakpoints", "slopes", "intercepts"],
                         lambda b: _TABLE_BODIES[kind](b, "x", "breakpoints", "slopes", "intercepts", d, elem),
                         f"nnlut table: {layout}", {"function": d.get("function") or (d.get("source") or {}).get(
                             "function"), "entries": d.get("entries"), "format": fmt})

    def call_table(self, b: _Body, layout: str, elem: int, x: str, prefix: str) -> str:
        return b.op(self.table(layout, elem), x, f"{prefix}_breakpoints", f"{prefix}_slopes", f"{prefix}_intercepts",
                    domain=DOMAIN)

    def composite(self, op: str, key: str, inputs: list[str], build: Callable[[_Body], str]) -> str:
        digest = hashlib.sha256(key.encode()).hexdigest()[:10]
        return self._add(f"{op}_{digest}", inputs, build, f"nnlut {op}: {key}")


def _format_name(d: Mapping[str, Any]) -> str:
    kind = d.get("format", "nnlut.table")
    if kind == "nnlut.half-table":
        return d["precision"]
    if kind == "nnlut.fixed-table":
        f = d["fmt"]
        return (f"fixed in{f['in_bits']}.{f['in_frac']} slope{f['slope_bits']}.{f['slope_frac']} "
                f"out{f['out_bits']}.{f['out_frac']}")
    return "float"


_T = ("breakpoints", "slopes", "intercepts")


def _table_inputs(role: str) -> list[str]:
    return [f"{role}_{n}" for n in _T]


def _softmax_body(fns: _Functions, b: _Body, x: str, axis: int, elem: int, exp: str, rec: str) -> str:
    c = _compute_type(elem)
    xc = x if c == elem else b.cast(x, c)
    ax = b.const([axis], np.int64)
    z = b.op("Sub", xc, b.op("ReduceMax", xc, ax, keepdims=1))
    e = fns.call_table(b, exp, c, z, "exp")
    ssum = b.op("ReduceSum", e, ax, keepdims=1)
    y = b.op("Mul", e, fns.call_table(b, rec, c, ssum, "reciprocal"))
    return y if c == elem else b.cast(y, elem)


def _slice_last(b: _Body, m: str, like: str) -> str:
    """``m[..., :like.shape[-1]]``."""
    keys = b.op("Shape", like, start=-1)
    return b.op("Slice", m, b.const([0], np.int64), keys, b.const([-1], np.int64))


# ---------------------------------------------------------------------------- translations
def _elem(t: Any) -> int:
    return int(t.dtype)


def _translations(fns: _Functions, onnxscript: Any) -> dict[Any, Callable[..., Any]]:
    import onnx
    from onnx.defs import OpSchema

    ops = torch.ops.nnlut
    nn = onnxscript.values.Opset(DOMAIN, 1)

    def call(name: str, *args: Any) -> Any:
        present = [a for a in args if a is not None]
        if not onnx.defs.has(name, DOMAIN):
            params = [OpSchema.FormalParameter(f"i{k}", f"T{k}") for k in range(len(present))]
            types = [(f"T{k}", _ALL_TYPES, "") for k in range(len(present))]
            onnx.defs.register_schema(OpSchema(name, DOMAIN, 1, inputs=params,
                                               outputs=[OpSchema.FormalParameter("y", "T0")], type_constraints=types))
        return getattr(nn, name)(*present)

    def table_op(x: Any, bp: Any, s: Any, t: Any, layout: str) -> Any:
        return call(fns.table(layout, _elem(x)), x, bp, s, t)

    def softmax(x: Any, dim: int, *tabs: Any) -> Any:
        elem, exp, rec = _elem(x), tabs[3], tabs[7]
        name = fns.composite("softmax", f"{dim}|{elem}|{exp}|{rec}", ["x", *_table_inputs("exp"),
                                                                      *_table_inputs("reciprocal")],
                             lambda b: _softmax_body(fns, b, "x", dim, elem, exp, rec))
        return call(name, x, *tabs[0:3], *tabs[4:7])

    def attention_softmax(scores: Any, scale: float, mask: Any, *tabs: Any) -> Any:
        elem, exp, rec = _elem(scores), tabs[3], tabs[7]
        has_mask = mask is not None

        def build(b: _Body) -> str:
            np_t = _np_of(elem)
            s = b.op("Mul", "scores", b.const(scale, np_t))
            if has_mask:
                s = b.op("Add", s, _slice_last(b, "mask", "scores"))
            return _softmax_body(fns, b, s, -1, elem, exp, rec)

        name = fns.composite("attention_softmax", f"{scale}|{has_mask}|{elem}|{exp}|{rec}",
                             ["scores", *(["mask"] if has_mask else []), *_table_inputs("exp"),
                              *_table_inputs("reciprocal")], build)
        return call(name, scores, mask, *tabs[0:3], *tabs[4:7])

    def layernorm(x: Any, shape: Sequence[int], weight: Any, bias: Any, eps: float, *tab: Any) -> Any:
        elem, rsqrt = _elem(x), tab[3]
        axes = list(range(-len(shape), 0))
        hw, hb = weight is not None, bias is not None

        def build(b: _Body) -> str:
            c = _compute_type(elem)
            xc = "x" if c == elem else b.cast("x", c)
            ax = b.const(axes, np.int64)
            dlt = b.op("Sub", xc, b.op("ReduceMean", xc, ax, keepdims=1))
            var = b.op("ReduceMean", b.op("Mul", dlt, dlt), ax, keepdims=1)
            y = b.op("Mul", dlt, fns.call_table(b, rsqrt, c, b.op("Add", var, b.const(eps, _np_of(c))), "rsqrt"))
            if hw:
                y = b.op("Mul", y, b.cast("weight", c))
            if hb:
                y = b.op("Add", y, b.cast("bias", c))
            return y if c == elem else b.cast(y, elem)

        name = fns.composite("layernorm", f"{axes}|{hw}|{hb}|{eps}|{elem}|{rsqrt}",
                             ["x", *(["weight"] if hw else []), *(["bias"] if hb else []), *_table_inputs("rsqrt")],
                             build)
        return call(name, x, weight, bias, *tab[:3])

    def rmsnorm(x: Any, weight: Any, eps: float, offset: float, *tab: Any) -> Any:
        elem, rsqrt = _elem(x), tab[3]
        hw = weight is not None
        if hw and _elem(weight) != elem:
            raise NNLUTError("ONNX export of an RMSNorm whose weight dtype differs from its input's is not supported")

        def build(b: _Body) -> str:
            c = _DOUBLE if elem == _DOUBLE else _FLOAT
            xc = "x" if c == elem else b.cast("x", c)
            ms = b.op("ReduceMean", b.op("Mul", xc, xc), b.const([-1], np.int64), keepdims=1)
            y = b.op("Mul", xc, fns.call_table(b, rsqrt, c, b.op("Add", ms, b.const(eps, _np_of(c))), "rsqrt"))
            y = y if c == elem else b.cast(y, elem)
            if hw:
                w = b.op("Add", "weight", b.const(offset, _np_of(elem))) if offset else "weight"
                y = b.op("Mul", w, y)
            return y

        name = fns.composite("rmsnorm", f"{hw}|{eps}|{offset}|{elem}|{rsqrt}",
                             ["x", *(["weight"] if hw else []), *_table_inputs("rsqrt")], build)
        return call(name, x, weight, *tab[:3])

    def flash_attention(q: Any, k: Any, v: Any, mask: Any, bias: Any, scale: float, softcap: float, lo: int, hi: int,
                        *tabs: Any) -> Any:
        elem, exp, rec = _elem(q), tabs[3], tabs[7]
        try:
            bq, hq, lq, _ = (int(n) for n in q.shape)
            _, hk, lk, dk = (int(n) for n in k.shape)
            dv = int(v.shape[3])
        except (TypeError, ValueError):
            raise NNLUTError("ONNX export of fused attention needs static shapes") from None
        mask_bool = mask is not None and _elem(mask) == _BOOL
        has_mask, has_bias = mask is not None, bias is not None
        band = lo > -lk or hi < lk

        def build(b: _Body) -> str:
            c = _compute_type(elem)
            npc = _np_of(c)
            qc, kc, vc = (n if c == elem else b.cast(n, c) for n in ("q", "k", "v"))
            groups = hq // hk
            if groups > 1:
                def rep(t: str, d: int) -> str:
                    t5 = b.op("Unsqueeze", t, b.const([2], np.int64))
                    t5 = b.op("Expand", t5, b.const([bq, hk, groups, lk, d], np.int64))
                    return b.op("Reshape", t5, b.const([bq, hq, lk, d], np.int64))
                kc, vc = rep(kc, dk), rep(vc, dv)
            s = b.op("Mul", b.op("MatMul", qc, b.op("Transpose", kc, perm=[0, 1, 3, 2])), b.const(scale, npc))
            if softcap:
                cap = b.const(softcap, npc)
                s = b.op("Mul", b.op("Tanh", b.op("Div", s, cap)), cap)
            if has_bias:
                bs = _slice_last(b, "bias", s)
                s = b.op("Add", s, bs if c == _elem(bias) else b.cast(bs, c))
            if has_mask:
                m = _slice_last(b, "mask", s)
                if mask_bool:
                    s = b.op("Where", m, s, b.const(float(np.finfo(npc).min), npc))
                else:
                    s = b.op("Add", s, m if c == _elem(mask) else b.cast(m, c))
            if band:
                d = np.arange(lk)[None, :] - np.arange(lq)[:, None]
                s = b.op("Where", b.const((d < lo) | (d > hi), np.bool_), b.const(-math.inf, npc), s)
            p = _softmax_body(fns, b, s, -1, c, exp, rec)
            out = b.op("Transpose", b.op("MatMul", p, vc), perm=[0, 2, 1, 3])
            return out if c == elem else b.cast(out, elem)

        key = f"{(bq, hq, lq, hk, lk, dk, dv)}|{mask_bool}|{has_mask}|{has_bias}|{scale}|{softcap}|{lo}|{hi}|{elem}|{exp}|{rec}"
        name = fns.composite("flash_attention", key,
                             ["q", "k", "v", *(["mask"] if has_mask else []), *(["bias"] if has_bias else []),
                              *_table_inputs("exp"), *_table_inputs("reciprocal")], build)
        return call(name, q, k, v, mask, bias, *tabs[0:3], *tabs[4:7])

    return {ops.pwl.default: table_op, ops.fixed.default: table_op, ops.half.default: table_op,
            ops.softmax.default: softmax, ops.attention_softmax.default: attention_softmax,
            ops.layernorm.default: layernorm, ops.rmsnorm.default: rmsnorm, ops.flash_attention.default: flash_attention}


_ALL_TYPES = ["tensor(float)", "tensor(double)", "tensor(float16)", "tensor(bfloat16)", "tensor(int64)",
              "tensor(int32)", "tensor(bool)"]


def export_onnx(model: torch.nn.Module, args: Any, path: str | os.PathLike[str], kwargs: Mapping[str, Any] | None = None,
                *, metadata: Mapping[str, str] | None = None) -> Any:
    """Write ``model`` (approximated or not) as an ONNX model at ``path`` whose table ops are
    model-local functions of the ``nnlut`` domain (see module docstring). Returns the
    ``onnx.ModelProto`` (checked with ``onnx.checker``, full check). The model's metadata
    records nnlut's version (``nnlut.version``), the functions (``nnlut.functions``) and, per
    table function, its function, entries and number format (``nnlut.tables``)."""
    from .. import __version__
    from ._program import export_program

    onnx, onnxscript, helper = _need_onnx()
    program = export_program(model, args, kwargs)
    fns = _Functions()
    try:
        with warnings.catch_warnings():  # torch's exporter calls a constructor torch itself deprecates
            warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\).*", category=FutureWarning)
            onnx_program = torch.onnx.export(program, dynamo=True,
                                             custom_translation_table=_translations(fns, onnxscript), optimize=False,
                                             verbose=False)
    except NNLUTError:
        raise
    except Exception as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else ""
        raise NNLUTError(f"ONNX export failed ({type(e).__name__}: {first[:300]})") from e
    proto = onnx_program.model_proto
    used = {n.op_type for n in proto.graph.node if n.domain == DOMAIN}
    # every function a used one calls (composites call table functions)
    todo = list(used)
    while todo:
        for n in fns.protos[todo.pop()].node:
            if n.domain == DOMAIN and n.op_type not in used:
                used.add(n.op_type)
                todo.append(n.op_type)
    version = next(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx"))
    del proto.functions[:]
    for name in sorted(used):
        f = fns.protos[name]
        for o in f.opset_import:
            if o.domain == "":
                o.version = version
        proto.functions.append(f)
    if not any(o.domain == DOMAIN for o in proto.opset_import):
        proto.opset_import.append(helper.make_opsetid(DOMAIN, 1))
    tables = {name: fns.about[name] for name in sorted(used) if name in fns.about}
    meta = {"nnlut.version": __version__, "nnlut.functions": json.dumps(sorted(used)),
            "nnlut.tables": json.dumps(tables, sort_keys=True), **dict(metadata or {})}
    del proto.metadata_props[:]
    for k, v in sorted(meta.items()):
        proto.metadata_props.append(onnx.StringStringEntryProto(key=k, value=v))
    onnx.checker.check_model(proto, full_check=True)
    from .._files import atomic_write_bytes

    atomic_write_bytes(path, proto.SerializeToString(deterministic=True))
    return proto


def run_onnx(path: str | os.PathLike[str], *inputs: torch.Tensor) -> list[torch.Tensor]:
    """The outputs of the ONNX model at ``path`` in onnxruntime (CPU execution provider) on
    ``inputs``, given in the order of the model's inputs."""
    try:
        import onnxruntime as ort
    except ImportError:
        raise NNLUTError("running ONNX models needs onnxruntime: pip install 'nnlut[onnx]'") from None
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [i.name for i in sess.get_inputs()]
    if len(names) != len(inputs):
        raise NNLUTError(f"the ONNX model takes {len(names)} inputs ({', '.join(names)}), got {len(inputs)}")
    feeds = {n: t.detach().cpu().numpy() for n, t in zip(names, inputs, strict=True)}
    return [torch.from_numpy(v) for v in sess.run(None, feeds)]


__all__ = ["DOMAIN", "export_onnx", "run_onnx"]
