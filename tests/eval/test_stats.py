"""Statistics against independent references: scipy.stats and hand-computed cases."""

from __future__ import annotations

import math

import numpy as np
import pytest

from nnlut import NNLUTError
from nnlut.eval._data import stratified_sample
from nnlut.eval._stats import delta_ci, indistinguishable, mcnemar, pearson_ci, ratio_ci

stats = pytest.importorskip("scipy.stats", reason="scipy is the independent reference")

# scipy computes the binomial tails in floating point; ours are exact rationals.
P_TOL = 1e-12


def _pairs(gained: int, lost: int, same_right: int, same_wrong: int) -> tuple[np.ndarray, np.ndarray]:
    ref = np.array([0] * gained + [1] * lost + [1] * same_right + [0] * same_wrong, dtype=bool)
    new = np.array([1] * gained + [0] * lost + [1] * same_right + [0] * same_wrong, dtype=bool)
    return ref, new


@pytest.mark.parametrize("gained,lost", [(0, 0), (1, 0), (3, 9), (12, 12), (40, 61), (0, 25), (700, 650)])
def test_mcnemar_exact_matches_scipy_binomtest(gained, lost):
    ref, new = _pairs(gained, lost, 50, 20)
    t = mcnemar(ref, new)
    assert (t.gained, t.lost) == (gained, lost)
    if gained + lost == 0:
        assert t.p_exact == t.p_mid == 1.0
        return
    want = stats.binomtest(min(gained, lost), gained + lost, 0.5).pvalue
    assert t.p_exact == pytest.approx(want, abs=P_TOL)
    k, m = min(gained, lost), gained + lost
    mid = 2 * (stats.binom.cdf(k, m, 0.5) - 0.5 * stats.binom.pmf(k, m, 0.5))
    assert t.p_mid == pytest.approx(min(1.0, mid), abs=P_TOL)
    assert t.p_mid <= t.p_exact


def test_mcnemar_hand_computed():
    # 1 gained, 4 lost: P(X<=1) = 6/32, P(X=1) = 5/32 -> exact 12/32, mid-p 2*(6-2.5)/32 = 7/32
    t = mcnemar(*_pairs(1, 4, 3, 3))
    assert t.p_exact == 12 / 32 and t.p_mid == 7 / 32


def test_delta_ci_brackets_the_estimate_and_matches_the_normal_approximation():
    ref, new = _pairs(30, 70, 800, 100)  # delta = -4 pt on 1000 items
    lo, hi = delta_ci(ref, new, samples=20000)
    n, p_gain, p_loss = 1000, 0.03, 0.07
    se = 100 * math.sqrt((p_gain + p_loss - (p_gain - p_loss) ** 2) / n)  # SD of a mean of {-1, 0, 1}
    assert lo == pytest.approx(-4 - 1.96 * se, abs=0.25) and hi == pytest.approx(-4 + 1.96 * se, abs=0.25)
    assert hi < 0


def test_delta_ci_equals_index_resampling_in_distribution():
    rng = np.random.default_rng(3)
    ref = rng.random(400) < 0.8
    new = ref.copy()
    flip = rng.choice(400, 30, replace=False)
    new[flip] = ~new[flip]
    lo, hi = delta_ci(ref, new, samples=20000, seed=1)
    idx = rng.integers(0, 400, size=(20000, 400))
    d = 100 * (new[idx].mean(1) - ref[idx].mean(1))
    want = np.quantile(d, [0.025, 0.975])
    assert lo == pytest.approx(want[0], abs=0.3) and hi == pytest.approx(want[1], abs=0.3)


def test_identical_outcomes_are_indistinguishable_and_a_clear_loss_is_not():
    ref, new = _pairs(0, 0, 90, 10)
    assert delta_ci(ref, new) == (0.0, 0.0)
    assert indistinguishable(delta_ci(ref, new), mcnemar(ref, new))
    ref, new = _pairs(2, 40, 300, 50)
    assert not indistinguishable(delta_ci(ref, new), mcnemar(ref, new))


@pytest.mark.parametrize("n", [10, 100, 2000])
def test_pearson_ci_matches_scipy(n):
    rng = np.random.default_rng(n)
    x = rng.normal(size=n)
    y = 0.6 * x + rng.normal(size=n)
    res = stats.pearsonr(x, y)
    want = res.confidence_interval(0.95)
    got = pearson_ci(float(res.statistic), n)
    assert got == pytest.approx((want.low, want.high), abs=1e-12)


def test_ratio_ci_of_perplexities_brackets_the_ratio():
    rng = np.random.default_rng(0)
    tokens = np.full(200, 64.0)
    ref = rng.gamma(20, 0.05, size=200) * tokens
    new = ref * 1.10  # 10% more NLL per sequence
    lo, hi = ratio_ci(new, ref, tokens)
    exact = math.exp(new.sum() / tokens.sum()) / math.exp(ref.sum() / tokens.sum())
    assert lo <= exact <= hi and hi - lo < 0.1
    assert ratio_ci(ref, ref, tokens) == (1.0, 1.0)


def test_bad_input_names_the_value():
    with pytest.raises(NNLUTError, match="level must be in"):
        delta_ci(np.ones(3, bool), np.ones(3, bool), level=1.5)
    with pytest.raises(NNLUTError, match="sizes 3 and 2"):
        mcnemar(np.ones(3, bool), np.ones(2, bool))
    with pytest.raises(NNLUTError, match="at least 4 pairs, got 3"):
        pearson_ci(0.5, 3)
    with pytest.raises(NNLUTError, match="sample size must be in 1..5, got 6"):
        stratified_sample(np.zeros(5), 6)


@pytest.mark.parametrize("n", [1, 7, 400, 999])
def test_stratified_sample_keeps_class_shares(n):
    labels = np.array([1] * 700 + [0] * 300)  # positives first, as the sentiment files come
    idx = stratified_sample(labels, n, seed=5)
    assert len(idx) == n == len(set(idx)) and np.all(np.diff(idx) > 0)
    assert abs(labels[idx].sum() - 0.7 * n) < 1  # largest-remainder rounding: within one item
    assert not np.array_equal(idx, np.arange(n)) or n == 1000
    assert np.array_equal(idx, stratified_sample(labels, n, seed=5))


def test_stratified_sample_keeps_each_strata_share_within_each_class():
    rng = np.random.default_rng(2)
    labels = (rng.random(2000) < 0.6).astype(int)
    strata = rng.integers(0, 4, 2000)
    idx = stratified_sample(labels, 300, seed=1, strata=strata)
    assert len(idx) == 300 and abs(labels[idx].sum() - 300 * labels.mean()) < 1
    for c in (0, 1):
        k = np.sum(labels[idx] == c)
        for g in range(4):
            share = np.mean(strata[labels == c] == g)
            assert abs(np.sum((labels[idx] == c) & (strata[idx] == g)) - k * share) < 1
