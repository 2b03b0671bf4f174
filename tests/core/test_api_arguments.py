"""Python API arguments are checked like the CLI's: one NNLUTError naming the argument."""

from __future__ import annotations

import numpy as np
import pytest

import nnlut
from nnlut import NNLUTError


@pytest.mark.parametrize("seed", ["x", 1.5, -1, True, None])
@pytest.mark.parametrize("method", ["nnlut", "linear"])
def test_fit_seed(seed, method):
    with pytest.raises(NNLUTError, match=r"^seed must be a non-negative integer, got "):
        nnlut.fit("gelu", 4, method=method, seed=seed)


def test_fit_seed_accepts_numpy_integers():
    a = nnlut.fit("gelu", 4, method="linear", seed=np.int64(3))
    assert a == nnlut.fit("gelu", 4, method="linear", seed=3)


@pytest.mark.parametrize(("name", "fn", "match"), [
    ("api_strings", lambda x: np.array(["a"] * x.size).reshape(x.shape), "returned <U1 values; it must return real"),
    ("api_complex", lambda x: x + 1j, "returned complex128 values; it must return real"),
    ("api_shape", lambda x: np.zeros(3), r"returned shape \(3,\)"),
])
def test_registered_function_must_return_real_values(name, fn, match):
    with pytest.raises(NNLUTError, match=match):
        nnlut.register_function(name, fn, (0.0, 1.0))
        nnlut.fit(name, 4)


def test_constant_function_broadcasts():
    spec = nnlut.register_function("api_const", lambda x: 2.0, (0.0, 1.0), overwrite=True)
    assert np.array_equal(spec(np.zeros(5)), np.full(5, 2.0))


def test_ragged_list_input():
    t = nnlut.fit("gelu", 4, method="linear")
    with pytest.raises(NNLUTError, match="list of equal-length lists"):
        t([[1.0, 2.0], [3.0]])
    assert np.allclose(t([[1.0, 2.0], [3.0, 4.0]]), t(np.array([[1.0, 2.0], [3.0, 4.0]])))
