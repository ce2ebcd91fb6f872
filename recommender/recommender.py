"""Related-article suggestions for a known article or for free text.

Rules every caller can rely on: never the article itself, never a copy of it
(same id, another subject), never a ``no_index`` article, never two copies of one
article; filters select or exclude subjects and urls.

References (url, id, slug, path) resolve as everywhere else
(:mod:`recommender.references`).

Example:
    >>> rec = Recommender.load("~/.cache/recommender/index")   # doctest: +SKIP
    >>> [s.article.subject for s in rec.related("what-is-the-calvin-cycle", k=2)]  # doctest: +SKIP
    ['Biology', 'Biology']
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from recommender.corpus import Article, subject_key
from recommender.decisions import DecisionStore, Rules
from recommender.encoders import load_encoder
from recommender.errors import InvalidFilter
from recommender.explain import explain_pair
from recommender.pipeline import Snapshot, load_index
from recommender.references import References
from recommender.text import clean_text


class Filters(BaseModel):
    """Which candidates may be suggested."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    only_subjects: frozenset[str] = Field(default_factory=frozenset)
    exclude_subjects: frozenset[str] = Field(default_factory=frozenset)
    exclude_urls: frozenset[str] = Field(default_factory=frozenset)
    cross_subject_only: bool = False


@dataclass(frozen=True)
class Suggestion:
    """One suggested article, its fused score, and whether an editor already linked it
    (or accepted it) or pinned it; with ``explain``, why it is suggested."""

    article: Article
    score: float
    curated: bool = False
    pinned: bool = False
    explanation: dict[str, object] | None = None


class Recommender:
    """Answers related-article queries from a :class:`~recommender.pipeline.Snapshot`
    (an index and its ranking state)."""

    def __init__(self, snapshot: Snapshot):
        self.snapshot = snapshot
        self.index = snapshot.index
        self.ranker = snapshot.ranker()
        self.suggestions = snapshot.ranking.suggestions
        self.articles = snapshot.articles
        self.row_of = {a.url: i for i, a in enumerate(self.articles)}
        self.references = References(self.articles, snapshot.index.root, paths_from_root=True)
        content_ids: dict[str, int] = {}
        self._content = np.array(  # copies share one small integer
            [content_ids.setdefault(a.content_key, len(content_ids)) for a in self.articles],
            dtype=np.int64)
        self.subjects = {subject_key(a.subject): a.subject for a in self.articles if a.subject}
        self._decisions = DecisionStore(self.index.root)

    @classmethod
    def load(cls, directory: str | Path) -> Recommender:
        return cls(load_index(Path(directory).expanduser()))

    def folder_decisions(self) -> Rules:
        """The editors' decisions kept in the indexed folder (:mod:`recommender.decisions`)."""
        return self.decision_store.rules()

    @property
    def decision_store(self) -> DecisionStore:
        """The folder's decisions file (one store per recommender: its lock is re-entrant)."""
        return self._decisions

    # -- lookup --------------------------------------------------------------------------

    def get(self, ref: str) -> Article:
        """An article by url, id, slug or path (relative to the content folder)."""
        return self.articles[self._row(ref)]

    def _row(self, ref: str | Article) -> int:
        if isinstance(ref, Article):
            if ref.url in self.row_of:
                return self.row_of[ref.url]
            ref = ref.url
        return self.references.row(ref)

    # -- queries ---------------------------------------------------------------------------

    def related(self, article: str | Article, k: int = 5,
                filters: Filters | None = None, decisions: Rules | None = None,
                explain: bool = False) -> list[Suggestion]:
        """Suggestions for a known article (by object, url, id, slug or path).

        ``decisions``: editors' decisions (:mod:`recommender.decisions`) to honour:
        rejected and blocked targets are dropped, pinned ones come first, accepted
        ones count as curated. ``explain``: attach why each one is suggested.
        """
        row = self._row(article)
        source = self.articles[row]
        filters = filters or Filters()
        if decisions is not None:
            filters = filters.model_copy(update={"exclude_urls": filters.exclude_urls
                                                 | decisions.excluded(source.url)})
        rows, scores = self.suggestions.rows[row], self.suggestions.scores[row]
        picked = self._pick(rows, scores, k, filters, source, row)
        if len(picked) < k and self.suggestions.rows.shape[1] < len(self.articles):
            full = self.ranker.scores_for_rows(np.array([row]))[0]
            order = np.argsort(-full, kind="stable")
            picked = self._pick(order, full[order], k, filters, source, row)
        if decisions is not None:
            picked = self._decided(picked, source, row, k, filters, decisions)
        if explain:
            picked = [replace(s, explanation=explain_pair(
                self.ranker, row, self.row_of[s.article.url], s.curated)) for s in picked]
        return picked

    def _decided(self, picked: list[Suggestion], source: Article, row: int, k: int,
                 filters: Filters, decisions: Rules) -> list[Suggestion]:
        """``picked`` with the article's pinned targets first and accepted ones as curated."""
        pins = [self.row_of[u] for u in decisions.pins(source.url) if u in self.row_of]
        top = max((s.score for s in picked), default=0.0)
        pinned = [replace(s, pinned=True, score=max(s.score, top))
                  for s in self._pick(np.array(pins, dtype=np.int64),
                                      np.full(len(pins), top), len(pins), filters, source, row)]
        urls = {s.article.url for s in pinned}
        rest = [s for s in picked if s.article.url not in urls]
        return [replace(s, curated=s.curated or decisions.is_accepted(source.url, s.article.url))
                for s in (pinned + rest)[:k]]

    def related_to_text(self, text: str, k: int = 5, filters: Filters | None = None,
                        decisions: Rules | None = None) -> list[Suggestion]:
        """Suggestions for free text, such as a draft's title, question and answer
        (``decisions``: blocked articles are never suggested)."""
        filters = filters or Filters()
        if decisions is not None:
            filters = filters.model_copy(update={"exclude_urls": filters.exclude_urls
                                                 | decisions.excluded(None)})
        cleaned = clean_text(text)
        config = self.snapshot.config
        encoder = load_encoder(config.model, config.text.max_tokens)
        vector = encoder.encode([cleaned])[0]
        scores = self.ranker.scores_for_text(cleaned, vector)
        n = min(len(scores), max(4 * k, 64))
        while True:
            top = np.argpartition(-scores, n - 1)[:n] if n < len(scores) else np.arange(n)
            order = top[np.argsort(-scores[top], kind="stable")]
            picked = self._pick(order, scores[order], k, filters, None, -1)
            if len(picked) >= k or n >= len(scores):
                return picked
            n = min(len(scores), n * 4)

    # -- filtering -------------------------------------------------------------------------

    def _subject_keys(self, names: Iterable[str]) -> set[str]:
        keys = {subject_key(n) for n in names}
        unknown = sorted(k for k in keys if k not in self.subjects)
        if unknown:
            raise InvalidFilter(f"unknown subject(s): {', '.join(unknown)}; known subjects: "
                                + ", ".join(sorted(self.subjects.values())))
        return keys

    def _pick(self, rows: np.ndarray, scores: np.ndarray, k: int, filters: Filters,
              source: Article | None, source_row: int) -> list[Suggestion]:
        only = self._subject_keys(filters.only_subjects)
        exclude = self._subject_keys(filters.exclude_subjects)
        if filters.cross_subject_only and source is not None and source.subject:
            exclude = exclude | {subject_key(source.subject)}
        seen = {self._content[source_row]} if source_row >= 0 else set()
        curated_keys = set()
        if source is not None:
            curated_keys = {self._content[self.row_of[u]] for u in source.links
                            if u in self.row_of}
        out: list[Suggestion] = []
        for r, s in zip(rows.tolist(), scores.tolist()):
            if r < 0 or not np.isfinite(s):
                continue
            a = self.articles[r]
            content = self._content[r]
            if content in seen or a.no_index or a.url in filters.exclude_urls:
                continue
            key = subject_key(a.subject)
            if (only and key not in only) or key in exclude:
                continue
            seen.add(content)
            out.append(Suggestion(a, float(s), content in curated_keys))
            if len(out) >= k:
                break
        return out
