"""Default tables: shipped in the package, cached on disk, equal to a fresh fit."""

from __future__ import annotations

import json
import time

import pytest

from nnlut.models import _default_tables as dt


def test_every_default_is_shipped_for_this_version():
    data = json.loads(dt.SHIPPED.read_text())
    import nnlut

    assert data["nnlut_version"] == nnlut.__version__
    assert sorted(data["tables"]) == sorted(dt.table_key(*k) for k in dt.default_keys())


def _same_fit(shipped, fresh):
    """The shipped table is what the fitter gives: the same layout and, on a dense grid, the
    same error within 1% of it. Bit equality holds on one machine (tested by the table cache),
    but a fit's floating-point reductions round differently across CPUs (vector widths, BLAS
    kernels), and the polishing LP may move a breakpoint by far more than that last bit."""
    from nnlut.core._functions import get_function
    from nnlut.fitting._metrics import measure

    for field in ("function", "domain", "tails", "scaling"):
        assert getattr(shipped, field) == getattr(fresh, field), field
    assert shipped.entries == fresh.entries
    spec = get_function(shipped.function)
    err_shipped, err_fresh = (measure(t, spec, shipped.domain, points=200_001)["max_abs"] for t in (shipped, fresh))
    assert err_fresh <= 1.01 * err_shipped + 1e-12 and err_shipped <= 1.01 * err_fresh + 1e-12


def test_shipped_table_equals_a_fresh_fit():
    # rsqrt is the quickest default to refit (~5 s); the slow test below checks the others
    key = ("rsqrt", "nnlut", 16, "full", 0)
    shipped = dt.Table.from_dict(dt._shipped()[dt.table_key(*key)])
    _same_fit(shipped, dt.fit_fresh(*key))


@pytest.mark.slow
@pytest.mark.parametrize("key", [("exp", "nnlut", 16, "full", 0), ("silu", "nnlut", 16, "full", 0)])
def test_more_shipped_tables_equal_a_fresh_fit(key):
    shipped = dt.Table.from_dict(dt._shipped()[dt.table_key(*key)])
    _same_fit(shipped, dt.fit_fresh(*key))


def test_defaults_load_in_milliseconds_and_are_memoised(monkeypatch):
    dt._MEMO.clear()
    monkeypatch.setattr(dt, "fit_fresh", lambda *a: pytest.fail(f"refitted {a}"))
    t = time.perf_counter()
    tables = [dt.fitted_table(*k) for k in dt.default_keys()]
    assert time.perf_counter() - t < 5.0  # generous: loading JSON, not fitting (a fit takes seconds)
    assert all(dt.fitted_table(*k) is t for k, t in zip(dt.default_keys(), tables, strict=True))
    assert tables[0].function == "gelu" and tables[0].entries == 16


def test_other_tables_are_cached_on_disk_by_key(tmp_path, monkeypatch):
    monkeypatch.setenv("NNLUT_CACHE", str(tmp_path))
    dt._MEMO.clear()
    first = dt.fitted_table("gelu", "linear", 8, "full", 0)
    files = list(tmp_path.rglob("*.json"))
    assert [f.name for f in files] == ["gelu-linear-8-any-0.json"]
    import nnlut

    assert files[0].parent.name == nnlut.__version__
    dt._MEMO.clear()
    monkeypatch.setattr(dt, "fit_fresh", lambda *a: pytest.fail(f"refitted {a}"))
    assert dt.fitted_table("gelu", "linear", 8, "full", 0) == first
    files[0].write_text("{not json")  # a damaged entry is refitted, not an error
    dt._MEMO.clear()
    monkeypatch.undo()
    monkeypatch.setenv("NNLUT_CACHE", str(tmp_path))
    assert dt.fitted_table("gelu", "linear", 8, "full", 0) == first


def test_shipped_and_cached_tables_use_todays_error_measure(tmp_path, monkeypatch):
    # 1/x and 1/sqrt x fit relative error by default: the shipped paper-mode tables do too, and
    # a cached table fitted with another measure is refitted, not used
    for fn in dt.SCALED:
        t = dt.Table.from_dict(dt._shipped()[dt.table_key(fn, "nnlut", 16, "paper", 0)])
        assert t.meta["error_measure"] == "rel" and t.scaling.mode == "paper"
    monkeypatch.setenv("NNLUT_CACHE", str(tmp_path))
    stale = dt.Table([1.5], [-0.5, -0.25], [1.5, 1.0], domain=(1.0, 2.0), function="reciprocal",
                     meta={"error_measure": "abs"})
    path = dt.cache_root() / f"{dt.table_key('reciprocal', 'linear', 2, 'paper', 0)}.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(stale.to_dict()))
    dt._MEMO.clear()
    fresh = stale.replace(meta={"error_measure": "rel"})
    monkeypatch.setattr(dt, "fit_fresh", lambda *a: fresh)
    assert dt.fitted_table("reciprocal", "linear", 2, "paper", 0) is fresh
    dt._MEMO.clear()
    monkeypatch.setattr(dt, "fit_fresh", lambda *a: pytest.fail(f"refitted {a}"))
    assert dt.fitted_table("reciprocal", "linear", 2, "paper", 0) == fresh  # the refit was cached
    dt._MEMO.clear()
