"""The evaluation protocol: who is asked, what counts as right, and who may know what.

Curated ``related_articleN`` links are the ground truth. Relevance is judged at
the level of *content*: copies of one article (same id, several subjects) are
one answer, so a suggestion counts when it is a curated target or a copy of
one, and a ranking is collapsed to distinct contents (first occurrence wins)
before it is scored. The query's own content is never a suggestion and
``no_index`` articles are never candidates, because the product never shows
them; curated targets that could never be shown are left out of the answers
(and counted), so that a perfect method scores 1.

Anything fitted from curated links must not see the links of the article it is
scored on. :func:`run_method` therefore runs a method with a ``fit`` step fold
by fold: folds are whole publication batches (the schema's ``group`` field,
``date`` for QuickTakes; links mostly stay inside a batch, so holding out single
articles would still leak the batch's link structure), and a fold's model is
trained only on links whose two ends are both outside the fold. The group
serves that grouping and nothing else.

Three protocols share this code (one results file, one report):

- **whole corpus**: every article is a candidate;
- **within** a front-matter field (``--within date``: the publication batch, the
  few hundred articles an editor chose the links from): a query's candidates are
  the articles with its own value of the field; curated targets outside it can
  never be suggested and are left out of the answers (and counted). Methods rank
  through ``rank_within``; the field restricts candidates and is never a signal;
- **draft**: the query is only the article's title (or title + answer) posted as
  free text; the methods that take text do this (:mod:`recommender.evaluation.draft`),
  the candidates and answers are the whole corpus's.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from recommender.corpus import Corpus
from recommender.errors import ArticleNotFound, InvalidFilter
from recommender.fitting import link_pairs


@runtime_checkable
class Method(Protocol):
    """A way of suggesting articles: candidate article rows per query row, best first."""

    name: str

    def rank(self, queries: np.ndarray, n: int) -> list[list[int]]: ...


@runtime_checkable
class FittedMethod(Method, Protocol):
    """A method that learns from curated links; the runner fits it once per fold."""

    def fit(self, corpus: Corpus, train_rows: np.ndarray) -> None: ...


class CandidateSpace:
    """Which rows may be suggested and which rows are the same content.

    Separate from the queries so that exporting suggestions for every article and
    scoring them use the very same collapsing rule.
    """

    def __init__(self, corpus: Corpus):
        self.corpus = corpus
        keys: dict[str, int] = {}
        self.content = np.array(
            [keys.setdefault(a.content_key, len(keys)) for a in corpus], dtype=np.int64)
        self.n_contents = len(keys)
        self.candidate = np.array([not a.no_index for a in corpus], dtype=bool)
        self.row_of: dict[str, int] = {a.url: i for i, a in enumerate(corpus)}
        sizes = np.bincount(self.content, minlength=self.n_contents)
        self.max_copies = int(sizes.max()) if len(sizes) else 1
        self.n_excluded = int((~self.candidate).sum())
        # contents that some indexable file can show
        self.candidate_content = np.zeros(self.n_contents, dtype=bool)
        self.candidate_content[self.content[self.candidate]] = True
        self._content_list: list[int] = self.content.tolist()
        self._candidate_list: list[bool] = self.candidate.tolist()

    @property
    def n_candidate_contents(self) -> int:
        return int(self.candidate_content.sum())

    def depth(self, n: int) -> int:
        """Rows to ask a method for so that ``n`` distinct contents survive collapsing.

        Among that many rows at most ``n_excluded`` are not candidates and the rest
        hold at least ``n + 1`` contents, of which one at most is the query's own.
        """
        return min(len(self.content), (n + 1) * self.max_copies + self.n_excluded)

    def collapse(self, query_row: int, ranked: Sequence[int], n: int) -> list[int]:
        """First ``n`` distinct candidate contents of ``ranked``, as their first rows.

        Drops non-candidates and the query's own content (itself and its copies).
        """
        content, candidate = self._content_list, self._candidate_list
        seen = {content[query_row]}
        out: list[int] = []
        for row in ranked:
            row = int(row)
            if not candidate[row]:
                continue
            c = content[row]
            if c in seen:
                continue
            seen.add(c)
            out.append(row)
            if len(out) == n:
                break
        return out


@dataclass
class EvaluationProtocol:
    """Scored queries and their answers (candidate contents), over one corpus."""

    space: CandidateSpace
    queries: np.ndarray  # article rows scored, ascending
    relevant: list[np.ndarray]  # per query: sorted content indices of its curated targets
    dropped_targets: int = 0  # curated targets with no indexable copy (never suggestible)
    unscored: list[str] = field(default_factory=list)  # listed queries without answers
    label: str = "whole corpus"  # which protocol: "whole corpus", "within date", "draft title"
    #: within protocols: group per row (rows sharing the field's value); None: whole corpus
    groups: np.ndarray | None = None

    @property
    def corpus(self) -> Corpus:
        return self.space.corpus

    @property
    def n_links(self) -> int:
        return int(sum(len(r) for r in self.relevant))


def _answers(space: CandidateSpace, row: int, reachable: set[int] | None = None
             ) -> tuple[np.ndarray, int]:
    article = space.corpus.articles[row]
    targets = {int(space.content[space.row_of[url]]) for url in article.links}
    targets.discard(int(space.content[row]))
    kept = sorted(t for t in targets if space.candidate_content[t]
                  and (reachable is None or t in reachable))
    return np.array(kept, dtype=np.int64), len(targets) - len(kept)


def field_groups(corpus: Corpus, field_name: str) -> np.ndarray:
    """Group per row: rows share one when they share the value of ``field_name`` (a
    front-matter field, as :attr:`~recommender.corpus.Article.fields` keeps it); a row
    without the field is alone. No article with the field: :class:`InvalidFilter`."""
    ids: dict[str, int] = {}
    out = np.empty(len(corpus), dtype=np.int64)
    for i, a in enumerate(corpus):
        value = a.fields.get(field_name)
        out[i] = ids.setdefault(value, len(ids)) if value is not None else -(i + 1)
    if not ids:
        raise InvalidFilter(f"no article has a field {field_name!r} to group by")
    _, out = np.unique(out, return_inverse=True)
    return out.astype(np.int64)


def read_query_file(corpus: Corpus, path: str | Path) -> list[int]:
    """Rows named in a file (urls, paths, slugs or ids; one a line; ``#`` comments).

    Raises :class:`ArticleNotFound` for a line that names no article: a typo must
    not silently shrink the query set.
    """
    rows: dict[int, None] = {}
    index = {a.url: i for i, a in enumerate(corpus)}
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        ref = line.split("#", 1)[0].strip()
        if not ref:
            continue
        try:
            rows[index[corpus.get(ref).url]] = None
        except ArticleNotFound as exc:
            raise ArticleNotFound(f"{path}: {exc}") from None
    return list(rows)


def build_protocol(corpus: Corpus, query_rows: Sequence[int] | None = None,
                   max_queries: int | None = None, seed: int = 0,
                   within: str | None = None, label: str | None = None) -> EvaluationProtocol:
    """Queries = articles with curated links (optionally only ``query_rows``).

    ``max_queries`` draws a seeded random subset, for quick runs; every article
    stays a candidate either way. ``within``: a front-matter field; candidates are
    the articles sharing the query's value of it, and answers the curated targets
    among them (a query with none is not scored).
    """
    space = CandidateSpace(corpus)
    groups = field_groups(corpus, within) if within is not None else None
    reach: dict[int, set[int]] = {}
    if groups is not None:
        for r in np.flatnonzero(space.candidate).tolist():
            reach.setdefault(int(groups[r]), set()).add(int(space.content[r]))
    wanted = range(len(corpus)) if query_rows is None else sorted(set(query_rows))
    queries: list[int] = []
    relevant: list[np.ndarray] = []
    dropped = 0
    unscored: list[str] = []
    for row in wanted:
        answers, lost = _answers(space, row, None if groups is None else
                                 reach.get(int(groups[row]), set()))
        dropped += lost
        if len(answers):
            queries.append(row)
            relevant.append(answers)
        elif query_rows is not None:
            unscored.append(corpus.articles[row].url)
    q = np.array(queries, dtype=np.int64)
    if max_queries is not None and max_queries < len(q):
        keep = np.sort(np.random.default_rng(seed).choice(len(q), max_queries, replace=False))
        q = q[keep]
        relevant = [relevant[i] for i in keep]
    name = label or (f"within {within}" if within is not None else "whole corpus")
    return EvaluationProtocol(space, q, relevant, dropped, unscored, name, groups)


def links_between(corpus: Corpus, rows: np.ndarray) -> np.ndarray:
    """The links a model trained on ``rows`` may use: both ends among ``rows``.

    A link with either end outside (e.g. from or to a test article) is dropped,
    so no article's own links, outgoing or incoming, reach the model scoring it.
    """
    inside = np.zeros(len(corpus), dtype=bool)
    inside[np.asarray(rows, dtype=np.int64)] = True
    pairs = link_pairs(corpus.articles)
    return pairs[inside[pairs[:, 0]] & inside[pairs[:, 1]]]


def publication_groups(corpus: Corpus) -> np.ndarray:
    """Group label per row: rows share a group when they share a value of the schema's
    grouping field (``group``: ``date`` for QuickTakes, the publication batch) or a content.

    Copies are tied to one group too, so a held-out article's copy (which carries
    the same links) never sits in a training fold. Articles without a group value
    (every article, for a schema with ``group: null``) are alone with their copies.
    """
    parent = np.arange(len(corpus))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = int(parent[i])
        return i

    first: dict[str, int] = {}
    for i, a in enumerate(corpus):
        for key in ((f"group:{a.group}",) if a.group is not None else ()) + (a.content_key,):
            j = first.setdefault(key, i)
            ri, rj = find(i), find(j)
            if ri != rj:
                parent[max(ri, rj)] = min(ri, rj)
    roots = np.array([find(i) for i in range(len(corpus))])
    return np.unique(roots, return_inverse=True)[1]


def publication_folds(corpus: Corpus, n_folds: int = 5, seed: int = 0,
                      queries: np.ndarray | None = None) -> np.ndarray:
    """Fold number per row; whole publication groups go to one fold.

    Groups are dealt largest first to the fold with the fewest queries (then
    rows) so far, ties in a seeded random order: balanced and reproducible.
    """
    groups = publication_groups(corpus)
    n_groups = int(groups.max()) + 1 if len(groups) else 0
    n_folds = max(1, min(n_folds, n_groups))
    is_query = np.zeros(len(corpus), dtype=np.int64)
    if queries is None:
        is_query[[i for i, a in enumerate(corpus) if a.links]] = 1
    else:
        is_query[np.asarray(queries, dtype=np.int64)] = 1
    q_size = np.bincount(groups, weights=is_query, minlength=n_groups)
    r_size = np.bincount(groups, minlength=n_groups)
    shuffle = np.random.default_rng(seed).permutation(n_groups)
    order = np.lexsort((shuffle, -r_size, -q_size))
    load = np.zeros((n_folds, 2))
    fold_of_group = np.empty(n_groups, dtype=np.int64)
    for g in order:
        f = int(np.lexsort((load[:, 1], load[:, 0]))[0])
        fold_of_group[g] = f
        load[f] += (q_size[g], r_size[g])
    return fold_of_group[groups]


def run_method(protocol: EvaluationProtocol, method: Method, n: int,
               folds: np.ndarray | None) -> list[list[int]]:
    """Collapsed suggestions (first row of each content) per query, aligned with queries.

    A method with ``fit`` is fitted once per fold on the rows outside that fold
    and ranks only that fold's queries. ``folds=None`` fits it on every row
    instead: that leaks each query's own links and exists only to show the leak.
    """
    space, queries = protocol.space, protocol.queries
    out: list[list[int]] = [[] for _ in range(len(queries))]
    depth = space.depth(n)
    fitted = callable(getattr(method, "fit", None))
    if not fitted:
        parts = [(np.arange(len(queries)), None)]
    elif folds is None:
        parts = [(np.arange(len(queries)), np.arange(len(space.content)))]
    else:
        parts = []
        for f in np.unique(folds[queries]):
            parts.append((np.flatnonzero(folds[queries] == f), np.flatnonzero(folds != f)))
    within = getattr(method, "rank_within", None)
    if protocol.groups is not None and within is None:
        raise ValueError(f"method {method.name} cannot restrict its candidates "
                         f"({protocol.label})")
    for positions, train_rows in parts:
        if fitted:
            method.fit(space.corpus, train_rows)  # type: ignore[attr-defined]
        if protocol.groups is not None:
            ranked = within(queries[positions], depth, protocol.groups)  # type: ignore[misc]
        else:
            ranked = method.rank(queries[positions], depth)
        if len(ranked) != len(positions):
            raise ValueError(f"method {method.name} returned {len(ranked)} rankings "
                             f"for {len(positions)} queries")
        for pos, rows in zip(positions.tolist(), ranked, strict=True):
            out[pos] = space.collapse(int(queries[pos]), rows, n)
    return out
