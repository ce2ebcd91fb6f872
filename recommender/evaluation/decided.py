"""Any method with the editors' decisions applied, for ``evaluate --decisions`` and
``suggest``: rejected and blocked targets dropped, pinned ones first.

Scoring with decisions shows what editors' choices did to the metrics; the default
evaluation scores without them, as decisions are made while looking at curated links.
"""

from __future__ import annotations

import numpy as np

from recommender.corpus import Corpus
from recommender.decisions import Rules
from recommender.evaluation.protocol import Method


class WithDecisions:
    """``inner`` re-ranked by ``rules`` (a fitted inner method is still fitted per fold)."""

    def __init__(self, inner: Method, rules: Rules, corpus: Corpus):
        self.inner, self.rules, self.corpus = inner, rules, corpus
        self.name = f"{inner.name}+decisions"
        self.row_of = {a.url: i for i, a in enumerate(corpus.articles)}
        if callable(getattr(inner, "fit", None)):
            self.fit = inner.fit  # type: ignore[attr-defined]
        if getattr(inner, "rank_within", None) is None:  # the runner then restricts it itself
            self.rank_within = None  # type: ignore[assignment,method-assign]

    def rank(self, queries: np.ndarray, n: int) -> list[list[int]]:
        return self._decided(queries, n, self.inner.rank(queries, n + self._extra()))

    def rank_within(self, queries: np.ndarray, n: int, groups: np.ndarray) -> list[list[int]]:
        """The inner method's ranking within each query's group, with the decisions
        (a pinned article of another group is not a candidate there)."""
        ranked = self.inner.rank_within(queries, n + self._extra(), groups)  # type: ignore[attr-defined]
        return self._decided(queries, n, ranked, groups)

    def _extra(self) -> int:
        return len(self.rules.blocked) + len(self.rules.rejected)

    def _decided(self, queries: np.ndarray, n: int, rankings: list[list[int]],
                 groups: np.ndarray | None = None) -> list[list[int]]:
        out = []
        for q, ranked in zip(queries.tolist(), rankings, strict=True):
            url = self.corpus.articles[q].url
            dropped = {self.row_of[u] for u in self.rules.excluded(url) if u in self.row_of}
            pins = [self.row_of[u] for u in self.rules.pins(url) if u in self.row_of
                    and (groups is None or groups[self.row_of[u]] == groups[q])]
            kept = pins + [r for r in ranked if r not in dropped and r not in pins]
            out.append(kept[:n])
        return out
