"""I-BERT's integer kernels on integer tensors (Kim et al., ICML 2021), bit for bit.

Every function takes an integer tensor ``q`` (int64) and its scale ``S`` (real = q * S) and
returns integer results and their scale. Constants are computed in float64 and floored, as
in I-BERT's kernels; all tensor arithmetic is integer (int64 holds every intermediate).

- :func:`int_gelu`: i-GELU, ``erf`` by the clipped second-order polynomial, output scale
  ``S * S_erf / 2``.
- :func:`int_softmax`: i-exp (``z = floor(x / -ln2)`` capped at 30, a second-order polynomial
  on the remainder, a left shift by ``30 - z``), requantisation of exp to ``exp_bits`` with an
  integer multiplier and shift (I-BERT's fixed-point rescale), the division as
  ``floor(2**32 / sum)`` then a multiply and a right shift to ``output_bits``.
- :func:`isqrt`: integer Newton iteration ``x <- floor((x + floor(n / x)) / 2)`` from
  ``2**ceil(bits(n) / 2)`` until it stops decreasing, i.e. ``floor(sqrt(n))``.
- :func:`int_layernorm`: integer mean, a right shift that keeps ``sum(y**2) < 2**32``,
  ``std = isqrt(var) << shift``, ``floor(2**31 / std)``, output scale ``sqrt(n) / 2**30``.
"""

from __future__ import annotations

import math

import torch

GELU_K = 1.4142
GELU_N = 14
GELU_COEFF = (-0.2888, -1.769, 1.0)
EXP_X0 = -0.6931
EXP_N = 30
EXP_COEF = (0.35815147, 0.96963238, 1.0)
SOFTMAX_MAX_BIT = 32
LN_MAX_BIT = 32


def _floor(v: float) -> int:
    return int(math.floor(v))


def _fdiv(a: torch.Tensor, b: int | torch.Tensor) -> torch.Tensor:
    return torch.div(a, b, rounding_mode="floor")


def quantize(x: torch.Tensor, bits: int, scale: float | None = None) -> tuple[torch.Tensor, float]:
    """Symmetric uniform quantisation to signed ``bits``: round to nearest, saturate.

    ``scale`` defaults to ``max|x| / (2**(bits-1) - 1)`` over the finite entries (dynamic,
    per tensor); infinities saturate.
    """
    qmax = 2 ** (bits - 1) - 1
    xf = x.detach().to(torch.float64)
    if scale is None:
        finite = xf[torch.isfinite(xf)]
        amax = float(finite.abs().max()) if finite.numel() else 0.0
        scale = amax / qmax if amax > 0 else 1.0
    q = torch.clamp(torch.round(torch.nan_to_num(xf / scale, nan=0.0, posinf=qmax, neginf=-qmax)), -qmax, qmax)
    return q.to(torch.int64), float(scale)


def int_gelu(q: torch.Tensor, scale: float) -> tuple[torch.Tensor, float]:
    """i-GELU on integers: returns (q_out, out_scale)."""
    a, b, c = GELU_COEFF
    c = c / a
    s_erf = scale / GELU_K
    b_int = _floor(b / s_erf)
    c_int = _floor(c / s_erf**2)
    sign = torch.sign(q)
    abs_int = torch.minimum(q.abs(), torch.tensor(-b_int, dtype=q.dtype, device=q.device))
    y = sign * ((abs_int + b_int) ** 2 + c_int)
    sig_scale = s_erf**2 * a
    y = _fdiv(y, 2**GELU_N)
    sig_scale = sig_scale * 2**GELU_N
    shift_int = _floor(1.0 / sig_scale)
    return q * (y + shift_int), scale * sig_scale / 2


def _exp_poly(q: torch.Tensor, scale: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(poly, z): ``q`` saturated at 30 x0, ``z = floor(q / x0)``, and the polynomial of the
    remainder, ``r (r + b) + c`` (non-negative for q <= 0), in I-BERT's integer constants."""
    a, b, c = EXP_COEF
    b, c = b / a, c / a
    x0_int = _floor(EXP_X0 / scale)
    q = torch.maximum(q, torch.tensor(EXP_N * x0_int, dtype=q.dtype, device=q.device))
    z = _fdiv(q, x0_int)
    r = q - x0_int * z
    return torch.clamp(r * (r + _floor(b / scale)) + _floor(c / scale**2), min=0), z


def int_exp(q: torch.Tensor, scale: float) -> tuple[torch.Tensor, float]:
    """i-exp for q <= 0: returns (exp_int, exp_scale)."""
    poly, z = _exp_poly(q, scale)
    exp_int = poly * torch.pow(2, EXP_N - z)  # z in [0, 30]: an exact left shift
    return exp_int, EXP_COEF[0] * scale**2 / 2**EXP_N


def exp_requant_constants(scale: float, exp_bits: int = 16) -> tuple[int, int]:
    """(M, k): the integer multiplier and shift that requantise i-exp's output to ``exp_bits``.

    The real ratio ``exp_scale / e_scale`` (I-BERT's QuantAct rescale) is written
    ``M * 2**-k`` with a 31-bit ``M``, as I-BERT's fixed-point multiplier does.
    """
    a = EXP_COEF[0]
    ratio = (a * scale**2 / 2**EXP_N) * (2 ** (exp_bits - 1) - 1)
    mant, e = math.frexp(ratio)
    return int(round(mant * 2**31)), 31 - e


def int_exp_requant(q: torch.Tensor, scale: float, exp_bits: int = 16) -> torch.Tensor:
    """i-exp of ``q <= 0`` requantised to ``exp_bits`` (round half up, saturating): the value the
    i-exp hardware unit outputs. ``poly * 2**(30 - z)`` then ``* M >> k`` is folded into one
    right shift by ``k - 30 + z``."""
    poly, z = _exp_poly(q, scale)
    m, k = exp_requant_constants(scale, exp_bits)
    sh = k - EXP_N + z
    e = (poly * m + torch.pow(2, sh - 1)) >> sh
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
    var0 = (y * y).sum(dim=-1, keepdim=True)
    vmax = int(var0.max()) if var0.numel() else 0
    shift = max(0, math.ceil(math.log2(math.sqrt(vmax / 2**LN_MAX_BIT)))) if vmax > 0 else 0
    while True:
        ys = y >> shift
        var = (ys * ys).sum(dim=-1, keepdim=True)
        if var.numel() == 0 or int(var.max()) < 2**LN_MAX_BIT:
            break
        shift += 1
    std = torch.clamp(isqrt(var) * 2**shift, min=1)
    factor = _fdiv(torch.full_like(std, 2**31), std)
    y = _fdiv(y * factor, 2)
    out_scale = math.sqrt(n) / 2**30
    w = weight.detach().to(torch.float64) if weight is not None else torch.ones(n, dtype=torch.float64, device=q.device)
    if bias is not None:
        b = bias.detach().to(torch.float64)
        ratio = torch.where(w != 0, b / torch.where(w != 0, w, 1.0), torch.zeros_like(b))
        y = y + torch.floor(ratio / out_scale).to(torch.int64)
    return y, out_scale * w
