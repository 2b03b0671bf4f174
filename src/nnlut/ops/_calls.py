"""Non-linear *calls* on tables: what a model's code computes with ``torch.exp``, ``F.softplus``,
``x.tanh()``, ``a / b`` and friends, built from the same tables as the module ops.

Each call kind (:data:`CALLS`) names the table functions it reads and an evaluator
``fn(tables, x, **options)`` where ``tables`` maps function name -> table (a float
:class:`~nnlut.core.Table`, a fixed-point table, or any callable on tensors). Evaluation is in
float32 (float64 stays float64) and the result has the input's dtype.

- ``exp``: power-of-two range reduction, ``exp(x) = 2**k * exp(r)`` with ``k = ceil(x / ln 2)``
  and ``r`` in ``(-ln 2, 0]`` on the exp table (the softmax table); ``2**k`` is put together
  from its exponent bits, so no transcendental unit is involved and every real input is served
  (underflow gives 0, overflow inf). An SSM decay ``exp(dt * A)`` (``dt * A <= 0``) is one of
  these; ``expm1`` is ``exp - 1``; ``log`` is the log table on the mantissa in ``[1, 2)`` plus
  the binary exponent times ln 2.
- ``sigmoid``, ``tanh``, ``gelu``, ``gelu_tanh``, ``softplus``, ``erf``: one table each; ``silu``
  is ``x * sigmoid(x)`` (relative error near 0, where a table of silu itself has its absolute
  error: linear-attention and SSM mixers apply it to small convolution outputs that an L2 norm
  then scales up).
- ``rsqrt`` and ``reciprocal``: their tables with input scaling (every positive input); ``sqrt``
  is ``x * rsqrt(x)`` (0 at 0); a division ``a / b`` is ``a * reciprocal(b)``; ``x ** 0.5``,
  ``x ** -0.5`` and ``x ** -1`` are these.
- ``softmax``: the LUT softmax (exp and reciprocal tables); ``log_softmax``: ``(x - max) -
  log(sum exp(x - max))`` with the log of the sum from a log table on ``[1, 2)`` and the sum's
  binary exponent; ``logsumexp`` the same without the subtraction; ``logsigmoid`` is
  ``-softplus(-x)``.
- ``glu``: ``a * sigmoid(b)``; ``normalize`` (``F.normalize``, ``p=2``): ``x * rsqrt(sum x**2)``.
- ``layer_norm`` and ``rms_norm`` (the functional forms): the LUT norms on the rsqrt table.
- ``sdpa`` (``F.scaled_dot_product_attention`` called directly): attention with the LUT softmax.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..core._functions import Tail, _erf, list_functions, register_function
from ._lut import _as_fn, lut_layernorm, lut_rmsnorm, lut_softmax

_LN2 = math.log(2.0)


def _compute(x: torch.Tensor) -> torch.Tensor:
    return x if x.dtype in (torch.float32, torch.float64) else x.float()


def _softplus_ref(x: np.ndarray) -> np.ndarray:
    return np.logaddexp(0.0, x)


# functions the call kinds need besides the module ops' (registered once, unless already known)
EXTRA_FUNCTIONS: dict[str, dict[str, Any]] = {
    "softplus": dict(fn=_softplus_ref, domain=(-12.0, 12.0),
                     tails=(Tail("asymptote", 0.0, 0.0), Tail("asymptote", 1.0, 0.0)), limits=(0.0, math.inf)),
    "erf": dict(fn=_erf, domain=(-4.0, 4.0),
                tails=(Tail("asymptote", 0.0, -1.0), Tail("asymptote", 0.0, 1.0)), limits=(-1.0, 1.0)),
    "log": dict(fn=np.log, domain=(1.0, 2.0)),  # log of a mantissa in [1, 2); the exponent adds k ln 2
}


def register_extra_functions() -> None:
    """Make the call kinds' own table functions known to ``nnlut.fit`` (idempotent)."""
    known = set(list_functions())
    for name, spec in EXTRA_FUNCTIONS.items():
        if name not in known:
            register_function(name, **spec)


def _table(tables: Mapping[str, Any], name: str) -> Callable[[torch.Tensor], torch.Tensor]:
    return _as_fn(tables[name])


def _pow2(k: torch.Tensor) -> torch.Tensor:
    """``2**k`` (float32) for integral float ``k``, from its exponent bits: 0 below 2**-126 and
    inf above 2**127."""
    bits = (k + 127.0).clamp(0.0, 255.0).to(torch.int32) << 23
    return bits.view(torch.float32)


def exp_call(tables: Mapping[str, Any], x: torch.Tensor) -> torch.Tensor:
    xf = _compute(x).float()
    xc = xf.clamp(-104.0, 89.0)  # 2**-150 .. 2**128: 0 and inf after scaling
    k = torch.ceil(xc * (1.0 / _LN2))
    r = (xc - k * _LN2).clamp(max=0.0)
    y = _table(tables, "exp")(r) * _pow2(k)
    return y.to(x.dtype)


def expm1_call(tables: Mapping[str, Any], x: torch.Tensor) -> torch.Tensor:
    return (exp_call(tables, _compute(x)) - 1.0).to(x.dtype)


def log_call(tables: Mapping[str, Any], x: torch.Tensor) -> torch.Tensor:
    """``log x`` from the log table on the mantissa in ``[1, 2)`` plus the binary exponent
    times ln 2; -inf at 0 and NaN below, as ``torch.log``."""
    xf = _compute(x)
    m, e = torch.frexp(xf)  # x = m * 2**e, m in [0.5, 1)
    y = _table(tables, "log")(2.0 * m) + (e - 1).to(m.dtype) * _LN2
    y = torch.where(xf > 0, y, torch.where(xf == 0, float("-inf"), float("nan")))
    return y.to(x.dtype)


def silu_call(tables: Mapping[str, Any], x: torch.Tensor) -> torch.Tensor:
    """``x * sigmoid(x)`` on the sigmoid table: the error is relative near 0, where calls take
    small inputs (an SSM's or a linear attention's convolution output before an L2 norm)."""
    xf = _compute(x)
    return (xf * _table(tables, "sigmoid")(xf)).to(x.dtype)


def glu_call(tables: Mapping[str, Any], x: torch.Tensor, dim: int = -1) -> torch.Tensor:
    a, b = _compute(x).chunk(2, dim=dim)
    return (a * _table(tables, "sigmoid")(b)).to(x.dtype)


def normalize_call(tables: Mapping[str, Any], x: torch.Tensor, dim: int = 1, eps: float = 1e-12) -> torch.Tensor:
    """``F.normalize`` with ``p=2``: ``x * rsqrt(max(sum x**2, eps**2))``."""
    xf = _compute(x)
    s = (xf * xf).sum(dim=dim, keepdim=True).clamp_min(eps * eps)
    return (xf * _table(tables, "rsqrt")(s)).to(x.dtype)


def _unary(name: str) -> Callable[..., torch.Tensor]:
    def call(tables: Mapping[str, Any], x: torch.Tensor) -> torch.Tensor:
        return _table(tables, name)(_compute(x)).to(x.dtype)

    call.__name__ = f"{name}_call"
    return call


def softplus_call(tables: Mapping[str, Any], x: torch.Tensor, beta: float = 1.0,
                  threshold: float = 20.0) -> torch.Tensor:
    xf = _compute(x)
    bx = xf * beta if beta != 1.0 else xf
    y = _table(tables, "softplus")(bx)
    if beta != 1.0:
        y = y / beta
    return torch.where(bx > threshold, xf, y).to(x.dtype)


def sqrt_call(tables: Mapping[str, Any], x: torch.Tensor) -> torch.Tensor:
    xf = _compute(x)
    y = xf * _table(tables, "rsqrt")(xf)
    return torch.where(xf == 0, xf, y).to(x.dtype)


def reciprocal_call(tables: Mapping[str, Any], x: torch.Tensor) -> torch.Tensor:
    return _table(tables, "reciprocal")(_compute(x)).to(x.dtype)


def _division_dtype(a: Any, b: torch.Tensor) -> torch.dtype:
    """``torch.result_type(a, b)`` for a floating divisor ``b``, in what dynamo traces: a number
    takes ``b``'s dtype, as does a zero-dimensional tensor of a category no higher beside a
    dimensioned ``b`` (and the other way round); otherwise the promoted dtype."""
    if not isinstance(a, torch.Tensor):
        return b.dtype
    if (a.dim() == 0) != (b.dim() == 0):
        zero, full = (a, b) if a.dim() == 0 else (b, a)
        if full.is_floating_point() or not zero.is_floating_point():
            return full.dtype
    return torch.promote_types(a.dtype, b.dtype)


def divide_call(tables: Mapping[str, Any], b: torch.Tensor, a: Any) -> torch.Tensor:
    """``a / b`` as ``a * reciprocal(b)`` (divisor first; ``a`` a tensor or a number), in the
    dtype torch's division gives."""
    dtype = _division_dtype(a, b) if torch.compiler.is_dynamo_compiling() else torch.result_type(a, b)
    r = _table(tables, "reciprocal")(_compute(b))
    return (a * r).to(dtype)


def softmax_call(tables: Mapping[str, Any], x: torch.Tensor, dim: int) -> torch.Tensor:
    return lut_softmax(x, dim, tables["exp"], tables["reciprocal"])


def logsumexp_call(tables: Mapping[str, Any], x: torch.Tensor, dim: Any, keepdim: bool = False) -> torch.Tensor:
    """``max + log(sum exp(x - max))`` along ``dim`` (the sum is at least 1: the log of its
    mantissa and exponent)."""
    xf = _compute(x)
    m = xf.amax(dim=dim, keepdim=True)
    s = _table(tables, "exp")(xf - m).sum(dim=dim, keepdim=True)
    mant, e = torch.frexp(s)
    y = m + _table(tables, "log")(2.0 * mant) + (e - 1).to(mant.dtype) * _LN2
    return (y if keepdim else y.squeeze(dim) if isinstance(dim, int) else y.squeeze(tuple(dim))).to(x.dtype)


def logsigmoid_call(tables: Mapping[str, Any], x: torch.Tensor) -> torch.Tensor:
    """``log sigmoid(x) = -softplus(-x)``."""
    return (-_table(tables, "softplus")(-_compute(x))).to(x.dtype)


def log_softmax_call(tables: Mapping[str, Any], x: torch.Tensor, dim: int) -> torch.Tensor:
    xf = _compute(x)
    z = xf - xf.amax(dim=dim, keepdim=True)
    s = _table(tables, "exp")(z).sum(dim=dim, keepdim=True)  # >= 1: the max entry gives exp(0)
    m, e = torch.frexp(s)  # s = m * 2**e, m in [0.5, 1)
    log_s = _table(tables, "log")(2.0 * m) + (e - 1).to(m.dtype) * _LN2
    return (z - log_s).to(x.dtype)


def layer_norm_call(tables: Mapping[str, Any], x: torch.Tensor, normalized_shape: Any, weight: Any = None,
                    bias: Any = None, eps: float = 1e-5) -> torch.Tensor:
    return lut_layernorm(x, normalized_shape, weight, bias, eps, tables["rsqrt"])


def rms_norm_call(tables: Mapping[str, Any], x: torch.Tensor, weight: Any = None, eps: float | None = None) -> torch.Tensor:
    """``F.rms_norm`` over the last dimension."""
    eps = torch.finfo(x.dtype).eps if eps is None else eps
    return lut_rmsnorm(x, weight, eps, tables["rsqrt"])


def sdpa_call(tables: Mapping[str, Any], q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
              attn_mask: torch.Tensor | None = None, dropout_p: float = 0.0, is_causal: bool = False,
              scale: float | None = None, enable_gqa: bool = False) -> torch.Tensor:
    """``F.scaled_dot_product_attention`` with the LUT softmax: scores in float32, masks as SDPA
    reads them (boolean keep-mask or additive), a query whose keys are all masked gets zeros."""
    qf, kf, vf = _compute(q), _compute(k), _compute(v)
    if enable_gqa and kf.shape[-3] != qf.shape[-3]:
        kf = kf.repeat_interleave(qf.shape[-3] // kf.shape[-3], dim=-3)
        vf = vf.repeat_interleave(qf.shape[-3] // vf.shape[-3], dim=-3)
    s = (qf @ kf.transpose(-2, -1)) * (qf.shape[-1] ** -0.5 if scale is None else scale)
    keep = None
    if is_causal:
        keep = torch.ones(qf.shape[-2], kf.shape[-2], dtype=torch.bool, device=q.device).tril()
    if attn_mask is not None and attn_mask.dtype == torch.bool:
        keep = attn_mask if keep is None else keep & attn_mask
    elif attn_mask is not None:
        s = s + attn_mask.to(s.dtype)
    if keep is not None:
        s = s.masked_fill(~keep, torch.finfo(s.dtype).min)
    p = lut_softmax(s, -1, tables["exp"], tables["reciprocal"])
    if keep is not None:
        p = p * keep.any(dim=-1, keepdim=True).to(p.dtype)
    if attn_mask is not None and attn_mask.dtype != torch.bool:
        p = p * (attn_mask > torch.finfo(attn_mask.dtype).min / 2).any(dim=-1, keepdim=True).to(p.dtype)
    if dropout_p > 0.0:
        p = torch.nn.functional.dropout(p, dropout_p)
    return (p @ vf).to(q.dtype)


@dataclass(frozen=True)
class CallKind:
    """One kind of non-linear call: the table functions it reads and its evaluator."""

    name: str
    functions: tuple[str, ...]
    evaluate: Callable[..., torch.Tensor]


CALLS: dict[str, CallKind] = {c.name: c for c in (
    CallKind("softmax", ("exp", "reciprocal"), softmax_call),
    CallKind("log_softmax", ("exp", "log"), log_softmax_call),
    CallKind("logsumexp", ("exp", "log"), logsumexp_call),
    CallKind("logsigmoid", ("softplus",), logsigmoid_call),
    CallKind("exp", ("exp",), exp_call),
    CallKind("expm1", ("exp",), expm1_call),
    CallKind("log", ("log",), log_call),
    CallKind("sigmoid", ("sigmoid",), _unary("sigmoid")),
    CallKind("tanh", ("tanh",), _unary("tanh")),
    CallKind("silu", ("sigmoid",), silu_call),
    CallKind("glu", ("sigmoid",), glu_call),
    CallKind("normalize", ("rsqrt",), normalize_call),
    CallKind("gelu", ("gelu",), _unary("gelu")),
    CallKind("gelu_tanh", ("gelu_tanh",), _unary("gelu_tanh")),
    CallKind("softplus", ("softplus",), softplus_call),
    CallKind("erf", ("erf",), _unary("erf")),
    CallKind("rsqrt", ("rsqrt",), _unary("rsqrt")),
    CallKind("sqrt", ("rsqrt",), sqrt_call),
    CallKind("reciprocal", ("reciprocal",), reciprocal_call),
    CallKind("div", ("reciprocal",), divide_call),
    CallKind("sdpa", ("exp", "reciprocal"), sdpa_call),
    CallKind("layer_norm", ("rsqrt",), layer_norm_call),
    CallKind("rms_norm", ("rsqrt",), rms_norm_call),
)}
