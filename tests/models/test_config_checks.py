"""ApproxConfig refuses what it cannot use, in one line: seeds, flags, versions, and tables
whose values are not those of the function they are given for."""

from __future__ import annotations

import numpy as np
import pytest

from nnlut import ApproxConfig, NNLUTError
from nnlut.models import fitted_table


@pytest.mark.parametrize("kwargs,match", [
    ({"seed": "x"}, "seed must be a non-negative integer, got 'x'"),
    ({"seed": 1.5}, "seed must be a non-negative integer, got 1.5"),
    ({"seed": -1}, "seed must be a non-negative integer, got -1"),
    ({"seed": True}, "seed must be a non-negative integer, got True"),
    ({"method": "linear", "seed": "x"}, "seed must be a non-negative integer"),
    ({"share_tables": "yes"}, "share_tables must be True or False, got 'yes'"),
    ({"share_tables": 1}, "share_tables must be True or False, got 1"),
    ({"tables": [1]}, "tables must be a mapping"),
])
def test_bad_values_are_refused(kwargs, match):
    with pytest.raises(NNLUTError, match=match):
        ApproxConfig(**kwargs)


def test_a_numpy_seed_is_an_int():
    cfg = ApproxConfig(seed=np.int64(3))
    assert type(cfg.seed) is int and ApproxConfig.from_json(cfg.to_json()).seed == 3


def test_tables_must_hold_their_functions_values():
    gelu, exp = fitted_table("gelu", "nnlut", 16, "full"), fitted_table("exp", "nnlut", 16, "full")
    rsqrt = fitted_table("rsqrt", "nnlut", 16, "paper")
    cfg = ApproxConfig(tables={"gelu": gelu, "exp": exp, "rsqrt": rsqrt})  # the right ones are accepted
    assert ApproxConfig.from_json(cfg.to_json()).to_dict() == cfg.to_dict()
    with pytest.raises(NNLUTError, match=r"tables\['gelu'\]: its values are not those of gelu"):
        ApproxConfig(tables={"gelu": exp})
    with pytest.raises(NNLUTError, match=r"tables\['exp'\]: its values are not those of exp"):
        ApproxConfig(tables={"exp": gelu})
    with pytest.raises(NNLUTError, match=r"tables\['reciprocal'\]"):
        ApproxConfig(tables={"reciprocal": rsqrt})


@pytest.mark.parametrize("version", [True, 1.0, "1", 2])
def test_versions_other_than_the_integer_1_are_refused(version):
    with pytest.raises(NNLUTError, match=f"unknown config version {version!r}"):
        ApproxConfig.from_dict({"version": version, "method": "linear"})
    assert ApproxConfig.from_dict({"version": 1, "method": "linear"}).method == "linear"


def test_ops_as_a_list_or_any_sequence_of_names_is_kept_as_a_tuple():
    assert ApproxConfig(ops=["gelu", "softmax"]).ops == ("gelu", "softmax")
    assert ApproxConfig(ops=("gelu",)).ops == ("gelu",)
    assert ApproxConfig(ops=["gelu"]) == ApproxConfig(ops=("gelu",))
    with pytest.raises(NNLUTError, match="list or tuple of op names"):
        ApproxConfig(ops="gelu")
