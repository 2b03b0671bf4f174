"""nnlut's I-BERT kernels against I-BERT's own code (``transformers.models.ibert.quant_modules``).

The reference modules run in float64 (``module.double()``, float64 inputs and scales), the only
precision in which their integer-valued floats are exact at I-BERT's scales; each is a fresh
module in training mode, so its activation ranges are those of the batch it sees (its first
call). Inputs are integers ``q`` at a scale ``s``; the reference sees ``x = q * s`` and divides
by ``s`` again, so only integers for which that round trip is exact are used.

:func:`compare` counts mismatching values per (op, scale); the test runs it on a few thousand
inputs, ``benchmarks/ibert_reference.py`` on millions.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from nnlut.ibert._int import int_exp_requant, int_gelu_factors, int_layernorm, int_softmax, quantize


def _qm():
    from transformers.models.ibert import quant_modules

    return quant_modules


def _f64(s: float) -> torch.Tensor:
    return torch.tensor([s], dtype=torch.float64)


def exact(q: torch.Tensor, s: float) -> torch.Tensor:
    """Mask of the integers the reference gets back exactly from ``q * s / s``."""
    x = q.to(torch.float64) * s
    return (x / s) == q.to(torch.float64)


# ------------------------------------------------------------------- the two sides, per op
def ref_gelu(q: torch.Tensor, s: float) -> torch.Tensor:
    y, _ = _qm().IntGELU(quant_mode=True).double()(q.to(torch.float64) * s, _f64(s))
    return y


def nnlut_gelu(q: torch.Tensor, s: float) -> torch.Tensor:
    q, f, so = int_gelu_factors(q, s)
    return q.to(torch.float64) * f.to(torch.float64) * so


def ref_softmax(q: torch.Tensor, s: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(16-bit exp as the reference holds it, its scale, probabilities as integers)."""
    m = _qm().IntSoftmax(8, quant_mode=True).double()
    seen: dict = {}
    m.act.register_forward_hook(lambda mod, inp, out: seen.update(exp=out[0], scale=out[1]))
    p, ps = m(q.to(torch.float64) * s, _f64(s))
    return seen["exp"], seen["scale"], p / ps


def nnlut_softmax(q: torch.Tensor, s: float) -> tuple[torch.Tensor, torch.Tensor]:
    e = int_exp_requant(q - q.amax(dim=-1, keepdim=True), s)
    p, _ = int_softmax(q, s)
    return e, p


def ref_layernorm(q: torch.Tensor, s: float, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    m = _qm().IntLayerNorm((q.shape[-1],), 1e-12, quant_mode=True)
    with torch.no_grad():
        m.weight.copy_(w)
        m.bias.copy_(b)
    y, _ = m(q.to(torch.float64) * s, _f64(s))
    return y


def nnlut_layernorm(q: torch.Tensor, s: float, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    y, so = int_layernorm(q, s, w, b)
    return y.to(torch.float64) * so


def ref_quantize(x: torch.Tensor, bits: int, s: float) -> torch.Tensor:
    return _qm().SymmetricQuantFunction.apply(x, bits, False, _f64(s))


# ------------------------------------------------------------------- inputs
# (name, scale, largest |q|): 8-, 16- and 32-bit inputs; power-of-two and decimal scales
GELU_SCALES = [("8-bit", 8 / 127, 127), ("16-bit", 2.0**-11, 2**15 - 1), ("16-bit", 3e-4, 2**15 - 1),
               ("32-bit", 1e-7, 2**31 - 1), ("32-bit", 4e-8, 2**31 - 1)]
SOFTMAX_SCALES = [("8-bit", 2.0**-4, 127), ("8-bit", 0.05, 127), ("16-bit", 2.0**-11, 2**15 - 1),
                  ("16-bit", 1e-4, 2**15 - 1), ("32-bit", 2.0**-12, 2**31 - 1)]
LN_SCALES = [("8-bit", 2.0**-4, 127), ("16-bit", 2.0**-10, 2**15 - 1), ("22-bit", 2.0**-14, 2**21 - 1),
             ("32-bit", 2.0**-20, 2**31 - 1)]


def _pick(rng: np.random.Generator, s: float, qmax: int, n: int) -> torch.Tensor:
    """``n`` integers in [-qmax, qmax], the round trip through ``s`` exact: uniform ones, small
    ones (where the functions bend) and log-uniform magnitudes."""
    out: list[torch.Tensor] = []
    got = 0
    while got < n:
        k = max(64, n)
        u = rng.integers(-qmax, qmax + 1, k)
        small = rng.integers(-min(qmax, int(4 / s) + 1), min(qmax, int(4 / s) + 1) + 1, k)
        logu = np.sign(rng.standard_normal(k)) * np.floor(np.exp(rng.uniform(0, math.log(qmax), k)))
        q = torch.tensor(np.concatenate([u, small, logu.astype(np.int64)]))
        q = q[exact(q, s)]
        q = q[torch.randperm(len(q), generator=torch.Generator().manual_seed(got))]
        out.append(q)
        got += len(q)
    return torch.cat(out)[:n]


def gelu_edges(s: float, qmax: int) -> torch.Tensor:
    """0, +-1, the clip point of erf's polynomial and its neighbours, the largest inputs."""
    clip = -math.floor(-1.769 / (s / 1.4142))
    vals = [0, 1, 2, qmax, qmax - 1] + [clip + d for d in (-1, 0, 1) if 0 < clip + d <= qmax]
    q = torch.tensor(sorted({v for a in vals for v in (a, -a)}))
    return q[exact(q, s)]


# ------------------------------------------------------------------- the comparison
def compare(n: int, seed: int = 0, row: int = 64) -> dict[str, tuple[int, int]]:
    """{case: (mismatching values, values compared)} over ``n`` random inputs per scale plus the
    edge cases, for i-GELU, i-exp (its 16-bit requantised output), i-Softmax, i-LayerNorm and
    the input quantiser."""
    rng = np.random.default_rng(seed)
    res: dict[str, tuple[int, int]] = {}
    for name, s, qmax in GELU_SCALES:
        q = torch.cat([_pick(rng, s, qmax, n), gelu_edges(s, qmax)])
        res[f"gelu {name} s={s:.3g}"] = (int((nnlut_gelu(q, s) != ref_gelu(q, s)).sum()), q.numel())
    for name, s, qmax in SOFTMAX_SCALES:
        q = _pick(rng, s, qmax, max(row, n // row * row)).reshape(-1, row)
        q[0] = 0  # a row of equal values
        q[1, 1:] = -qmax  # one value far above the rest (mask-like)
        q[2, ::2] = -qmax
        re, rs, rp = ref_softmax(q, s)
        e, p = nnlut_softmax(q, s)
        res[f"exp {name} s={s:.3g}"] = (int((e.to(torch.float64) * rs != re).sum()), e.numel())
        res[f"softmax {name} s={s:.3g}"] = (int((p.to(torch.float64) != rp).sum()), p.numel())
    for width in (64, 384):
        w = torch.tensor(rng.uniform(0.5, 1.5, width), dtype=torch.float32)
        w[: width // 8] *= -1
        b = torch.tensor(rng.normal(0, 1, width), dtype=torch.float32)
        for name, s, qmax in LN_SCALES:
            rows = max(2, n // width)
            q = _pick(rng, s, qmax, rows * width).reshape(1, rows, width)
            q[0, 0, 0], q[0, 0, 1:] = qmax, -(qmax // 3)  # one outlier
            q[0, 1, :] = torch.arange(width) % 3 - 1  # a tiny variance
            res[f"layernorm {name} n={width} s={s:.3g}"] = (
                int((nnlut_layernorm(q, s, w, b) != ref_layernorm(q, s, w, b)).sum()), q.numel())
    for bits in (8, 16, 32):
        x = torch.tensor(rng.normal(0, 2, n))
        s = float(x.abs().max()) / (2 ** (bits - 1) - 1)
        x = torch.cat([x, torch.tensor([0.0, s / 2, -s / 2, 1.5 * s, 1e9, -1e9])])
        res[f"quantize {bits}-bit"] = (int((quantize(x, bits, s)[0].to(torch.float64) != ref_quantize(x, bits, s)).sum()),
                                       x.numel())
    return res
