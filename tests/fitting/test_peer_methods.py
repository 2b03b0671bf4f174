"""The peer methods of benchmarks/peers.py against independent references: NLI's dynamic
programme against exhaustive search, its tables against the exact function at the cut-points,
GQA-LUT's tables in its INT8 datapath against the same table in real arithmetic."""

from __future__ import annotations

import itertools
import sys
from pathlib import Path

import numpy as np
import pytest

import nnlut

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
peers_gqa = pytest.importorskip("peers_gqa")
peers_nli = pytest.importorskip("peers_nli")


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("segments", [1, 2, 3, 4])
def test_best_path_is_the_exhaustive_optimum(seed: int, segments: int) -> None:
    rng = np.random.default_rng(seed)
    c = 8
    cost = np.triu(rng.uniform(0, 10, (c, c)), 1)
    cost[np.tril_indices(c)] = np.inf
    path = peers_nli.best_path(cost, segments)
    got = sum(cost[a, b] for a, b in itertools.pairwise(path))
    best = min(sum(cost[a, b] for a, b in itertools.pairwise((0, *mid, c - 1)))
               for mid in itertools.combinations(range(1, c - 1), segments - 1))
    assert path[0] == 0 and path[-1] == c - 1 and len(path) == segments + 1
    assert np.all(np.diff(path) > 0)
    assert got == pytest.approx(best, rel=1e-12)


def test_nli_table_interpolates_on_fp16_cutpoints() -> None:
    table = peers_nli.nli_table("tanh", 8, candidates=64, stride=32)
    spec = nnlut.get_function("tanh")
    cuts = np.concatenate([[table.domain[0]], table.breakpoints, [table.domain[1]]])
    assert table.entries == 8
    assert np.array_equal(cuts.astype(np.float16).astype(np.float64), cuts)  # FP16 values
    assert cuts[0] == -65504.0 and cuts[-1] == 65504.0
    np.testing.assert_allclose(table(cuts), np.tanh(cuts), atol=1e-12)
    mid = (cuts[:-1] + cuts[1:]) / 2  # linear interpolation between neighbours
    np.testing.assert_allclose(table(mid), (spec(cuts[:-1]) + spec(cuts[1:])) / 2, atol=1e-12)


def test_more_segments_lower_nli_objective() -> None:
    x, f = peers_nli.counted_inputs("sigmoid")
    w = 1.0 / np.maximum(np.abs(f), 2.0**-14)

    def objective(n: int) -> float:
        t = peers_nli.nli_table("sigmoid", n, candidates=64, stride=32)
        return float(np.mean(np.abs(t(x) - f) * w))

    assert objective(8) < objective(4)


@pytest.mark.parametrize("key", sorted(peers_gqa.PUBLISHED))
def test_published_gqa_tables_in_int8_match_real_arithmetic(key: tuple[str, int]) -> None:
    name, n = key
    table = peers_gqa.as_table(name, *(np.array(v) for v in peers_gqa.PUBLISHED[key]), {})
    ft = peers_gqa.as_int8(name, table, peers_gqa.PUBLISHED_P)
    codes = np.arange(-128, 128)
    x = codes / 2.0**peers_gqa.PUBLISHED_P
    np.testing.assert_allclose(ft(x), table(x), atol=1e-12)
    assert table.entries <= n  # equal breakpoints merged


def test_gqa_search_is_quantisation_aware() -> None:
    bp, s, t = peers_gqa.gqa_search("exp", 8, 4, generations=20, population=12)
    assert len(bp) == 7 and np.all(np.diff(bp) >= 0)
    for v, q in ((bp, 16), (s, 64), (t, 64)):
        assert np.array_equal(np.round(v * q), v * q)
    table = peers_gqa.as_table("exp", bp, s, t, {})
    x = np.linspace(-8, 0, 2001)
    assert np.max(np.abs(table(x) - np.exp(x))) < 0.1
