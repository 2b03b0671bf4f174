"""Statistics for comparing an approximated model with its FP32 self on the same items.

- :func:`delta_ci` — paired bootstrap confidence interval of an accuracy difference;
- :func:`mcnemar` — McNemar's test on the discordant pairs (exact binomial and mid-p);
- :func:`pearson_ci` — confidence interval of a Pearson correlation (Fisher's z);
- :func:`ratio_ci` — paired bootstrap interval of a ratio of sums (perplexity ratios).

All are seeded and deterministic. Only the standard library and numpy are used.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

from .._errors import NNLUTError

BOOTSTRAP_SAMPLES = 10000
LEVEL = 0.95


def _check_level(level: float) -> None:
    if not 0.0 < level < 1.0:
        raise NNLUTError(f"confidence level must be in (0, 1), got {level}")


def _paired(ref_correct: np.ndarray, new_correct: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a = np.asarray(ref_correct, dtype=bool).reshape(-1)
    b = np.asarray(new_correct, dtype=bool).reshape(-1)
    if a.shape != b.shape or a.size == 0:
        raise NNLUTError(f"paired outcomes need two equal, non-empty arrays, got sizes {a.size} and {b.size}")
    return a, b


def delta_ci(ref_correct: np.ndarray, new_correct: np.ndarray, *, level: float = LEVEL,
             samples: int = BOOTSTRAP_SAMPLES, seed: int = 0) -> tuple[float, float]:
    """Percentile paired-bootstrap interval of ``mean(new) - mean(ref)``, in points (x100).

    Args:
        ref_correct, new_correct: bool arrays of shape ``(n,)``, item i judged by both.
        level: coverage (default 0.95).
        samples: bootstrap resamples (default 10,000).
        seed: RNG seed.

    Resampling n items with replacement only changes how many of them are "new right, ref
    wrong" (+1), "new wrong, ref right" (-1) or tied (0), so the resamples are drawn as
    multinomial counts of those three kinds: the same distribution as resampling indices,
    in O(samples) memory.
    """
    _check_level(level)
    a, b = _paired(ref_correct, new_correct)
    n = a.size
    p = np.array([np.sum(b & ~a), np.sum(a & ~b), 0], dtype=np.float64) / n
    p[2] = 1.0 - p[0] - p[1]
    counts = np.random.default_rng(seed).multinomial(n, p, size=samples)
    deltas = 100.0 * (counts[:, 0] - counts[:, 1]) / n
    lo, hi = np.quantile(deltas, [(1 - level) / 2, (1 + level) / 2])
    return float(lo), float(hi)


@dataclass(frozen=True)
class McNemar:
    """McNemar's test: ``gained`` = items only the new model gets right, ``lost`` = items only
    the reference gets right; two-sided exact binomial p-value and its mid-p variant."""

    gained: int
    lost: int
    p_exact: float
    p_mid: float


def _binom_cdf_half(k: int, n: int) -> tuple[float, float]:
    """(P(X <= k), P(X = k)) for X ~ Binomial(n, 1/2), exact in rational arithmetic."""
    total = 2 ** n
    pk = math.comb(n, k)
    cdf = sum(math.comb(n, i) for i in range(k + 1))
    return cdf / total, pk / total


def mcnemar(ref_correct: np.ndarray, new_correct: np.ndarray) -> McNemar:
    """McNemar's test on the discordant pairs of two bool arrays of shape ``(n,)``."""
    a, b = _paired(ref_correct, new_correct)
    gained, lost = int(np.sum(b & ~a)), int(np.sum(a & ~b))
    m, k = gained + lost, min(gained, lost)
    if m == 0:
        return McNemar(0, 0, 1.0, 1.0)
    cdf, pk = _binom_cdf_half(k, m)
    return McNemar(gained, lost, min(1.0, 2.0 * cdf), min(1.0, 2.0 * (cdf - 0.5 * pk)))


def pearson_ci(r: float, n: int, *, level: float = LEVEL) -> tuple[float, float]:
    """Confidence interval of a Pearson correlation ``r`` over ``n`` pairs (Fisher's z:
    atanh(r) is about normal with standard error 1/sqrt(n - 3))."""
    _check_level(level)
    if n < 4:
        raise NNLUTError(f"a Pearson interval needs at least 4 pairs, got {n}")
    if not -1.0 <= r <= 1.0:
        raise NNLUTError(f"a correlation must lie in [-1, 1], got {r}")
    if abs(r) == 1.0:
        return float(r), float(r)
    z, se = math.atanh(r), 1.0 / math.sqrt(n - 3)
    q = NormalDist().inv_cdf((1 + level) / 2)
    return math.tanh(z - q * se), math.tanh(z + q * se)


def ratio_ci(num_new: np.ndarray, num_ref: np.ndarray, den: np.ndarray, *, transform: str = "exp",
             level: float = LEVEL, samples: int = 2000, seed: int = 0) -> tuple[float, float]:
    """Paired bootstrap interval over items of ``f(sum(num_new)/sum(den)) / f(sum(num_ref)/sum(den))``.

    With ``transform="exp"`` and ``num_*`` the summed negative log-likelihoods (nats) per
    sequence and ``den`` its token count (all shape ``(n,)``), this is the ratio of
    perplexities. ``transform="identity"`` gives a plain ratio of means.
    """
    _check_level(level)
    fns = {"exp": np.exp, "identity": lambda v: v}
    if transform not in fns:
        raise NNLUTError(f"transform must be one of {', '.join(fns)}, got {transform!r}")
    x, y, d = (np.asarray(v, dtype=np.float64).reshape(-1) for v in (num_new, num_ref, den))
    if not x.size == y.size == d.size or x.size == 0:
        raise NNLUTError(f"ratio_ci needs three equal, non-empty arrays, got sizes {x.size}, {y.size}, {d.size}")
    idx = np.random.default_rng(seed).integers(0, x.size, size=(samples, x.size))
    ds = d[idx].sum(1)
    f = fns[transform]
    ratios = f(x[idx].sum(1) / ds) / f(y[idx].sum(1) / ds)
    lo, hi = np.quantile(ratios, [(1 - level) / 2, (1 + level) / 2])
    return float(lo), float(hi)


def indistinguishable(ci: tuple[float, float], test: McNemar, alpha: float = 1 - LEVEL) -> bool:
    """Whether a configuration cannot be told apart from the reference: its Δ interval
    contains 0 and McNemar's mid-p is at least ``alpha``."""
    return ci[0] <= 0.0 <= ci[1] and test.p_mid >= alpha
