"""Table files: round trip bit-exactly, and every kind of bad file is one clear error."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given

import nnlut
from nnlut import NNLUTError, Table
from tests.strategies import tables_params


@given(tables_params())
def test_round_trip_is_bit_exact(tmp_path_factory, params):
    path = tmp_path_factory.mktemp("t") / "t.json"
    table = Table(*params, domain=(-200.0, 200.0), tails=("clamp", "extend"), function="custom",
                  meta={"note": "x"})
    table.save(str(path))
    back = nnlut.load(str(path))
    assert back == table
    for a, b in ((back.breakpoints, table.breakpoints), (back.slopes, table.slopes), (back.intercepts, table.intercepts)):
        assert a.tobytes() == b.tobytes()


def test_fitted_table_file_keys_and_loaded_callable(tmp_path, fitted):
    table = fitted("rsqrt")
    path = tmp_path / "rsqrt.json"
    table.save(str(path))
    data = json.loads(path.read_text())
    for key in ("breakpoints", "slopes", "intercepts", "function", "domain", "scaling", "fit", "version", "network"):
        assert key in data
    assert data["scaling"]["mode"] == "paper"
    loaded = nnlut.load(str(path))
    x = np.array([0.01, 0.3, 2.0, 700.0])
    np.testing.assert_array_equal(loaded(x), table(x))  # scaling included


def _write(tmp_path, data):
    p = tmp_path / "bad.json"
    p.write_text(data if isinstance(data, str) else json.dumps(data))
    return str(p)


GOOD = {"format": "nnlut.table", "version": 1, "breakpoints": [0.0, 1.0], "slopes": [0.0, 1.0, 2.0],
        "intercepts": [0.0, 0.0, -1.0]}


@pytest.mark.parametrize(
    "change,match",
    [
        ({"version": 99}, "unknown version 99"),
        ({"version": None}, "unknown version"),
        ({"format": "other"}, "'format'"),
        ({"slopes": [0.0, 1.0]}, "N-1 breakpoints"),
        ({"breakpoints": [1.0, 0.0]}, "strictly increasing"),
        ({"breakpoints": [0.0, "x"]}, "must be a number"),
        ({"intercepts": "abc"}, "must be a list"),
        ({"entries": 5}, "'entries' says 5"),
        ({"domain": [1.0]}, "'domain'"),
        ({"tails": ["clamp"]}, "'tails'"),
        ({"tails": ["clamp", "clamp"]}, "needs a domain"),
        ({"scaling": {"mode": "x", "exponent": -1, "period": 2}, "domain": [1.0, 8.0]}, "scaling mode"),
        ({"limits": [0.0, "big"]}, "'limits'"),
    ],
)
def test_bad_files(tmp_path, change, match):
    data = dict(GOOD, **change)
    with pytest.raises(NNLUTError, match=match) as e:
        nnlut.load(_write(tmp_path, data))
    assert "bad.json" in str(e.value)


def test_missing_keys_and_non_json(tmp_path):
    for key in ("breakpoints", "slopes", "intercepts", "version"):
        data = {k: v for k, v in GOOD.items() if k != key}
        with pytest.raises(NNLUTError, match=f"missing '{key}'"):
            nnlut.load(_write(tmp_path, data))
    with pytest.raises(NNLUTError, match="not valid JSON"):
        nnlut.load(_write(tmp_path, "{not json"))
    with pytest.raises(NNLUTError, match="JSON object"):
        nnlut.load(_write(tmp_path, "[1, 2]"))
    with pytest.raises(NNLUTError, match="does not exist"):
        nnlut.load(str(tmp_path / "nope.json"))
    with pytest.raises(NNLUTError, match="finite"):
        nnlut.load(_write(tmp_path, json.dumps(GOOD).replace("1.0]", "NaN]", 1)))


def test_non_finite_limits_are_written_as_strict_json(tmp_path, fitted):
    table = fitted("gelu")
    path = tmp_path / "g.json"
    table.save(str(path))
    text = path.read_text()
    assert "Infinity" not in text and "NaN" not in text
    assert nnlut.load(str(path)).limits == (0.0, math.inf)


def test_failed_write_leaves_no_file(tmp_path):
    table = Table([0.0], [0.0, 1.0], [0.0, 0.0])
    with pytest.raises(NNLUTError, match="does not exist"):
        table.save(str(tmp_path / "missing" / "t.json"))
    assert list(tmp_path.iterdir()) == []
