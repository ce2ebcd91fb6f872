"""MMR diversity: ``diversity=0`` keeps the ranking; more of it trades relevance for variety."""

from __future__ import annotations

import numpy as np
import pytest

from recommender.evaluation.metrics import intra_list_diversity
from recommender.recommender import Recommender, mmr_order

CALVIN = "what-is-the-calvin-cycle"


def test_mmr_keeps_the_ranking_at_zero_and_avoids_near_copies_at_one():
    scores = np.array([3.0, 2.9, 2.8, 1.0])
    vectors = np.array([[1.0, 0.0], [1.0, 0.01], [0.99, 0.02], [0.0, 1.0]])
    assert mmr_order(scores, vectors, 3, 0.0) == [0, 1, 2]
    assert mmr_order(scores, vectors, 2, 1.0) == [0, 3]  # the best, then the least alike
    assert mmr_order(scores, vectors, 10, 0.5)[0] == 0  # never more than there are
    assert sorted(mmr_order(scores, vectors, 10, 0.5)) == [0, 1, 2, 3]


def test_related_with_diversity_is_more_varied_and_keeps_the_best(hashing_index):
    rec = Recommender(hashing_index)
    plain = rec.related(CALVIN, 5)
    varied = rec.related(CALVIN, 5, diversity=0.7)
    assert len(varied) == 5 and varied[0].article.url == plain[0].article.url
    pool = {s.article.url for s in rec.related(CALVIN, 20)}
    assert {s.article.url for s in varied} <= pool
    vectors = hashing_index.index.vectors

    def spread(found: list) -> float:
        rows = [[rec.row_of[s.article.url] for s in found]]
        return float(intra_list_diversity(rows, vectors, 5)[0])

    assert spread(varied) >= spread(plain)
    assert rec.related(CALVIN, 5, diversity=0.0) == plain
    text = rec.related_to_text("photosynthesis in plants", 5, diversity=0.5)
    assert len(text) == 5
    with pytest.raises(ValueError, match="between 0 and 1"):
        rec.related(CALVIN, 5, diversity=1.5)
