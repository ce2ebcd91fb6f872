"""Sharded vector search: fan out to every shard, merge by score, find what one index finds."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from recommender.config import VectorConfig
from recommender.errors import IndexCorrupt
from recommender.pipeline import build_index, load_index
from recommender.vectors import Shards, VectorSearch, merge_top_k, recall_against_exact

from .conftest import HASHING


def _random_vectors(n: int, dim: int, seed: int = 0) -> np.ndarray:
    v = np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


@pytest.mark.parametrize("shards", [2, 3, 7])
def test_sharded_exact_search_equals_unsharded_exact_search(shards: int):
    vectors = _random_vectors(3001, 32)
    queries = _random_vectors(200, 32, seed=1)
    one = VectorSearch(vectors, VectorConfig())
    many = VectorSearch(vectors, VectorConfig(shards=shards))
    assert isinstance(many.index, Shards) and len(many.index.shards) == shards
    assert sorted(int(s.ntotal) for s in many.index.shards)[-1] - \
        sorted(int(s.ntotal) for s in many.index.shards)[0] <= 1
    np.testing.assert_array_equal(many.search(queries, 25), one.search(queries, 25))
    # more asked than a shard holds: every row, in the same order up to float32 rounding
    every = many.search(queries[:5], 3001)
    np.testing.assert_array_equal(np.sort(every), np.sort(one.search(queries[:5], 3001)))
    scores = np.einsum("qd,qkd->qk", queries[:5], vectors[every])
    assert (np.diff(scores, axis=1) <= 1e-6).all()


@pytest.mark.parametrize("config", [VectorConfig(index="hnsw", shards=3),
                                    VectorConfig(index="ivf", shards=2, nprobe=64)])
def test_approximate_shards_find_the_exact_neighbours(config: VectorConfig):
    vectors = _random_vectors(2000, 32)
    assert recall_against_exact(vectors, config, 10, np.arange(0, 2000, 20)) > 0.9
    described = VectorSearch(vectors, config).describe()
    assert described["shards"]["count"] == config.shards
    assert sum(described["shards"]["rows"]) == 2000
    assert all(b > 2000 // config.shards * 32 * 4 for b in described["shards"]["bytes"])


def test_ivf_pq_shards_hold_codes_instead_of_vectors():
    vectors = _random_vectors(2000, 32)
    flat = VectorSearch(vectors, VectorConfig(index="ivf", shards=2, nprobe=64))
    pq = VectorSearch(vectors, VectorConfig(index="ivf", shards=2, nprobe=64, pq_m=4))
    assert sum(pq.describe()["shards"]["bytes"]) < sum(flat.describe()["shards"]["bytes"]) / 4
    assert recall_against_exact(vectors, pq.config, 10, np.arange(0, 2000, 20)) > 0.2


def test_merge_puts_missing_candidates_last_and_breaks_ties_by_row():
    scores = np.array([[0.5, 0.9, 0.5, 0.1]], np.float32)
    rows = np.array([[7, 3, 2, -1]])
    top_scores, top_rows = merge_top_k(scores, rows, 4)
    assert top_rows.tolist() == [[3, 2, 7, -1]]
    assert top_scores[0, 3] == -np.inf


def test_sharded_index_is_saved_loaded_and_suggests_as_one(tmp_path: Path, demo_corpus):
    flat = build_index(demo_corpus, HASHING, tmp_path / "flat", tmp_path / "cache")
    config = HASHING.model_copy(update={"vectors": VectorConfig(index="hnsw", shards=3)})
    built = build_index(demo_corpus, config, tmp_path / "sharded", tmp_path / "cache")
    assert built.manifest["vectors"]["shards"]["rows"] == [20, 20, 21]
    assert sorted(p.name for p in (tmp_path / "sharded").glob("*.faiss")) == [
        f"vectors.shard-00{i}.faiss" for i in range(3)]
    loaded = load_index(tmp_path / "sharded", expected=config)
    assert isinstance(loaded.index.search.index, Shards)
    np.testing.assert_array_equal(loaded.ranking.suggestions.rows, flat.ranking.suggestions.rows)
    np.testing.assert_array_equal(  # as sets: the demo has articles of the same text (ties)
        np.sort(loaded.index.search.search(loaded.index.vectors[:5], 10)),
        np.sort(flat.index.search.search(flat.index.vectors[:5], 10)))
    (tmp_path / "sharded" / "vectors.shard-001.faiss").unlink()
    with pytest.raises(IndexCorrupt, match="vectors.faiss"):
        load_index(tmp_path / "sharded")
