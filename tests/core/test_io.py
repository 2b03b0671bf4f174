"""Table files: round trip bit-exactly, and every kind of bad file is one clear error."""

from __future__ import annotations

import functools
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


@functools.cache
def _every_kind():
    from nnlut.fixed import choose_format, quantize_table, to_half
    from nnlut.models import fitted_table

    gelu = fitted_table("gelu", "nnlut", 16, "full")
    rsqrt = fitted_table("rsqrt", "nnlut", 16, "full")  # range-reduced: scaling and limits must survive
    return {
        "float": gelu,
        "int16": quantize_table(rsqrt, choose_format(rsqrt)),
        "int8": nnlut.fit("gelu", 8, format="int8:4", domain=(-4.0, 4.0)),
        "fp16": to_half(gelu, "fp16"),
        "bf16": to_half(rsqrt, "bf16"),
    }


def test_every_table_kind_saves_and_loads_identically(tmp_path):
    x = np.concatenate([np.linspace(-6, 6, 2001), np.geomspace(1e-3, 1e3, 500), [np.inf, -np.inf, np.nan, 0.0]])
    for kind, t in _every_kind().items():
        path = tmp_path / f"{kind}.json"
        t.save(path)
        back = nnlut.load(path)
        assert type(back) is type(t) and back == t, kind
        assert np.array_equal(back(x), t(x), equal_nan=True), kind
        assert back.replace() == t
        assert json.loads(path.read_text())["version"] == 1


def test_load_reads_what_export_writes(tmp_path):
    from nnlut.cli import main
    from nnlut.fixed import choose_format, quantize_table

    table = _every_kind()["float"]
    table.save(tmp_path / "gelu.json")
    assert main(["export", str(tmp_path / "gelu.json"), "--out", str(tmp_path / "out")]) == 0
    (path,) = (tmp_path / "out").glob("*_fixed.json")
    ft = nnlut.load(path)
    assert ft == quantize_table(table, choose_format(table))  # the command's defaults
    x = np.linspace(-20, 20, 4001)
    assert np.array_equal(ft(x), quantize_table(table, choose_format(table))(x))


@pytest.mark.parametrize("change, match", [
    ({"format": "nnlut.unknown"}, "'format' is 'nnlut.unknown'; this nnlut reads"),
    ({"version": 7}, "unknown version 7"),
    ({"slopes": [1.5]}, r"'slopes'\[0\] must be an integer"),
    ({"fmt": {"in_bits": 99}}, r"in_bits must be an integer in \[2, 32\], got 99"),
])
def test_bad_fixed_table_files(tmp_path, change, match):
    d = _every_kind()["int8"].to_dict()
    d.update(change)
    path = tmp_path / "t.json"
    path.write_text(json.dumps(d))
    with pytest.raises(NNLUTError, match=match) as e:
        nnlut.load(path)
    assert str(path) in str(e.value) and "\n" not in str(e.value)
