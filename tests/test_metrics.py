"""Metrics: agreement with ranx on random data, and values worked out by hand."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import scipy.sparse as sp

from recommender.evaluation.bootstrap import paired_bootstrap
from recommender.evaluation.metrics import (
    RELEVANCE_METRICS,
    catalog_coverage,
    cross_subject_share,
    group_means,
    hit_matrix,
    intra_list_diversity,
    recall_curve,
    relevance_metrics,
)


def _random_case(seed: int, n_queries: int = 80, n_items: int = 60):
    rng = np.random.default_rng(seed)
    ranked, relevant = [], []
    for _ in range(n_queries):
        relevant.append(np.sort(rng.choice(n_items, rng.integers(1, 9), replace=False)))
        # lists of varied length, some shorter than k, to exercise ranx's short-run rules
        ranked.append(rng.choice(n_items, rng.integers(1, 26), replace=False).tolist())
    return ranked, relevant


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_relevance_metrics_agree_with_ranx(seed: int) -> None:
    ranx = pytest.importorskip("ranx")
    ranked, relevant = _random_case(seed)
    qrels = ranx.Qrels({f"q{i:03d}": {f"d{d}": 1 for d in rel.tolist()}
                        for i, rel in enumerate(relevant)})
    run = ranx.Run({f"q{i:03d}": {f"d{d}": float(100 - j) for j, d in enumerate(items)}
                    for i, items in enumerate(ranked)})
    ks = (1, 3, 5, 10, 20)
    names = [f"{m}@{k}" for m in RELEVANCE_METRICS for k in ks]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # numba's uint64 cast warnings inside ranx
        expected = ranx.evaluate(qrels, run, names, return_mean=False)
    hits = hit_matrix(ranked, relevant, 20)
    n_rel = np.array([len(r) for r in relevant])
    ours: dict[str, np.ndarray] = {}
    for k in ks:
        ours.update(relevance_metrics(hits, n_rel, k))
    for name in names:
        np.testing.assert_allclose(ours[name], expected[name], atol=1e-12, err_msg=name)


def test_relevance_metrics_by_hand() -> None:
    # query A: relevant {1, 2, 3}; ranked 1 9 2 8 7  -> hits at ranks 1 and 3
    # query B: relevant {5};       ranked 6 7 5       -> hit at rank 3, list shorter than 5
    # query C: relevant {4, 6};    ranked 0 1         -> no hit
    ranked = [[1, 9, 2, 8, 7], [6, 7, 5], [0, 1]]
    relevant = [np.array([1, 2, 3]), np.array([5]), np.array([4, 6])]
    hits = hit_matrix(ranked, relevant, 5)
    assert hits.tolist() == [[True, False, True, False, False],
                             [False, False, True, False, False],
                             [False] * 5]
    got = relevance_metrics(hits, np.array([3, 1, 2]), 5)
    # recall: A 2/3, B 1/1, C 0
    np.testing.assert_allclose(got["recall@5"], [2 / 3, 1.0, 0.0])
    # precision divides by k even for short lists: A 2/5, B 1/5
    np.testing.assert_allclose(got["precision@5"], [0.4, 0.2, 0.0])
    np.testing.assert_allclose(got["hit_rate@5"], [1.0, 1.0, 0.0])
    # mrr: A first hit at 1, B at 3
    np.testing.assert_allclose(got["mrr@5"], [1.0, 1 / 3, 0.0])
    # map: A (P@1 + P@3) / R = (1 + 2/3) / 3 = 5/9; B (P@3) / 1 = 1/3
    np.testing.assert_allclose(got["map@5"], [5 / 9, 1 / 3, 0.0])
    # ndcg A: dcg = 1/log2(2) + 1/log2(4) = 1.5; idcg (3 relevant) = 1 + 1/log2(3) + 1/2
    # ndcg B: dcg = 1/log2(4) = 0.5; idcg = 1
    idcg_a = 1 + 1 / math.log2(3) + 0.5
    np.testing.assert_allclose(got["ndcg@5"], [1.5 / idcg_a, 0.5, 0.0])
    # recall curve, k=1..5: A 1/3,1/3,2/3,2/3,2/3; B 0,0,1,1,1; C 0 -> means over 3 queries
    np.testing.assert_allclose(recall_curve(hits, np.array([3, 1, 2])),
                               [1 / 9, 1 / 9, 5 / 9, 5 / 9, 5 / 9])


def test_k_beyond_depth_is_refused() -> None:
    hits = hit_matrix([[1, 2]], [np.array([1])], 3)
    with pytest.raises(ValueError):
        relevance_metrics(hits, np.array([1]), 5)


def test_coverage_by_hand() -> None:
    # 10 candidates; top-2 lists show {0,1}, {1,2}, {3} -> 4 distinct of 10
    assert catalog_coverage([[0, 1, 7], [1, 2], [3]], 10, 2) == pytest.approx(0.4)
    # top-3: adds 7 -> 5 of 10
    assert catalog_coverage([[0, 1, 7], [1, 2], [3]], 10, 3) == pytest.approx(0.5)


def test_diversity_by_hand() -> None:
    # rows 0 and 1 are orthogonal unit vectors, row 2 equals row 0, row 3 is (1,1)/sqrt2
    s = 1 / math.sqrt(2)
    vectors = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [s, s]])
    lists = [[0, 1], [0, 2], [0, 1, 3], [1], []]
    # [0,1]: distance 1.  [0,2]: distance 0.
    # [0,1,3]: pairs (0,1)=1, (0,3)=1-s, (1,3)=1-s -> mean (3 - 2s) / 3
    # [1] and []: undefined (fewer than 2)
    expected = [1.0, 0.0, (3 - 2 * s) / 3, np.nan, np.nan]
    np.testing.assert_allclose(intra_list_diversity(lists, vectors, 3), expected)
    np.testing.assert_allclose(intra_list_diversity(lists, sp.csr_matrix(vectors), 3), expected)
    # k=2 cuts [0,1,3] to [0,1]
    assert intra_list_diversity(lists, vectors, 2)[2] == pytest.approx(1.0)


def test_cross_subject_share_by_hand() -> None:
    got = cross_subject_share(["Physics", "Medicine", "Law"],
                              [["Physics", "Mathematics", "Physics", "Biology"], ["Medicine"], []],
                              3)
    # Physics query, top 3 = Physics, Mathematics, Physics -> 1/3; Medicine -> 0; none -> NaN
    np.testing.assert_allclose(got, [1 / 3, 0.0, np.nan])


def test_group_means_ignore_undefined() -> None:
    got = group_means({"m": np.array([1.0, 0.0, np.nan, 0.5])}, ["a", "a", "b", "b"])
    assert got == {"a": {"m": 0.5, "queries": 2.0}, "b": {"m": 0.5, "queries": 2.0}}


def test_paired_bootstrap_brackets_the_difference() -> None:
    rng = np.random.default_rng(0)
    base = rng.random(500)
    better = base + 0.1 + rng.normal(0, 0.05, 500)
    (interval,) = paired_bootstrap("b", {"m": better}, "a", {"m": base}, ["m"], 500, seed=1)
    assert interval.low < interval.difference < interval.high
    assert interval.low > 0.09 and interval.high < 0.11
    assert interval.significant and interval.p_value < 0.01
    (same,) = paired_bootstrap("a", {"m": base}, "a", {"m": base}, ["m"], 200, seed=1)
    assert (same.difference, same.low, same.high) == (0.0, 0.0, 0.0)
    assert not same.significant
    # seeded: the same call gives the same interval
    again = paired_bootstrap("b", {"m": better}, "a", {"m": base}, ["m"], 500, seed=1)[0]
    assert again == interval
