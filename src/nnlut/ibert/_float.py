"""Float forms of I-BERT's i-GELU and i-exp (the integer kernels compute the same polynomials).

- i-GELU: ``erf(x) ~ L(x) = sgn(x) [a (min(|x|, -b) + b)**2 + 1]`` with a = -0.2888,
  b = -1.769, and ``GELU(x) ~ x/2 (1 + L(x / sqrt 2))``.
- i-exp (for x <= 0): ``x = -ln2 z + p`` with ``z = floor(-x / ln2)``, ``p`` in (-ln2, 0];
  ``exp(p) ~ 0.3585 (p + 1.353)**2 + 0.344`` and ``exp(x) ~ exp(p) * 2**-z``.
"""

from __future__ import annotations

import math

import numpy as np

GELU_A = -0.2888
GELU_B = -1.769
EXP_A = 0.3585
EXP_B = 1.353
EXP_C = 0.344
LN2 = math.log(2.0)


def i_erf(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    t = np.minimum(np.abs(x), -GELU_B) + GELU_B
    return np.sign(x) * (GELU_A * t * t + 1.0)


def i_gelu(x: np.ndarray) -> np.ndarray:
    """I-BERT's GELU approximation, float64."""
    x = np.asarray(x, dtype=np.float64)
    return 0.5 * x * (1.0 + i_erf(x / math.sqrt(2.0)))


def i_exp(x: np.ndarray) -> np.ndarray:
    """I-BERT's exp approximation for x <= 0 (positive inputs are clipped to 0), float64."""
    x = np.minimum(np.asarray(x, dtype=np.float64), 0.0)
    with np.errstate(invalid="ignore"):
        z = np.floor(-x / LN2)
        p = x + z * LN2
        poly = EXP_A * (p + EXP_B) ** 2 + EXP_C
        return np.where(np.isneginf(x), 0.0, np.ldexp(poly, -np.minimum(z, 1100).astype(np.int64)))


IBERT_FUNCTIONS = {"gelu": i_gelu, "exp": i_exp}
