"""The fitted-table cache is verified, not trusted: a file copied over another key's, edited
after writing or left partial is refitted; a failed write leaves no temporary behind."""

from __future__ import annotations

import json

import numpy as np
import pytest

from nnlut import _files as nnlut_files
from nnlut.core._functions import get_function
from nnlut.models import _default_tables as dt


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("NNLUT_CACHE", str(tmp_path))
    monkeypatch.setattr(dt, "_MEMO", {})
    monkeypatch.setattr(dt, "_shipped", lambda: {})
    return dt.cache_root()


def _fresh(function):
    dt._MEMO.clear()
    return dt.fitted_table(function, "linear", 4, "any")


def _max_error(table, function):
    x = np.linspace(-4, -0.1, 501) if function == "exp" else np.linspace(-4, 4, 501)
    return float(np.max(np.abs(table(x) - get_function(function)(x))))


def test_a_table_copied_over_another_key_is_refitted(cache):
    gelu, exp = _fresh("gelu"), _fresh("exp")
    key = dt.table_key("gelu", "linear", 4, "any", 0)
    (cache / f"{key}.json").write_text((cache / f"{dt.table_key('exp', 'linear', 4, 'any', 0)}.json").read_text())
    again = _fresh("gelu")
    assert again.function == "gelu" and again == gelu and _max_error(again, "gelu") < 0.5
    assert exp.function == "exp"


def test_an_edited_or_partial_file_is_refitted(cache):
    gelu = _fresh("gelu")
    path = cache / f"{dt.table_key('gelu', 'linear', 4, 'any', 0)}.json"
    data = json.loads(path.read_text())
    data["table"]["intercepts"][0] += 1.0  # the recorded hash no longer matches
    path.write_text(json.dumps(data))
    assert _fresh("gelu") == gelu
    path.write_text(path.read_text()[:40])  # a partial file
    assert _fresh("gelu") == gelu
    assert json.loads(path.read_text())["sha256"] == dt._digest(json.loads(path.read_text())["table"])


def test_a_failed_write_leaves_no_temporary(cache, monkeypatch):
    def full_disk(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(nnlut_files.os, "replace", full_disk)  # the cache writes through nnlut._files
    table = _fresh("gelu")  # still returned: the cache only saves a refit
    assert table.function == "gelu"
    assert not list(cache.glob("*.tmp")) and not list(cache.glob("*.json"))
