"""What a forward runs, counted at the dispatcher: every non-linear evaluation, where, and
whether it ran on a table, exact on data, or exact on static values.

:func:`trace_coverage` runs one forward under a ``TorchDispatchMode`` (below every Python-level
mechanism nnlut uses, so it counts what actually executes) and classifies each aten op:

- ``table``: an ``nnlut::`` op (a table evaluation, LUT softmax, LUT norms, fused attention);
- ``exact``: a non-linear aten op (``exp``, ``tanh``, ``_softmax``, ``rsqrt``, ``sqrt``,
  ``native_layer_norm``, SDPA, a division by a tensor, ...) whose inputs depend on the forward's
  inputs (followed from the forward's tensor arguments through every op, in-place writes
  included); a division counts when its divisor does (else it is a multiply by a static
  reciprocal);
- ``static``: the same ops on values that depend only on weights, buffers and constants
  (RoPE tables, ALiBi slopes, ``exp(A_log)``): an accelerator precomputes them.

Work is counted in scalar evaluations: elements for elementwise ops and softmaxes, rows for
norms (one rsqrt each), scores for attention. Each record names the module path it ran in
(``<model>`` for the root) and the op; :attr:`Coverage.coverage` is the share of data-dependent
non-linear evaluations that ran on tables.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves
from torch.utils.weak import WeakIdKeyDictionary

ROOT = "<model>"
T = torch.Tensor

# elementwise non-linear aten ops (by overload packet name): one evaluation per output element
_ELEMENTWISE = frozenset({
    "exp", "exp_", "exp2", "exp2_", "expm1", "expm1_", "log", "log_", "log2", "log2_", "log10", "log10_", "log1p",
    "log1p_", "tanh", "tanh_", "sigmoid", "sigmoid_", "erf", "erf_", "erfc", "erfc_", "erfinv", "rsqrt", "rsqrt_",
    "sqrt", "sqrt_", "reciprocal", "reciprocal_", "gelu", "gelu_", "silu", "silu_", "softplus", "mish", "mish_",
    "elu", "elu_", "selu", "celu", "log_sigmoid_forward", "sin", "sin_", "cos", "cos_", "tan", "atan", "atan2",
    "asin", "acos", "sinh", "cosh", "asinh", "acosh", "atanh", "logit", "special_erfcx", "lgamma", "digamma", "glu",
})
_SOFTMAX = frozenset({"_softmax", "_log_softmax", "_safe_softmax", "softmax", "log_softmax", "logsumexp"})
_NORMS = frozenset({"native_layer_norm", "native_group_norm", "_fused_rms_norm", "rms_norm", "linalg_vector_norm",
                    "norm", "native_batch_norm", "_native_batch_norm_legit", "_native_batch_norm_legit_no_training"})
_ATTENTION_OPS = frozenset({"softmax", "attention_softmax", "attention_softmax_", "flash_attention"})
_DIVISIONS = frozenset({"div", "div_", "true_divide", "true_divide_"})


def _numel(shape: Any) -> int:
    return math.prod(int(s) for s in shape)


def _work(name: str, func: Any, args: tuple, kwargs: dict, out: Any) -> tuple[str, int] | None:
    """(op label, scalar evaluations) of a non-linear aten op, or None for linear ones."""
    first = args[0] if args and isinstance(args[0], T) else None
    if name in _ELEMENTWISE:
        o = out if isinstance(out, T) else first
        return name.rstrip("_"), o.numel() if o is not None else 0
    if name in _SOFTMAX:
        return name.lstrip("_"), first.numel() if first is not None else 0
    if name in _DIVISIONS:
        if len(args) > 1 and isinstance(args[1], T) and args[1].is_floating_point() and "rounding_mode" not in kwargs:
            return "div", out.numel() if isinstance(out, T) else 0
        return None
    if name == "pow":
        e = args[1] if len(args) > 1 else None
        if isinstance(e, (int, float)) and float(e) in (0.0, 1.0, 2.0, 3.0):  # products, not a pow unit
            return None
        return "pow", out.numel() if isinstance(out, T) else 0
    if name in _NORMS:
        if first is None:
            return None
        o = out[0] if isinstance(out, (tuple, list)) else out
        if name == "native_layer_norm":
            rows = first.numel() // max(1, _numel(args[1]))
        elif name in ("linalg_vector_norm", "norm"):
            rows = o.numel()
        elif name == "native_group_norm":
            rows = int(args[3]) * int(args[6]) if len(args) > 6 else first.shape[0]
        else:
            rows = first.numel() // max(1, first.shape[-1]) if "rms" in name else first.shape[1] if first.dim() > 1 else 1
        return name.lstrip("_"), rows
    if "scaled_dot_product" in name and first is not None and len(args) > 1 and isinstance(args[1], T):
        return "sdpa softmax", first.numel() // max(1, first.shape[-1]) * args[1].shape[-2]
    return None


def _table_work(name: str, args: tuple, out: Any) -> tuple[str, int, int]:
    """(label, evaluations on tables, exact evaluations inside) of an ``nnlut::`` op."""
    x = args[0] if args and isinstance(args[0], T) else None
    if x is None:
        return name, 0, 0
    if name in ("layernorm",):
        return name, x.numel() // max(1, _numel(args[1])), 0
    if name == "rmsnorm":
        return name, x.numel() // max(1, x.shape[-1]), 0
    if name == "flash_attention":
        q, k = args[0], args[1]
        scores = q.numel() // max(1, q.shape[-1]) * k.shape[-2]
        softcap = float(args[6]) if len(args) > 6 and isinstance(args[6], (int, float)) else 0.0
        return name, scores, scores if softcap else 0
    if name in ("pwl", "fixed", "half"):
        import json

        try:  # the op's layout argument names the table's function
            layout = json.loads(args[4])
            fn = layout.get("function") or (layout.get("source") or {}).get("function")
        except (IndexError, TypeError, ValueError, AttributeError):
            fn = None
        return f"{name}:{fn}" if fn else name, x.numel(), 0
    return name, x.numel(), 0


@dataclass
class Coverage:
    """One traced forward's non-linear work (see module docstring).

    ``records``: one per (module path, op, kind) with ``calls`` and ``elements``; ``kind`` is
    ``table``, ``exact`` or ``static``.
    """

    records: list[dict[str, Any]] = field(default_factory=list)

    def total(self, kind: str) -> int:
        return sum(r["elements"] for r in self.records if r["kind"] == kind)

    @property
    def coverage(self) -> float:
        """Share of the data-dependent non-linear evaluations that ran on tables (1.0 when
        there are none)."""
        t, e = self.total("table"), self.total("exact")
        return t / (t + e) if t + e else 1.0

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [r for r in self.records if r["kind"] == kind]

    def ran(self, site: str) -> bool:
        """Whether a table op ran in module ``site`` (a replaced module's path; for an attention
        softmax, ``<attention path>.softmax``)."""
        if any(r["kind"] == "table" and r["site"] == site for r in self.records):
            return True
        if not site.endswith(".softmax"):
            return False
        base = site[: -len(".softmax")]  # attention softmax run fused inside the attention function
        return any(r["kind"] == "table" and r["site"] == base and r["op"] in _ATTENTION_OPS for r in self.records)

    def by_op(self, kind: str) -> dict[str, int]:
        """Elements of ``kind`` per op, largest first."""
        out: dict[str, int] = {}
        for r in self.of(kind):
            out[r["op"]] = out.get(r["op"], 0) + r["elements"]
        return dict(sorted(out.items(), key=lambda kv: (-kv[1], kv[0])))

    def summary(self) -> dict[str, Any]:
        """The figures without the per-site records: coverage, elements by kind, and per op
        what ran on tables and what ran exact on data (an evaluation's JSON carries this)."""
        return {"coverage": self.coverage, "table_elements": self.total("table"),
                "exact_elements": self.total("exact"), "static_elements": self.total("static"),
                "table_by_op": self.by_op("table"), "exact_by_op": self.by_op("exact"),
                "exact_sites": sorted({r["site"] for r in self.of("exact")})}

    def as_dict(self) -> dict[str, Any]:
        return {"coverage": self.coverage, "table_elements": self.total("table"),
                "exact_elements": self.total("exact"), "static_elements": self.total("static"),
                "table": self.of("table"), "exact": self.of("exact"), "static": self.of("static")}

    def __str__(self) -> str:
        t, e, s = self.total("table"), self.total("exact"), self.total("static")
        out = f"coverage {self.coverage:.2%}: {t} evaluations on tables, {e} exact on data, {s} static"
        exact = sorted(self.of("exact"), key=lambda r: -r["elements"])
        if exact:
            out += "; exact: " + ", ".join(f"{r['site']}#{r['op']} ({r['elements']})" for r in exact[:6])
            out += ", ..." if len(exact) > 6 else ""
        return out


class _Tracer(TorchDispatchMode):
    def __init__(self) -> None:
        super().__init__()
        self.data = WeakIdKeyDictionary()
        self.frames: list[str] = []
        self.counts: dict[tuple[str, str, str], list[int]] = {}

    def _add(self, op: str, kind: str, n: int) -> None:
        key = (self.frames[-1] if self.frames else ROOT, op, kind)
        c = self.counts.setdefault(key, [0, 0])
        c[0] += 1
        c[1] += int(n)

    def mark(self, value: Any) -> None:
        for t in tree_leaves(value):
            if isinstance(t, T):
                self.data[t] = True

    def __torch_dispatch__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        inputs = [t for t in tree_leaves((args, kwargs)) if isinstance(t, T)]
        dependent = any(t in self.data for t in inputs)
        if dependent:
            self.mark(out)
            for i, a in enumerate(func._schema.arguments):
                if a.alias_info is not None and a.alias_info.is_write:
                    v = args[i] if i < len(args) else kwargs.get(a.name)
                    for t in tree_leaves(v):
                        if isinstance(t, T):
                            self.data[t] = True
                            if t._base is not None:
                                self.data[t._base] = True
        ns = func.namespace
        name = func._schema.name.split("::")[-1]
        if ns == "nnlut":
            label, n, inner = _table_work(name, args, out)
            self._add(label, "table", n)
            if inner:
                self._add("tanh (soft-capping inside nnlut::flash_attention)", "exact" if dependent else "static", inner)
            return out
        if ns != "aten":
            return out
        work = _work(name, func, args, kwargs, out)
        if work is not None:
            op, n = work
            if op == "div" and args[1] not in self.data:  # a multiply by a precomputed reciprocal
                self._add("reciprocal", "static", args[1].numel())
            else:
                self._add(op, "exact" if dependent else "static", n)
        return out


class _Push:
    def __init__(self, tracer: _Tracer, name: str) -> None:
        self.tracer, self.name = tracer, name

    def __call__(self, module: nn.Module, args: Any) -> None:
        self.tracer.frames.append(self.name)


class _Pop:
    def __init__(self, tracer: _Tracer) -> None:
        self.tracer = tracer

    def __call__(self, module: nn.Module, args: Any, output: Any) -> None:
        if self.tracer.frames:
            self.tracer.frames.pop()


def trace_coverage(model: nn.Module, *args: Any, **kwargs: Any) -> Coverage:
    """Run ``model(*args, **kwargs)`` once (no gradients) and count its non-linear work by
    module and op (see module docstring). The forward's tensor arguments are its data."""
    return trace_run(model, lambda: model(*args, **kwargs), (args, kwargs))


def trace_run(model: nn.Module, run: Callable[[], Any], data: Any) -> Coverage:
    """:func:`trace_coverage` of ``run()``, a call that runs ``model``'s forward (``lambda:
    model(pixel_values=x).logits``); the tensors in ``data`` are its data."""
    tracer = _Tracer()
    tracer.mark(data)
    handles = []
    try:
        for name, module in model.named_modules():
            handles.append(module.register_forward_pre_hook(_Push(tracer, name or ROOT), prepend=True))
            handles.append(module.register_forward_hook(_Pop(tracer), always_call=True))
        with torch.no_grad(), tracer:
            run()
    finally:
        for h in handles:
            h.remove()
    records = [{"site": site, "op": op, "kind": kind, "calls": c, "elements": n}
               for (site, op, kind), (c, n) in tracer.counts.items()]
    return Coverage(records)
