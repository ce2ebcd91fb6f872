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
    #: a front-matter field (``date``, ``language``, ``section``...): only articles whose
    #: value of it equals the query article's. It restricts the candidates, and is never a
    #: ranking signal; free text has no value of it, so it applies to article queries only.
    same: str | None = None


@dataclass(frozen=True)
class Suggestion:
    """One suggested article, its fused score, and whether an editor already linked it
    (or accepted it) or pinned it; with ``explain``, why it is suggested."""

    article: Article
    score: float
    curated: bool = False
    pinned: bool = False
    explanation: dict[str, object] | None = None


#: ``same=`` sets up to this size are scored in full (a publication batch, a course,
#: a section): exactly the ranking restricted to the set, which is also what the
#: evaluation's within protocol measures. Larger sets (a language of a whole site) start
#: from the precomputed suggestions and are scored in full only when those fall short.
SAME_DIRECT = 5000
#: with diversity, MMR re-orders this many of the best suggestions (at least), k times 4
DIVERSITY_POOL = 20


def mmr_order(scores: np.ndarray, vectors: np.ndarray, k: int, diversity: float) -> list[int]:
    """Positions of ``k`` items chosen by maximal marginal relevance (Carbonell and
    Goldstein, 1998), from items ranked best first.

    Each step takes the item with the best ``(1 - diversity) * relevance - diversity *
    (its highest cosine with an item already taken)``. Relevance comes from the rank,
    1 for the best down to 1/len for the last: ranker scores are logits, sums of
    cosines or, past the candidates, fill-in values below every candidate, whose
    scale says nothing comparable to a cosine. The cosines are those of ``vectors``
    (rows of the items). ``diversity`` 0 keeps the ranking; 1 takes the best item,
    then always the one least like those taken. Ties keep the ranking's order.
    """
    n = len(scores)
    k = min(k, n)
    if diversity <= 0 or n <= 1:
        return list(range(k))
    order = np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")
    relevance = np.empty(n)
    relevance[order] = 1.0 - np.arange(n) / n
    v = np.asarray(vectors, dtype=np.float64)
    v = v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)
    similar = v @ v.T
    first = int(order[0])
    chosen = [first]
    closest = similar[first].copy()
    free = np.ones(n, dtype=bool)
    free[first] = False
    while len(chosen) < k:
        value = (1.0 - diversity) * relevance - diversity * closest
        value[~free] = -np.inf
        j = int(np.argmax(value))
        chosen.append(j)
        free[j] = False
        closest = np.maximum(closest, similar[j])
    return chosen


def _check_diversity(diversity: float) -> None:
    if not 0.0 <= diversity <= 1.0:
        raise ValueError(f"diversity must be between 0 and 1, not {diversity}")


class Recommender:
    """Answers related-article queries from a :class:`~recommender.pipeline.Snapshot`
    (an index and its ranking state)."""

    def __init__(self, snapshot: Snapshot):
        self.snapshot = snapshot
        self.index = snapshot.index
        self.ranker = snapshot.ranker()
        self.suggestions = snapshot.ranking.suggestions
        self.articles = snapshot.articles
        self.references = References(self.articles, snapshot.index.root, paths_from_root=True)
        self.row_of = self.references.by_url  # an index's urls are unique: the same map
        content_ids: dict[str, int] = {}
        self._content = np.array(  # copies share one small integer
            [content_ids.setdefault(a.content_key, len(content_ids)) for a in self.articles],
            dtype=np.int64)
        self.subjects = {subject_key(a.subject): a.subject for a in self.articles if a.subject}
        self._decisions = DecisionStore(self.index.root)
        self._field_names: frozenset[str] | None = None

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

    def related(self, article: str | Article, k: int = 5, filters: Filters | None = None,
                diversity: float = 0.0, decisions: Rules | None = None,
                explain: bool = False) -> list[Suggestion]:
        """Suggestions for a known article (by object, url, id, slug or path).

        ``diversity`` (0 to 1): re-order the best ``max(4k, 20)`` by maximal marginal
        relevance (:func:`mmr_order`) over the dense vectors, so that k suggestions
        are not k takes on one sub-topic; 0 (the default) keeps the ranking.
        ``decisions``: editors' decisions (:mod:`recommender.decisions`) to honour:
        rejected and blocked targets are dropped, pinned ones come first, accepted
        ones count as curated. ``explain``: attach why each one is suggested.
        """
        _check_diversity(diversity)
        row = self._row(article)
        source = self.articles[row]
        filters = filters or Filters()
        if decisions is not None:
            filters = filters.model_copy(update={"exclude_urls": filters.exclude_urls
                                                 | decisions.excluded(source.url)})
        if diversity > 0:
            pool = self._ranked(source, row, max(4 * k, DIVERSITY_POOL), filters)
            picked = self._diversify(pool, k, diversity)
        else:
            picked = self._ranked(source, row, k, filters)
        if decisions is not None:
            picked = self._decided(picked, source, row, k, filters, decisions)
        if explain:
            picked = [replace(s, explanation=explain_pair(
                self.ranker, row, self.row_of[s.article.url], s.curated)) for s in picked]
        return picked

    def _ranked(self, source: Article, row: int, k: int, filters: Filters
                ) -> list[Suggestion]:
        """The ranking's best ``k`` for ``source`` under ``filters``."""
        if filters.same is not None:
            among = self.same_rows(source, filters.same)
            if len(among) <= SAME_DIRECT:  # a batch, a course: every member scored
                return self._among(among, k, filters, source, row)
        rows, scores = self.suggestions.rows[row], self.suggestions.scores[row]
        picked = self._pick(rows, scores, k, filters, source, row)
        if len(picked) < k and filters.same is not None:
            # the precomputed lists are the best of all articles: too few share the value,
            # so the articles that do are scored directly (the same scores, every one)
            picked = self._among(among, k, filters, source, row)
        elif len(picked) < k and self.suggestions.rows.shape[1] < len(self.articles):
            full = self.ranker.scores_for_rows(np.array([row]))[0]
            order = np.argsort(-full, kind="stable")
            picked = self._pick(order, full[order], k, filters, source, row)
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
                        diversity: float = 0.0, decisions: Rules | None = None
                        ) -> list[Suggestion]:
        """Suggestions for free text, such as a draft's title, question and answer
        (``diversity`` as for :meth:`related`; ``decisions``: blocked articles are never
        suggested)."""
        _check_diversity(diversity)
        filters = filters or Filters()
        if decisions is not None:
            filters = filters.model_copy(update={"exclude_urls": filters.exclude_urls
                                                 | decisions.excluded(None)})
        if diversity > 0:
            pool = self.related_to_text(text, max(4 * k, DIVERSITY_POOL), filters)
            return self._diversify(pool, k, diversity)
        if filters.same is not None:
            raise InvalidFilter(f"same={filters.same} compares with the query article's own "
                                "value of the field; free text has none (give an article)")
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

    def _among(self, among: np.ndarray, k: int, filters: Filters, source: Article,
               row: int) -> list[Suggestion]:
        """The best ``k`` of the rows ``among``, every one scored (``same=``)."""
        full = self.ranker.scores_among(np.array([row]), [among])[0]
        order = np.lexsort((among, -full))
        return self._pick(among[order], full[order], k, filters, source, row)

    def _diversify(self, pool: list[Suggestion], k: int, diversity: float) -> list[Suggestion]:
        if not pool:
            return pool
        rows = [self.row_of[s.article.url] for s in pool]
        order = mmr_order(np.array([s.score for s in pool]), self.index.vectors[rows], k,
                          diversity)
        return [pool[i] for i in order]

    # -- filtering -------------------------------------------------------------------------

    def _subject_keys(self, names: Iterable[str]) -> set[str]:
        keys = {subject_key(n) for n in names}
        unknown = sorted(k for k in keys if k not in self.subjects)
        if unknown:
            raise InvalidFilter(f"unknown subject(s): {', '.join(unknown)}; known subjects: "
                                + ", ".join(sorted(self.subjects.values())))
        return keys

    @property
    def field_names(self) -> frozenset[str]:
        """Every front-matter field some article has (what ``same`` accepts)."""
        if self._field_names is None:
            self._field_names = frozenset(f for a in self.articles for f in a.fields)
        return self._field_names

    def same_value(self, source: Article, field: str) -> str:
        """``source``'s value of ``field``, for ``same=``: an unknown field, or a source
        without a value of it, is :class:`InvalidFilter`."""
        if field not in self.field_names:
            raise InvalidFilter(f"unknown field {field!r} in same=; fields the articles have: "
                                + ", ".join(sorted(self.field_names)))
        value = source.fields.get(field)
        if value is None:
            raise InvalidFilter(f"article {source.url} has no field {field!r} to match (same=)")
        return value

    def same_rows(self, source: Article, field: str) -> np.ndarray:
        """Rows of the articles whose value of ``field`` equals ``source``'s (itself included)."""
        value = self.same_value(source, field)
        return np.array([i for i, a in enumerate(self.articles) if a.fields.get(field) == value],
                        dtype=np.int64)

    def _pick(self, rows: np.ndarray, scores: np.ndarray, k: int, filters: Filters,
              source: Article | None, source_row: int) -> list[Suggestion]:
        only = self._subject_keys(filters.only_subjects)
        value = None
        if filters.same is not None and source is not None:
            value = self.same_value(source, filters.same)
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
            if value is not None and a.fields.get(filters.same or "") != value:
                continue
            key = subject_key(a.subject)
            if (only and key not in only) or key in exclude:
                continue
            seen.add(content)
            out.append(Suggestion(a, float(s), content in curated_keys))
            if len(out) >= k:
                break
        return out
