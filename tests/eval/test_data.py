"""Sentiment data: parsing, labels, seeded splits (needs the data fetched by the set-up)."""

from __future__ import annotations

import numpy as np
import pytest

from nnlut import NNLUTError
from nnlut.eval._data import data_dir, load_set, split

pytestmark = pytest.mark.skipif(not (data_dir() / "movieReviewSnippets_GroundTruth.txt").exists(),
                                reason="sentiment data not fetched (scripts/setup.sh runs 'nnlut data fetch')")


def test_sets_parse_with_labels_from_score_signs():
    sizes = {"movie": 10568, "amazon": 3610, "nyt": 4946, "tweets": 4196}  # files minus exact-zero scores
    for name, n in sizes.items():
        d = load_set(name)
        assert len(d) == n
        assert np.all(d.labels == (d.scores > 0)) and np.all(d.scores != 0)
        assert all(t and "\t" not in t and not t.endswith("\r") for t in d.texts)
        assert np.all(np.abs(d.scores) <= 4)


def test_split_is_seeded_half_half_and_disjoint():
    d = load_set("movie")
    tr, te = split(d, 0)
    tr2, te2 = split(d, 0)
    assert np.array_equal(tr.ids, tr2.ids) and len(tr) == len(te) == 5284
    assert not set(tr.ids) & set(te.ids)
    assert abs(tr.labels.mean() - 0.5) < 0.03  # a permutation, not a positional cut
    assert not np.array_equal(split(d, 1)[0].ids, tr.ids)


def test_unknown_set():
    with pytest.raises(NNLUTError, match="unknown sentiment set"):
        load_set("imdb")


def test_limit_is_a_stratified_sample_not_a_prefix():
    _, te = split(load_set("movie"), 0)
    sub = te.limit(400, seed=0)
    assert len(sub) == 400 and abs(sub.positive_share - te.positive_share) < 1 / 400 + 1e-12
    assert 0.35 <= sub.positive_share <= 0.65
    prefix_share = te.labels[:400].mean()  # what a positional cut would give: far from balanced
    assert abs(prefix_share - te.positive_share) > 0.2
    assert set(sub.ids) <= set(te.ids) and not np.array_equal(sub.ids, te.limit(400, seed=1).ids)
    assert te.limit(None) is te and te.limit(len(te)) is te


def test_limit_keeps_the_difficulty_mix():
    _, te = split(load_set("movie"), 0)
    sub = te.limit(400, seed=3)
    q = te.difficulty()
    for c in (0, 1):
        want = np.bincount(q[te.labels == c], minlength=4) / np.sum(te.labels == c)
        where = {i: k for k, i in enumerate(te.ids)}
        qs = q[[where[i] for i in sub.ids]]  # each sampled sentence's quartile in the whole half
        got = np.bincount(qs[sub.labels == c], minlength=4)
        assert np.all(np.abs(got / got.sum() - want) < 0.01)
    first = te.subset(np.arange(400))  # a prefix, for contrast: a different mix
    assert abs(first.positive_share - te.positive_share) > 0.2
