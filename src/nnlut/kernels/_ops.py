"""The LUT ops as torch custom ops (``torch.ops.nnlut.*``), and the functions that call them.

Each op is one node to ``torch.compile`` (inductor and eager backends), ``torch.export`` and
``torch.jit.trace``. Tables are passed as int keys (:func:`._backend.key_of`), resolved at
call time, so module faces keep holding the tables themselves (deepcopy, pickle and
``torch.save`` see no kernel state). Inside an op the tensors go to the first backend that
takes them; contiguity and dtype handling live there, so a view (a transpose, a ``chunk``, an
expanded tensor) gives the values of its contiguous copy, in eager and compiled mode. Every
op returns a fresh contiguous tensor (its fake implementation says so).

Autograd: ``pwl`` has a registered backward (the segment slope). When an input needs a
gradient, the functions below use the differentiable composite form (:mod:`._reference`)
instead of the op, with the table's reference evaluation (``s[idx] * x + t[idx]``: the slope
is the derivative).

Schemas (``int`` table keys):

    pwl(Tensor x, int table) -> Tensor
    fixed(Tensor x, int table) -> Tensor
    softmax(Tensor x, int dim, int exp, int reciprocal) -> Tensor
    attention_softmax(Tensor scores, float scale, Tensor? mask, int exp, int reciprocal) -> Tensor
    attention_softmax_(Tensor(a!) scores, float scale, Tensor? mask, int exp, int reciprocal) -> ()
    layernorm(Tensor x, int[] normalized_shape, Tensor? weight, Tensor? bias, float eps, int rsqrt) -> Tensor
    rmsnorm(Tensor x, Tensor? weight, float eps, float weight_offset, int rsqrt) -> Tensor
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from .._errors import NNLUTError
from . import _cpu as _cpu  # noqa: F401  (registers the CPU backend)
from . import _reference
from . import _triton as _triton  # noqa: F401  (registers the Triton backend)
from ._backend import key_of, run, table_of

_LIB = torch.library.Library("nnlut", "DEF")
_SCHEMAS = {
    "pwl": "pwl(Tensor x, int table) -> Tensor",
    "fixed": "fixed(Tensor x, int table) -> Tensor",
    "softmax": "softmax(Tensor x, int dim, int exp, int reciprocal) -> Tensor",
    "attention_softmax": "attention_softmax(Tensor scores, float scale, Tensor? mask, int exp, int reciprocal) -> Tensor",
    "attention_softmax_": "attention_softmax_(Tensor(a!) scores, float scale, Tensor? mask, int exp, int reciprocal) -> ()",
    "layernorm": "layernorm(Tensor x, int[] normalized_shape, Tensor? weight, Tensor? bias, float eps, int rsqrt) -> Tensor",
    "rmsnorm": "rmsnorm(Tensor x, Tensor? weight, float eps, float weight_offset, int rsqrt) -> Tensor",
}


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


def _pwl_impl(x: torch.Tensor, table: int) -> torch.Tensor:
    _float_input(x, "table")
    return _fresh(run("pwl", x, table_of(table), x), x)


def _fixed_impl(x: torch.Tensor, table: int) -> torch.Tensor:
    return _fresh(run("fixed", x, table_of(table), x), x)


def _softmax_impl(x: torch.Tensor, dim: int, exp: int, reciprocal: int) -> torch.Tensor:
    _float_input(x, "softmax")
    if x.numel() == 0:  # an empty row (or no rows): nothing to normalise, as torch.softmax
        return torch.empty_like(x, memory_format=torch.contiguous_format)
    xf = x.to(_reference.compute_dtype(x))
    return _fresh(run("softmax", xf, table_of(exp), table_of(reciprocal), xf, dim).to(x.dtype), x)


def _attention_impl(scores: torch.Tensor, scale: float, mask: torch.Tensor | None, exp: int,
                    reciprocal: int) -> torch.Tensor:
    _float_input(scores, "attention softmax")
    if scores.numel() == 0:  # no queries or no keys: nothing to normalise
        return torch.empty_like(scores, memory_format=torch.contiguous_format)
    y = run("attention_softmax", scores, table_of(exp), table_of(reciprocal), scores, scale, mask, None)
    return _fresh(y.to(scores.dtype), scores, mask)  # a wider mask does not widen the result


def _attention_inplace_impl(scores: torch.Tensor, scale: float, mask: torch.Tensor | None, exp: int,
                            reciprocal: int) -> None:
    _float_input(scores, "attention softmax")
    run("attention_softmax", scores, table_of(exp), table_of(reciprocal), scores, scale, mask, scores)


def _layernorm_impl(x: torch.Tensor, normalized_shape: Sequence[int], weight: torch.Tensor | None,
                    bias: torch.Tensor | None, eps: float, rsqrt: int) -> torch.Tensor:
    _float_input(x, "layernorm")
    xf = x.to(_reference.compute_dtype(x))
    y = run("layernorm", xf, table_of(rsqrt), xf, tuple(normalized_shape), weight, bias, eps)
    return _fresh(y.to(x.dtype), x, weight, bias)


def _rmsnorm_impl(x: torch.Tensor, weight: torch.Tensor | None, eps: float, weight_offset: float,
                  rsqrt: int) -> torch.Tensor:
    _float_input(x, "rmsnorm")
    return _fresh(run("rmsnorm", x, table_of(rsqrt), x, weight, eps, weight_offset), x, weight)


def _like(x: torch.Tensor, dtype: torch.dtype | None = None) -> torch.Tensor:
    return torch.empty(x.shape, dtype=dtype or x.dtype, device=x.device)


_IMPLS = {"pwl": _pwl_impl, "fixed": _fixed_impl, "softmax": _softmax_impl, "attention_softmax": _attention_impl,
          "attention_softmax_": _attention_inplace_impl, "layernorm": _layernorm_impl, "rmsnorm": _rmsnorm_impl}
_FAKES = {
    "pwl": lambda x, table: _like(x),
    "fixed": lambda x, table: _like(x),
    "softmax": lambda x, dim, exp, reciprocal: _like(x),
    "attention_softmax": lambda scores, scale, mask, exp, reciprocal: _like(scores),
    "attention_softmax_": lambda scores, scale, mask, exp, reciprocal: None,
    "layernorm": lambda x, shape, weight, bias, eps, rsqrt: _like(x),
    "rmsnorm": lambda x, weight, eps, off, rsqrt: _like(
        x, x.dtype if weight is None else torch.promote_types(weight.dtype, x.dtype)),
}
for _name, _schema in _SCHEMAS.items():
    _LIB.define(_schema)
    _LIB.impl(_name, _IMPLS[_name], "CompositeExplicitAutograd")
    torch.library.register_fake(f"nnlut::{_name}", _FAKES[_name], lib=_LIB)


def _pwl_setup(ctx: Any, inputs: tuple, output: torch.Tensor) -> None:
    ctx.save_for_backward(inputs[0])
    ctx.table = inputs[1]


def _pwl_backward(ctx: Any, grad: torch.Tensor) -> tuple:
    """The segment slope of the table at each input (the derivative of ``s[idx] * x + t[idx]``)."""
    (x,) = ctx.saved_tensors
    with torch.enable_grad():
        u = x.detach().requires_grad_(True)
        (g,) = torch.autograd.grad(_ref(table_of(ctx.table))(u), u, grad)
    return g, None


torch.library.register_autograd("nnlut::pwl", _pwl_backward, setup_context=_pwl_setup, lib=_LIB)

_OPS = torch.ops.nnlut
_PWL, _FIXED, _SOFTMAX = _OPS.pwl.default, _OPS.fixed.default, _OPS.softmax.default
_ATTENTION, _ATTENTION_, _LAYERNORM, _RMSNORM = (_OPS.attention_softmax.default, _OPS.attention_softmax_.default,
                                                 _OPS.layernorm.default, _OPS.rmsnorm.default)


# ---------------------------------------------------------------------------- entry points
def _grad(*ts: Any) -> bool:
    return torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in ts)


def _ref(table: Any) -> _reference.Unary:
    from ..core._eval import evaluate_reference

    return lambda u: evaluate_reference(table, u)


def pwl(table: Any, x: torch.Tensor) -> torch.Tensor:
    """A float table (:class:`~nnlut.core.Table`) on a tensor of any shape, strides, floating
    dtype and device: one op (differentiable reference when ``x`` needs a gradient)."""
    if _grad(x):
        return _ref(table)(x)
    y = _cpu.eager_pwl(table, x)  # plain eager CPU calls skip the op's dispatch (same values)
    return _PWL(x, key_of(table)) if y is None else y


_FIXED_FIELDS = ("fmt", "bp", "s", "t", "scaling", "limits")


def is_fixed_table(table: Any) -> bool:
    """Whether ``table`` is a fixed-point table the ``fixed`` op reads (the fields of
    :class:`nnlut.fixed.FixedTable`: ``fmt``, integer ``bp``/``s``/``t``, ``scaling``,
    ``limits``)."""
    return all(hasattr(table, f) for f in _FIXED_FIELDS)


def fixed(table: Any, x: torch.Tensor) -> torch.Tensor:
    """A fixed-point table (:class:`nnlut.fixed.FixedTable`) on a floating tensor: one op (the
    table's own evaluation, which has no gradient, when ``x`` needs one)."""
    if _grad(x):
        return table(x)
    y = _cpu.eager_fixed(table, x)  # plain eager CPU calls skip the op's dispatch (same values)
    return _FIXED(x, key_of(table)) if y is None else y


def softmax(x: torch.Tensor, dim: int, exp: Any, reciprocal: Any) -> torch.Tensor:
    """LUT softmax along ``dim`` from an exp and a reciprocal table: one op."""
    if _grad(x):
        return _reference.softmax(x, dim, _ref(exp), _ref(reciprocal))
    return _SOFTMAX(x, dim, key_of(exp), key_of(reciprocal))


def attention_softmax(scores: torch.Tensor, scale: float, mask: torch.Tensor | None, exp: Any, reciprocal: Any,
                      inplace: bool = False) -> torch.Tensor:
    """``softmax_lut(scores * scale + mask[..., :keys])`` over the last dim of (batch, heads,
    queries, keys) scores: one op. ``inplace``: overwrite ``scores`` (a contiguous temporary)
    with the probabilities and return it."""
    if _grad(scores, mask):
        return _reference.attention_softmax(scores, scale, mask, _ref(exp), _ref(reciprocal))
    if inplace and scores.is_contiguous():
        _ATTENTION_(scores, float(scale), mask, key_of(exp), key_of(reciprocal))
        return scores
    return _ATTENTION(scores, float(scale), mask, key_of(exp), key_of(reciprocal))


def layernorm(x: torch.Tensor, normalized_shape: Sequence[int], weight: torch.Tensor | None,
              bias: torch.Tensor | None, eps: float, rsqrt: Any) -> torch.Tensor:
    """LUT LayerNorm over the trailing ``normalized_shape`` dims: one op."""
    if _grad(x, weight, bias):
        return _reference.layernorm(x, normalized_shape, weight, bias, eps, _ref(rsqrt))
    return _LAYERNORM(x, [int(n) for n in normalized_shape], weight, bias, float(eps), key_of(rsqrt))


def rmsnorm(x: torch.Tensor, weight: torch.Tensor | None, eps: float, rsqrt: Any,
            weight_offset: float = 0.0) -> torch.Tensor:
    """LUT RMSNorm over the last dim (LLaMA style, see :func:`._reference.rmsnorm`): one op."""
    if _grad(x, weight):
        return _reference.rmsnorm(x, weight, eps, _ref(rsqrt), weight_offset)
    return _RMSNORM(x, weight, float(eps), float(weight_offset), key_of(rsqrt))


__all__ = ["attention_softmax", "fixed", "is_fixed_table", "layernorm", "pwl", "rmsnorm", "softmax"]
