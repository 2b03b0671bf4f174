"""I-BERT's integer kernels on integer tensors (Kim et al., ICML 2021), bit for bit with I-BERT's
code (``transformers``' ``quant_modules``; see ``tests/ibert/test_reference.py``).

Every function takes an integer tensor ``q`` (int64) and its scale ``S`` (real = q * S) and
returns integer results and their scale. Constants are computed in float64 and floored, as
in I-BERT's code (a constant over a scale as ``c * (1 / S)``, as PyTorch divides a number by a
tensor); all tensor arithmetic is exact integer arithmetic, and a kernel refuses, in one line,
an input whose result would not fit int64.

- :func:`int_gelu_factors` / :func:`int_gelu`: i-GELU, ``erf`` by the clipped second-order
  polynomial, output ``q * (erf_int + shift)`` at scale ``S * S_erf / 2``; at INT32-accumulator
  scales the product needs up to 77 bits, so the factors are returned separately.
- :func:`int_softmax`: i-exp (``z = floor(x / -ln2)`` capped at 30, a second-order polynomial
  on the remainder, a left shift by ``30 - z``), requantisation of exp to ``exp_bits`` with an
  integer multiplier and shift that map I-BERT's activation range (the raw exp of 0) to
  ``2**(exp_bits-1) - 1``, the division as ``floor(2**32 / sum)`` then a multiply and a right
  shift to ``output_bits``.
- :func:`isqrt`: integer Newton iteration ``x <- floor((x + floor(n / x)) / 2)`` from
  ``2**ceil(bits(n) / 2)`` until it stops decreasing, i.e. ``floor(sqrt(n))``.
- :func:`int_layernorm`: integer mean, a right shift that keeps ``sum(y**2) < 2**32``,
  ``std = isqrt(var) << shift``, ``floor(2**31 / std)``, output scale ``sqrt(n) / 2**30`` with
  ``sqrt(n)`` in float32 as I-BERT computes it.
"""

from __future__ import annotations

import decimal
import math

import numpy as np
import torch

from .._errors import NNLUTError

GELU_K = 1.4142
GELU_N = 14
GELU_COEFF = (-0.2888, -1.769, 1.0)
EXP_X0 = -0.6931
EXP_N = 30
EXP_COEF = (0.35815147, 0.96963238, 1.0)
SOFTMAX_MAX_BIT = 32
LN_MAX_BIT = 32
# the finest i-GELU scale whose constant c / s**2 fits 62 bits
GELU_MIN_SCALE = math.sqrt(abs(GELU_COEFF[2] / GELU_COEFF[0]) * GELU_K**2 / 2.0**62) * 1.0000001


def _floor(v: float) -> int:
    return int(math.floor(v))


def _cdiv(c: float, d: float) -> float:
    """``c / d`` for a constant over a scale as I-BERT's code evaluates it: PyTorch divides a number
    by a tensor as ``c * (1 / d)``, which can differ from ``c / d`` in the last bit (and so the
    floored constant, e.g. ``floor(-0.6931 / 1e-4)`` is -6932 there, not -6931)."""
    return c * (1.0 / d)


def _fdiv(a: torch.Tensor, b: int | torch.Tensor) -> torch.Tensor:
    return torch.div(a, b, rounding_mode="floor")


def quantize(x: torch.Tensor, bits: int, scale: float | None = None) -> tuple[torch.Tensor, float]:
    """I-BERT's symmetric input quantisation to signed ``bits``: ``round(x * (1 / scale))``, clipped
    to ``[-(2**(bits-1) - 1), 2**(bits-1) - 2]`` as I-BERT's ``SymmetricQuantFunction`` does.

    ``scale`` defaults to ``max|x| / (2**(bits-1) - 1)`` over the finite entries (dynamic, per
    tensor; ``max|x|`` at least 1e-8, as I-BERT's range); infinities saturate, NaN becomes 0.
    """
    qmax = 2 ** (bits - 1) - 1
    xf = x.detach().to(torch.float64)
    if scale is None:
        finite = xf[torch.isfinite(xf)]
        amax = float(finite.abs().max()) if finite.numel() else 0.0
        scale = max(amax, 1e-8) / qmax
    q = torch.round(torch.nan_to_num((1.0 / scale) * xf, nan=0.0, posinf=qmax, neginf=-qmax))
    return torch.clamp(q, -qmax, qmax - 1).to(torch.int64), float(scale)


def _gelu_constants(scale: float) -> tuple[int, int, int, float]:
    """(b_int, c_int, shift_int, out_scale) of i-GELU at input scale ``scale``, computed as I-BERT
    does (float64, floored; ``shift = 1.0 // sigmoid_scale``, Python's float floor division)."""
    if not (isinstance(scale, (int, float)) and math.isfinite(scale) and scale > 0):
        raise NNLUTError(f"i-GELU input scale must be a positive finite number, got {scale!r}")
    a, b, c = GELU_COEFF
    c = c / a
    s_erf = scale / GELU_K
    if abs(c / s_erf**2) >= 2.0**62:
        raise NNLUTError(f"i-GELU input scale {scale:g} is too fine: its constant c / s**2 exceeds 62 bits "
                         f"(scales from {GELU_MIN_SCALE:.2g} are allowed)")
    sig_scale = s_erf**2 * a * 2**GELU_N
    return _floor(_cdiv(b, s_erf)), _floor(_cdiv(c, s_erf**2)), int(1.0 // sig_scale), scale * sig_scale / 2


def int_gelu_factors(q: torch.Tensor, scale: float) -> tuple[torch.Tensor, torch.Tensor, float]:
    """i-GELU as two exact int64 factors: ``(q, erf_int + shift, out_scale)``; the output is their
    product times ``out_scale``. At INT32-accumulator scales the product needs up to 77 bits, which
    :func:`int_gelu` refuses; the factors always fit."""
    b_int, c_int, shift_int, out_scale = _gelu_constants(scale)
    sign = torch.sign(q)
    abs_int = torch.minimum(q.abs(), torch.tensor(-b_int, dtype=q.dtype, device=q.device))
    y = sign * ((abs_int + b_int) ** 2 + c_int)  # |y| <= |c_int| < 2**62
    return q, _fdiv(y, 2**GELU_N) + shift_int, out_scale


def int_gelu(q: torch.Tensor, scale: float) -> tuple[torch.Tensor, float]:
    """i-GELU on integers: returns (q_out, out_scale). Refuses, in one line, an input whose output
    does not fit int64 (use :func:`int_gelu_factors` there)."""
    q, f, out_scale = int_gelu_factors(q, scale)
    if q.numel():
        qmax, fmax = int(q.abs().max()), int(f.abs().max())
        if qmax * fmax >= 2**63:
            raise NNLUTError(f"i-GELU output at scale {scale:g} needs {(qmax * fmax).bit_length() + 1} bits "
                             f"(|q| up to {qmax}); int64 holds 64: use int_gelu_factors")
    return q * f, out_scale


def _exp_poly(q: torch.Tensor, scale: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(poly, z): ``q`` saturated at 30 x0, ``z = floor(q / x0)``, and the polynomial of the
    remainder, ``r (r + b) + c`` (non-negative for q <= 0), in I-BERT's integer constants."""
    a, b, c = EXP_COEF
    b, c = b / a, c / a
    x0_int = _floor(_cdiv(EXP_X0, scale))
    q = torch.maximum(q, torch.tensor(EXP_N * x0_int, dtype=q.dtype, device=q.device))
    z = _fdiv(q, x0_int)
    r = q - x0_int * z
    return torch.clamp(r * (r + _floor(_cdiv(b, scale))) + _floor(_cdiv(c, scale**2)), min=0), z


def _check_exp_scale(scale: float, factor: int, what: str) -> None:
    if not (isinstance(scale, (int, float)) and math.isfinite(scale) and scale > 0):
        raise NNLUTError(f"i-exp input scale must be a positive finite number, got {scale!r}")
    c_int = _floor(_cdiv(EXP_COEF[2] / EXP_COEF[0], scale**2))
    if c_int * factor >= 2**63:
        raise NNLUTError(f"i-exp input scale {scale:g} is too fine for {what}: its constant c / s**2 = {c_int} times "
                         f"{factor} exceeds int64 (I-BERT's Softmax inputs have scales near 1e-4)")


def int_exp(q: torch.Tensor, scale: float) -> tuple[torch.Tensor, float]:
    """i-exp for q <= 0: returns (exp_int, exp_scale)."""
    _check_exp_scale(scale, 2**EXP_N, "the raw exp")
    poly, z = _exp_poly(q, scale)
    exp_int = poly * torch.pow(2, EXP_N - z)  # z in [0, 30]: an exact left shift
    return exp_int, EXP_COEF[0] * scale**2 / 2**EXP_N


def exp_requant_multiplier(scale: float, exp_bits: int = 16) -> float:
    """The real factor ``G`` that I-BERT's requantisation of i-exp applies to the raw integer exp.

    I-BERT's ``QuantAct`` gives the 16-bit exp the scale ``max / (2**(b-1) - 1)`` where ``max`` is
    the running maximum of the raw integer exp (treated as a real value, plus its ``1e-5``
    initial range) - the raw exp of 0, ``c_int * 2**30``, since every row has its maximum there.
    Its fixed-point rescale then computes ``round(round(exp_int / exp_scale) * m * 2**-e)`` with
    ``m * 2**-e`` the 31-bit form of ``exp_scale / float32(act_scale)``: in all,
    ``exp_int * m * 2**-e / exp_scale``.
    """
    qmax = 2 ** (exp_bits - 1) - 1
    exp_scale = EXP_COEF[0] * scale**2 / 2**EXP_N
    raw_max = max(_floor(_cdiv(EXP_COEF[2] / EXP_COEF[0], scale**2)), 0) * 2**EXP_N
    act_scale = float(np.float32(max(raw_max + 1e-5, 1e-8) / qmax))
    mant, e = math.frexp(exp_scale / act_scale)
    m = int(decimal.Decimal(mant * 2**31).quantize(decimal.Decimal(1), rounding=decimal.ROUND_HALF_UP))
    return m * 2.0 ** (e - 31) / exp_scale


def exp_requant_constants(scale: float, exp_bits: int = 16) -> tuple[int, int]:
    """(M, k): the integer multiplier and shift that requantise i-exp's raw output to ``exp_bits``:
    :func:`exp_requant_multiplier` written ``M * 2**-k`` with a 31-bit ``M``."""
    mant, e = math.frexp(exp_requant_multiplier(scale, exp_bits))
    return int(round(mant * 2**31)), 31 - e


def int_exp_requant(q: torch.Tensor, scale: float, exp_bits: int = 16) -> torch.Tensor:
    """i-exp of ``q <= 0`` requantised to ``exp_bits`` (round half up, saturating): the value the
    i-exp hardware unit outputs. ``poly * 2**(30 - z)`` then ``* M >> k`` is folded into one
    right shift by ``k - 30 + z``."""
    _check_exp_scale(scale, 2**31, "its requantisation")
    poly, z = _exp_poly(q, scale)
    m, k = exp_requant_constants(scale, exp_bits)
    sh = k - EXP_N + z  # up to ~100 at fine scales: round half up as ((x >> (sh - 1)) + 1) >> 1,
    # each shift below 64 bits (x = poly * m < 2**63, so x >> 63 is already 0)
    e = (((poly * m) >> torch.clamp(sh - 1, max=63)) + 1) >> 1
    return torch.clamp(e, 0, 2 ** (exp_bits - 1) - 1)


def int_softmax(q: torch.Tensor, scale: float, dim: int = -1, *, exp_bits: int = 16,
                output_bits: int = 8) -> tuple[torch.Tensor, float]:
    """i-exp Softmax along ``dim``: returns (probabilities as integers, 2**-output_bits)."""
    q = q - q.amax(dim=dim, keepdim=True)
    e = int_exp_requant(q, scale, exp_bits)
    total = e.sum(dim=dim, keepdim=True)
    factor = _fdiv(torch.full_like(total, 2**SOFTMAX_MAX_BIT), total)
    out = _fdiv(e * factor, 2 ** (SOFTMAX_MAX_BIT - output_bits))
    return out, 2.0**-output_bits


def isqrt(n: torch.Tensor) -> torch.Tensor:
    """floor(sqrt(n)) of a non-negative int64 tensor by integer Newton iteration."""
    if torch.any(n < 0):
        raise ValueError("isqrt needs non-negative integers")
    bits = torch.where(n > 0, torch.floor(torch.log2(n.to(torch.float64).clamp(min=1))).to(torch.int64) + 1, 0)
    # float log2 can be off by one near powers of two; the start only has to be >= sqrt(n)
    bits = torch.where((n > 0) & (torch.pow(2, bits.clamp(max=62)) <= n), bits + 1, bits)
    x = torch.pow(2, _fdiv(bits + 1, 2))
    x = torch.where(n > 0, x, torch.ones_like(x))
    for _ in range(64):
        y = _fdiv(x + _fdiv(n, x), 2)
        done = (y >= x) | (n == 0)
        x = torch.where(done, x, y)
        if bool(done.all()):
            break
    return torch.where(n > 0, x, torch.zeros_like(x))


def int_layernorm(q: torch.Tensor, scale: float, weight: torch.Tensor | None, bias: torch.Tensor | None
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """I-BERT's integer LayerNorm over the last dim: returns (y_int, per-channel out scale).

    The real output is ``y_int * out_scale``. A row of zero variance would divide by zero in
    I-BERT; here its std is taken as 1 (the centred values are 0, so the output is the bias).
    """
    n = q.shape[-1]
    mean = torch.round(q.sum(dim=-1, keepdim=True).to(torch.float64) / n).to(torch.int64)
    y = q - mean
    # the shift that keeps the variance below 2**32, found as I-BERT does: from the unshifted
    # sum of squares in float64 (it only sets the shift; every value used after is an exact integer)
    yf = y.to(torch.float64)
    var0 = (yf * yf).sum(dim=-1, keepdim=True)
    vmax = float(var0.max()) if var0.numel() else 0.0
    shift = max(0, math.ceil(math.log2(math.sqrt(vmax / 2**LN_MAX_BIT)))) if vmax >= 2**LN_MAX_BIT else 0
    while True:
        ys = y >> shift
        var = (ys * ys).sum(dim=-1, keepdim=True)
        if var.numel() == 0 or int(var.max()) < 2**LN_MAX_BIT:
            break
        shift += 1
    std = torch.clamp(isqrt(var) * 2**shift, min=1)
    factor = _fdiv(torch.full_like(std, 2**31), std)
    y = _fdiv(y * factor, 2)
    # sqrt(n) in float32 and the bias term in the parameters' dtype, as I-BERT computes them
    out_scale = torch.sqrt(torch.tensor(float(n), dtype=torch.float32, device=q.device)) / 2**30
    w = weight.detach() if weight is not None else torch.ones(n, dtype=torch.float32, device=q.device)
    if bias is not None:
        b = bias.detach()
        ratio = torch.where(w != 0, b / torch.where(w != 0, w, torch.ones_like(w)), torch.zeros_like(b))
        y = y + torch.floor(ratio / out_scale).to(torch.int64)
    return y, out_scale * w
