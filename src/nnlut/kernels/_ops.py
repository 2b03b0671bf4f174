"""The LUT ops as torch custom ops (``torch.ops.nnlut.*``), and the functions that call them.

Each op is one node to ``torch.compile`` (inductor and eager backends), ``torch.export`` and
``torch.jit.trace``, and its tables are its inputs: each table is passed as four arguments
(``<name>_breakpoints``, ``<name>_slopes``, ``<name>_intercepts``: tensors; ``<name>_layout``:
a JSON string with the rest of the table, see :mod:`._args`). An exported program therefore
carries every table's numbers and runs in any process that imports nnlut. Inside an op the
tensors go to the first backend that takes them; contiguity and dtype handling live there, so
a view (a transpose, a ``chunk``, an expanded tensor) gives the values of its contiguous copy,
in eager and compiled mode. Every op returns a fresh contiguous tensor (its fake
implementation says so).

Autograd: every op except the in-place ``attention_softmax_`` has a registered backward: the
gradient of its composite form (:mod:`._reference`) with each table evaluated by torch
operations on the op's own table tensors (``s[idx] * x + t[idx]``), so the derivative of a
table is its segment slope (for a fixed-point table, the slope of its real-valued segment).
The backward is traceable (``torch.compile``, AOT autograd, ``torch.export``).

Schemas (``T(name)`` stands for ``Tensor name_breakpoints, Tensor name_slopes, Tensor
name_intercepts, str name_layout``):

    pwl(Tensor x, T(table)) -> Tensor
    fixed(Tensor x, T(table)) -> Tensor
    half(Tensor x, T(table)) -> Tensor
    softmax(Tensor x, int dim, T(exp), T(reciprocal)) -> Tensor
    attention_softmax(Tensor scores, float scale, Tensor? mask, T(exp), T(reciprocal)) -> Tensor
    attention_softmax_(Tensor(a!) scores, float scale, Tensor? mask, T(exp), T(reciprocal)) -> ()
    layernorm(Tensor x, int[] normalized_shape, Tensor? weight, Tensor? bias, float eps, T(rsqrt)) -> Tensor
    rmsnorm(Tensor x, Tensor? weight, float eps, float weight_offset, T(rsqrt)) -> Tensor
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

from .._errors import NNLUTError
from . import _cpu as _cpu  # noqa: F401  (registers the CPU backend)
from . import _reference
from . import _triton as _triton  # noqa: F401  (registers the Triton backend)
from ._args import table_args, table_from_args, traced_table
from ._backend import run


def _t(name: str) -> str:
    return f"Tensor {name}_breakpoints, Tensor {name}_slopes, Tensor {name}_intercepts, str {name}_layout"


_LIB = torch.library.Library("nnlut", "DEF")
# op -> (schema, number of arguments before the tables, table names)
_SPECS: dict[str, tuple[str, int, tuple[str, ...]]] = {
    "pwl": (f"pwl(Tensor x, {_t('table')}) -> Tensor", 1, ("table",)),
    "fixed": (f"fixed(Tensor x, {_t('table')}) -> Tensor", 1, ("table",)),
    "half": (f"half(Tensor x, {_t('table')}) -> Tensor", 1, ("table",)),
    "softmax": (f"softmax(Tensor x, int dim, {_t('exp')}, {_t('reciprocal')}) -> Tensor", 2, ("exp", "reciprocal")),
    "attention_softmax": (f"attention_softmax(Tensor scores, float scale, Tensor? mask, {_t('exp')}, "
                          f"{_t('reciprocal')}) -> Tensor", 3, ("exp", "reciprocal")),
    "attention_softmax_": (f"attention_softmax_(Tensor(a!) scores, float scale, Tensor? mask, {_t('exp')}, "
                           f"{_t('reciprocal')}) -> ()", 3, ("exp", "reciprocal")),
    "layernorm": (f"layernorm(Tensor x, int[] normalized_shape, Tensor? weight, Tensor? bias, float eps, "
                  f"{_t('rsqrt')}) -> Tensor", 5, ("rsqrt",)),
    "rmsnorm": (f"rmsnorm(Tensor x, Tensor? weight, float eps, float weight_offset, {_t('rsqrt')}) -> Tensor", 4,
                ("rsqrt",)),
}


def _split(n: int, args: tuple, resolve: Callable[..., Any]) -> tuple[tuple, list[Any]]:
    """(plain arguments, tables) of an op call whose first ``n`` arguments are not tables;
    ``resolve`` maps the four arguments of a table to what the body takes."""
    tabs = [resolve(*args[i:i + 4]) for i in range(n, len(args), 4)]
    return tuple(args[:n]), tabs


def _fresh(y: torch.Tensor, *inputs: Any) -> torch.Tensor:
    """``y`` as a contiguous tensor that aliases no input (what the schemas promise)."""
    if not y.is_contiguous():
        return y.contiguous()
    for t in inputs:
        if y is t:
            return y.clone()
    return y


def _float_input(x: torch.Tensor, what: str) -> None:
    if not x.is_floating_point():
        raise NNLUTError(f"{what} input must be a floating-point tensor, got {x.dtype}")


# ---------------------------------------------------------------------------- op bodies (tables as objects)
def _pwl_body(x: torch.Tensor, table: Any) -> torch.Tensor:
    _float_input(x, "table")
    return _fresh(run("pwl", x, table, x), x)


def _fixed_body(x: torch.Tensor, table: Any) -> torch.Tensor:
    return _fresh(run("fixed", x, table, x), x)


def _half_body(x: torch.Tensor, table: Any) -> torch.Tensor:
    _float_input(x, "table")
    return _fresh(run("half", x, table, x), x)


def _softmax_body(x: torch.Tensor, dim: int, exp: Any, reciprocal: Any) -> torch.Tensor:
    _float_input(x, "softmax")
    if x.numel() == 0:  # an empty row (or no rows): nothing to normalise, as torch.softmax
        return torch.empty_like(x, memory_format=torch.contiguous_format)
    xf = x.to(_reference.compute_dtype(x))
    return _fresh(run("softmax", xf, exp, reciprocal, xf, dim).to(x.dtype), x)


def _attention_body(scores: torch.Tensor, scale: float, mask: torch.Tensor | None, exp: Any,
                    reciprocal: Any) -> torch.Tensor:
    _float_input(scores, "attention softmax")
    if scores.numel() == 0:  # no queries or no keys: nothing to normalise
        return torch.empty_like(scores, memory_format=torch.contiguous_format)
    y = run("attention_softmax", scores, exp, reciprocal, scores, scale, mask, None)
    return _fresh(y.to(scores.dtype), scores, mask)  # a wider mask does not widen the result


def _attention_inplace_body(scores: torch.Tensor, scale: float, mask: torch.Tensor | None, exp: Any,
                            reciprocal: Any) -> None:
    _float_input(scores, "attention softmax")
    run("attention_softmax", scores, exp, reciprocal, scores, scale, mask, scores)


def _layernorm_body(x: torch.Tensor, normalized_shape: Sequence[int], weight: torch.Tensor | None,
                    bias: torch.Tensor | None, eps: float, rsqrt: Any) -> torch.Tensor:
    _float_input(x, "layernorm")
    xf = x.to(_reference.compute_dtype(x))
    y = run("layernorm", xf, rsqrt, xf, tuple(normalized_shape), weight, bias, eps)
    return _fresh(y.to(x.dtype), x, weight, bias)


def _rmsnorm_body(x: torch.Tensor, weight: torch.Tensor | None, eps: float, weight_offset: float,
                  rsqrt: Any) -> torch.Tensor:
    _float_input(x, "rmsnorm")
    return _fresh(run("rmsnorm", x, rsqrt, x, weight, eps, weight_offset), x, weight)


def _like(x: torch.Tensor, dtype: torch.dtype | None = None) -> torch.Tensor:
    return torch.empty(x.shape, dtype=dtype or x.dtype, device=x.device)


_BODIES: dict[str, Callable[..., Any]] = {
    "pwl": _pwl_body, "fixed": _fixed_body, "half": _half_body, "softmax": _softmax_body, "attention_softmax": _attention_body,
    "attention_softmax_": _attention_inplace_body, "layernorm": _layernorm_body, "rmsnorm": _rmsnorm_body}
_FAKES: dict[str, Callable[..., Any]] = {
    "pwl": lambda x: _like(x),
    "fixed": lambda x: _like(x),
    "half": lambda x: _like(x),
    "softmax": lambda x, dim: _like(x),
    "attention_softmax": lambda scores, scale, mask: _like(scores),
    "attention_softmax_": lambda scores, scale, mask: None,
    "layernorm": lambda x, shape, weight, bias, eps: _like(x),
    "rmsnorm": lambda x, weight, eps, off: _like(
        x, x.dtype if weight is None else torch.promote_types(weight.dtype, x.dtype)),
}


def _impl(name: str) -> Callable[..., Any]:
    def impl(*args: Any) -> Any:
        plain, tabs = _split(_SPECS[name][1], args, table_from_args)
        return _BODIES[name](*plain, *tabs)

    return impl


def _fake(name: str) -> Callable[..., Any]:
    def fake(*args: Any) -> Any:
        return _FAKES[name](*args[:_SPECS[name][1]])

    return fake


for _name, (_schema, _, _) in _SPECS.items():
    _LIB.define(_schema)
    _LIB.impl(_name, _impl(_name), "CompositeExplicitAutograd")
    torch.library.register_fake(f"nnlut::{_name}", _fake(_name), lib=_LIB)


# ---------------------------------------------------------------------------- autograd
def _traced_fn(bp: torch.Tensor, s: torch.Tensor, t: torch.Tensor, layout: str) -> _reference.Unary:
    from ..core._eval import evaluate_reference

    view = traced_table(bp, s, t, layout)
    return lambda u: evaluate_reference(view, u)


# the differentiable composite of each op, with its tables as callables
_COMPOSITES: dict[str, Callable[..., torch.Tensor]] = {
    "pwl": lambda x, f: f(x),
    "fixed": lambda x, f: f(x).to(x.dtype),
    "half": lambda x, f: f(x).to(x.dtype),
    "softmax": _reference.softmax,
    "attention_softmax": _reference.attention_softmax,
    "layernorm": _reference.layernorm,
    "rmsnorm": lambda x, w, eps, off, f: _reference.rmsnorm(x, w, eps, f, off),
}


def _setup(ctx: Any, inputs: tuple, output: Any) -> None:
    ctx.nontensor = [None if isinstance(a, torch.Tensor) else a for a in inputs]
    ctx.save_for_backward(*[a if isinstance(a, torch.Tensor) else None for a in inputs])


def _backward(n: int, composite: Callable[..., torch.Tensor]) -> Callable[..., tuple]:
    def backward(ctx: Any, grad: torch.Tensor) -> tuple:
        """The gradient of the op's composite form (tables: their segment slopes)."""
        needs = ctx.needs_input_grad
        with torch.enable_grad():
            args = []
            for i, (a, t) in enumerate(zip(ctx.nontensor, ctx.saved_tensors, strict=True)):
                if t is None:
                    args.append(a)
                else:
                    t = t.detach()
                    args.append(t.requires_grad_(True) if i < n and needs[i] and t.is_floating_point() else t)
            plain, fns = _split(n, tuple(args), _traced_fn)
            wrt = [a for a in plain if isinstance(a, torch.Tensor) and a.requires_grad]
            grads = iter(torch.autograd.grad(composite(*plain, *fns), wrt, grad, allow_unused=True) if wrt else ())
        return tuple(next(grads) if isinstance(a, torch.Tensor) and a.requires_grad else None for a in args)

    return backward


def register_composite_autograd(name: str, n: int, composite: Callable[..., torch.Tensor],
                                lib: torch.library.Library) -> None:
    """Register the backward of op ``nnlut::name`` (its first ``n`` arguments are not tables)
    as the gradient of ``composite(*plain_arguments, *tables_as_callables)``."""
    torch.library.register_autograd(f"nnlut::{name}", _backward(n, composite), setup_context=_setup, lib=lib)


for _name, _composite in _COMPOSITES.items():
    register_composite_autograd(_name, _SPECS[_name][1], _composite, _LIB)


_OPS = torch.ops.nnlut
_PWL, _FIXED, _HALF, _SOFTMAX = _OPS.pwl.default, _OPS.fixed.default, _OPS.half.default, _OPS.softmax.default
_ATTENTION, _ATTENTION_, _LAYERNORM, _RMSNORM = (_OPS.attention_softmax.default, _OPS.attention_softmax_.default,
                                                 _OPS.layernorm.default, _OPS.rmsnorm.default)


# ---------------------------------------------------------------------------- entry points
def _grad(*ts: Any) -> bool:
    return torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in ts)


def _plain(*ts: Any) -> bool:
    """Whether nothing can observe this call (no compiling, tracing, torch-function or dispatch
    mode, no tensor subclass, no gradient): then the op's body runs without the dispatcher,
    with the same values. (The compiling check comes first: dynamo folds it to True.)"""
    if _cpu._IS_COMPILING() or _cpu._LEN_DISPATCH() or _cpu._FUNCTION_MODE() or _cpu._IS_TRACING():
        return False
    grad = torch.is_grad_enabled()
    return all(t is None or (type(t) is torch.Tensor and not (grad and t.requires_grad)) for t in ts)


def pwl(table: Any, x: torch.Tensor) -> torch.Tensor:
    """A float table (:class:`~nnlut.core.Table`) on a tensor of any shape, strides, floating
    dtype and device: one op (differentiable: the gradient is the segment slope)."""
    if not (x.requires_grad and torch.is_grad_enabled()):
        y = _cpu.eager_pwl(table, x)  # plain eager CPU calls skip the op's dispatch (same values)
        if y is not None:
            return y
    return _PWL(x, *table_args(table))


_FIXED_FIELDS = ("fmt", "bp", "s", "t", "scaling", "limits")


def is_fixed_table(table: Any) -> bool:
    """Whether ``table`` is a fixed-point table the ``fixed`` op reads (the fields of
    :class:`nnlut.fixed.FixedTable`: ``fmt``, integer ``bp``/``s``/``t``, ``scaling``,
    ``limits``)."""
    return all(hasattr(table, f) for f in _FIXED_FIELDS)


def fixed(table: Any, x: torch.Tensor) -> torch.Tensor:
    """A fixed-point table (:class:`nnlut.fixed.FixedTable`) on a floating tensor: one op
    (differentiable: the gradient is the slope of the table's real-valued segment)."""
    if not (x.requires_grad and torch.is_grad_enabled()):
        y = _cpu.eager_fixed(table, x)  # plain eager CPU calls skip the op's dispatch (same values)
        if y is not None:
            return y
    return _FIXED(x, *table_args(table))


def is_half_table(table: Any) -> bool:
    """Whether ``table`` is a half-precision table the ``half`` op reads (the fields of
    :class:`nnlut.fixed.HalfTable`: ``precision``, ``bp``/``s``/``t``, ``source``)."""
    return all(hasattr(table, f) for f in ("precision", "bp", "s", "t", "source"))


def half(table: Any, x: torch.Tensor) -> torch.Tensor:
    """A half-precision table (:class:`nnlut.fixed.HalfTable`) on a floating tensor: one op
    (differentiable: the gradient is the segment slope)."""
    return _HALF(x, *table_args(table))


def softmax(x: torch.Tensor, dim: int, exp: Any, reciprocal: Any) -> torch.Tensor:
    """LUT softmax along ``dim`` from an exp and a reciprocal table: one op."""
    if _plain(x):
        return _softmax_body(x, dim, exp, reciprocal)
    return _SOFTMAX(x, dim, *table_args(exp), *table_args(reciprocal))


def attention_softmax(scores: torch.Tensor, scale: float, mask: torch.Tensor | None, exp: Any, reciprocal: Any,
                      inplace: bool = False) -> torch.Tensor:
    """``softmax_lut(scores * scale + mask[..., :keys])`` over the last dim of (batch, heads,
    queries, keys) scores: one op. ``inplace``: overwrite ``scores`` (a contiguous temporary)
    with the probabilities and return it (not where an input needs a gradient)."""
    if _plain(scores, mask):
        if inplace and scores.is_contiguous():
            _attention_inplace_body(scores, float(scale), mask, exp, reciprocal)
            return scores
        return _attention_body(scores, float(scale), mask, exp, reciprocal)
    if inplace and scores.is_contiguous() and not _grad(scores, mask):
        _ATTENTION_(scores, float(scale), mask, *table_args(exp), *table_args(reciprocal))
        return scores
    return _ATTENTION(scores, float(scale), mask, *table_args(exp), *table_args(reciprocal))


def layernorm(x: torch.Tensor, normalized_shape: Sequence[int], weight: torch.Tensor | None,
              bias: torch.Tensor | None, eps: float, rsqrt: Any) -> torch.Tensor:
    """LUT LayerNorm over the trailing ``normalized_shape`` dims: one op."""
    if _plain(x, weight, bias):
        return _layernorm_body(x, normalized_shape, weight, bias, float(eps), rsqrt)
    return _LAYERNORM(x, [int(n) for n in normalized_shape], weight, bias, float(eps), *table_args(rsqrt))


def rmsnorm(x: torch.Tensor, weight: torch.Tensor | None, eps: float, rsqrt: Any,
            weight_offset: float = 0.0) -> torch.Tensor:
    """LUT RMSNorm over the last dim (LLaMA style, see :func:`._reference.rmsnorm`): one op."""
    if _plain(x, weight):
        return _rmsnorm_body(x, weight, float(eps), float(weight_offset), rsqrt)
    return _RMSNORM(x, weight, float(eps), float(weight_offset), *table_args(rsqrt))


__all__ = ["attention_softmax", "fixed", "half", "is_fixed_table", "is_half_table", "layernorm", "pwl", "rmsnorm",
           "softmax"]
