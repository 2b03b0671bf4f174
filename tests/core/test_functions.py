"""The function registry: built-ins are exact, users can register their own."""

from __future__ import annotations

import math

import numpy as np
import pytest

import nnlut
from nnlut import NNLUTError


def test_builtins_match_float64_references():
    x = np.linspace(-3, 3, 101)
    np.testing.assert_allclose(nnlut.get_function("gelu")(x), [0.5 * v * (1 + math.erf(v / math.sqrt(2))) for v in x],
                               rtol=1e-14, atol=1e-16)
    np.testing.assert_allclose(nnlut.get_function("silu")(x), x / (1 + np.exp(-x)), rtol=1e-14)
    np.testing.assert_allclose(nnlut.get_function("sigmoid")(x), 1 / (1 + np.exp(-x)), rtol=1e-14)
    np.testing.assert_allclose(nnlut.get_function("tanh")(x), np.tanh(x), rtol=0)
    xp = np.geomspace(0.1, 1024, 50)
    np.testing.assert_allclose(nnlut.get_function("rsqrt")(xp), xp ** -0.5, rtol=1e-15)
    np.testing.assert_allclose(nnlut.get_function("reciprocal")(xp), 1 / xp, rtol=0)


def test_default_domains():
    assert nnlut.get_function("gelu").domain == (-5.0, 5.0)
    assert nnlut.get_function("exp").domain == (-256.0, 0.0)
    assert nnlut.get_function("reciprocal").domain == (1.0, 1024.0)
    rsqrt = nnlut.get_function("rsqrt")
    assert rsqrt.domain == (0.1, 1024.0) and rsqrt.table_domain == (1.0, 1024.0)
    assert set(nnlut.list_functions()) >= {"gelu", "exp", "reciprocal", "rsqrt", "silu", "sigmoid", "tanh"}


def test_register_a_user_function():
    spec = nnlut.register_function("softplus_test", lambda x: np.log1p(np.exp(x)), (-6.0, 6.0), overwrite=True)
    assert nnlut.get_function("softplus_test") is spec
    table = nnlut.fit("softplus_test", 8)
    assert table.meta["errors"]["max_abs"] < 0.02
    with pytest.raises(NNLUTError, match="already registered"):
        nnlut.register_function("softplus_test", np.exp, (0.0, 1.0))


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"fn": np.log, "domain": (-1.0, 1.0)}, "not finite at"),
        ({"fn": np.exp, "domain": (1.0, 1.0)}, "empty"),
        ({"fn": np.exp, "domain": (1.0, math.inf)}, "finite"),
        ({"fn": "exp", "domain": (0.0, 1.0)}, "callable"),
        ({"fn": np.exp, "domain": (0.0, 1.0), "tails": ("wobble", "clamp")}, "tail kind"),
    ],
)
def test_register_rejects_bad_input(kwargs, match):
    with pytest.raises(NNLUTError, match=match):
        nnlut.register_function("bad_test", overwrite=True, **kwargs)


def test_unknown_function():
    with pytest.raises(NNLUTError, match="unknown function 'nope'.*registered: .*gelu"):
        nnlut.get_function("nope")
