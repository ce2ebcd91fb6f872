"""Score every candidate article for a query by fusing several similarity signals.

Signals are cosines in [0, 1]: ``dense`` (embeddings), ``lexical`` (TF-IDF over
words) and ``keywords`` (TF-IDF over curated keyword phrases). The fused score is
their weighted sum, with weights from :class:`~recommender.config.RankingConfig`
(which a learned ranker may set). No signal derived from id, date, file order or
publication batch exists here, on purpose: such signals would raise the metric
without making suggestions better for a reader.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from recommender.config import RankingConfig
from recommender.corpus import Corpus
from recommender.index import Index
from recommender.lexical import LexicalIndex, SparseSignal

#: how many ranked candidates are precomputed per article at build time
NEIGHBOURS = 100
_BLOCK = 512


class Ranker:
    """Fused scores of all articles against article rows or free text."""

    def __init__(self, index: Index):
        self.index = index
        self.config: RankingConfig = index.config.ranking
        self.excluded = np.array([a.no_index for a in index.articles], dtype=bool)

    @classmethod
    def build(cls, index: Index, corpus: Corpus) -> Ranker:
        """Fit the sparse signals the configuration weighs (they need the full texts)."""
        cfg = index.config.ranking
        signals: dict[str, SparseSignal] = {}
        if cfg.lexical > 0:
            signals["lexical"] = SparseSignal.fit(corpus.articles, "words", cfg.lexical_fields)
        if cfg.keywords > 0:
            signals["keywords"] = SparseSignal.fit(corpus.articles, "keywords", ())
        index.lexical = LexicalIndex(signals) if signals else None
        return cls(index)

    def _signals(self) -> Iterator[tuple[float, SparseSignal]]:
        if self.index.lexical is None:
            return
        for name, signal in self.index.lexical.signals.items():
            weight = getattr(self.config, name)
            if weight > 0:
                yield weight, signal

    def scores_for_rows(self, rows: np.ndarray) -> np.ndarray:
        """(len(rows), n) fused scores; each row's own article and no_index ones at -inf."""
        rows = np.asarray(rows, dtype=np.int64)
        vectors = self.index.vectors
        scores = self.config.dense * (vectors[rows] @ vectors.T)
        for weight, signal in self._signals():
            scores += weight * (signal.matrix[rows] @ signal.matrix.T).toarray()
        scores[:, self.excluded] = -np.inf
        scores[np.arange(len(rows)), rows] = -np.inf
        return scores

    def scores_for_text(self, text: str, vector: np.ndarray) -> np.ndarray:
        """(n,) fused scores of every article against free text and its embedding."""
        scores = self.config.dense * (self.index.vectors @ vector.astype(np.float32))
        for weight, signal in self._signals():
            q = signal.transform_text(text)
            scores += weight * (signal.matrix @ q.T).toarray().ravel()
        scores[self.excluded] = -np.inf
        return scores

    def all_neighbours(self, m: int = NEIGHBOURS) -> tuple[np.ndarray, np.ndarray]:
        """Top ``m`` candidates of every article, best first (-1 padded when fewer exist)."""
        n = len(self.index.articles)
        m_eff = min(m, max(n - 1, 0))
        rows_out = np.full((n, m), -1, dtype=np.int32)
        scores_out = np.full((n, m), -np.inf, dtype=np.float32)
        for start in range(0, n, _BLOCK):
            block = np.arange(start, min(start + _BLOCK, n))
            top, top_scores = top_k(self.scores_for_rows(block), m_eff)
            rows_out[block, :m_eff], scores_out[block, :m_eff] = top, top_scores
        rows_out[~np.isfinite(scores_out)] = -1
        return rows_out, scores_out


def top_k(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices and values of the ``k`` best scores of each row, best first.

    torch's top-k is about ten times faster than numpy's argpartition on wide rows,
    which matters when neighbours of every article are precomputed; numpy is the
    fallback for installs without torch.
    """
    if k <= 0:
        return (np.zeros((scores.shape[0], 0), np.int32), np.zeros((scores.shape[0], 0)))
    try:
        import torch
    except ImportError:
        torch = None
    if torch is not None:
        values, indices = torch.topk(torch.from_numpy(np.ascontiguousarray(scores)), k, dim=1)
        return indices.numpy().astype(np.int32), values.numpy().astype(np.float32)
    part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    part_scores = np.take_along_axis(scores, part, axis=1)
    order = np.argsort(-part_scores, axis=1, kind="stable")
    return (np.take_along_axis(part, order, axis=1).astype(np.int32),
            np.take_along_axis(part_scores, order, axis=1).astype(np.float32))
