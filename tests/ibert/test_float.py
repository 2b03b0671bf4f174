"""I-BERT's float polynomials reproduce the published errors."""

from __future__ import annotations

import numpy as np
from scipy.special import erf

from nnlut.ibert import i_exp, i_gelu


def test_i_gelu_error_matches_paper():
    x = np.linspace(-4, 4, 200_001)
    exact = 0.5 * x * (1 + erf(x / np.sqrt(2)))
    err = np.abs(i_gelu(x) - exact)
    assert np.max(err) == np.float64(np.max(err))
    assert 0.017 < np.max(err) < 0.019  # I-BERT reports L-inf 0.018 on [-4, 4]


def test_i_exp_error_and_masking():
    x = np.linspace(-30, 0, 300_001)
    err = np.max(np.abs(i_exp(x) - np.exp(x)))
    assert 1.5e-3 < err < 2.5e-3  # I-BERT reports 1.9e-3
    assert i_exp(np.array([-np.inf]))[0] == 0.0
