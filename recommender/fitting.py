"""Fitting the learned re-ranker on a corpus' own curated links.

The shipped parameters (``models/ranker/default.json``) were fitted on QuickTakes'
four signals. A site with other signals (no keywords, a ``mentions`` signal, ...)
cannot use them, so a build fits a model on the site's own links instead
(:func:`fit_on_links`), when it has enough of them; without links the ranking
is the unsupervised blend. The evaluation fits the same way per fold, on the
links whose two ends are both training rows (see
:func:`recommender.evaluation.protocol.links_between`), so no article is scored
by a model that saw its links, in either direction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from recommender.corpus import Article
from recommender.learned import LearnedModel, feature_names, fit_model

if TYPE_CHECKING:
    from recommender.ranking import Candidates, Ranker

#: a build fits its own model only from this many articles with curated links
MIN_LINKED_ARTICLES = 50
#: training queries of a build-time fit (a seeded sample beyond that): bounds its time
MAX_TRAIN_QUERIES = 8000
#: batch-mates per training query (:func:`batch_mates`); None: the whole batch. A sample
#: of 40 with the query's targets added makes unlisted rows positive far more often than
#: in the batch: LambdaRank's within-batch recall@5 was 0.174 so, 0.283 with the whole
#: batch (results/within_negatives.json)
BATCH_NEGATIVES: int | None = None
#: training queries whose candidates are computed together
_BLOCK = 512


def link_pairs(articles: Sequence[Article]) -> np.ndarray:
    """Every resolved curated link as a (source row, target row) pair, shape (m, 2)."""
    row_of = {a.url: i for i, a in enumerate(articles)}
    pairs = [(i, row_of[url]) for i, a in enumerate(articles) for url in a.links
             if url in row_of]
    return np.array(pairs, dtype=np.int64).reshape(-1, 2)


def content_groups(articles: Sequence[Article]) -> np.ndarray:
    """Per row, a number shared by the copies of one content (files with one id)."""
    keys: dict[str, int] = {}
    return np.array([keys.setdefault(a.content_key, len(keys)) for a in articles],
                    dtype=np.int64)


@dataclass(frozen=True)
class TrainingSet:
    """Candidates of training queries: features, 0/1 labels, and per row the query (rows of
    one query are contiguous, as a ranking objective needs them) and the candidate."""

    x: np.ndarray  # (m, n_features) float32
    y: np.ndarray  # (m,) int8
    query: np.ndarray  # (m,) the query's article row
    row: np.ndarray  # (m,) the candidate's article row

    def where(self, keep: np.ndarray) -> TrainingSet:
        return TrainingSet(self.x[keep], self.y[keep], self.query[keep], self.row[keep])


def batch_mates(articles: Sequence[Article], rows: np.ndarray, per_query: int | None,
                seed: int, targets: dict[int, set[int]] | None = None) -> list[np.ndarray]:
    """Per query row, its whole publication batch (the schema's ``group`` value) with
    ``per_query=None``; else up to ``per_query`` articles of it (seeded, the same for a
    row whatever the other rows) and its ``targets`` (content numbers) found in the
    batch. Never its own copies.

    Training negatives drawn from the batch: links were made batch by batch, so a
    ranker trained only against the whole corpus learns what marks an article's
    batch-mates rather than what makes two articles related."""
    content = content_groups(articles)
    by_group: dict[str, list[int]] = {}
    for i, a in enumerate(articles):
        if a.group is not None:
            by_group.setdefault(a.group, []).append(i)
    members = {g: np.array(v, dtype=np.int64) for g, v in by_group.items()}
    out = []
    for r in np.asarray(rows, dtype=np.int64).tolist():
        group = articles[r].group
        if group is None or (per_query is not None and per_query <= 0):
            out.append(np.zeros(0, np.int64))
            continue
        mates = members[group]
        mates = mates[content[mates] != content[r]]
        if per_query is None:
            out.append(mates)  # sorted: rows were listed in order
            continue
        rng = np.random.default_rng([seed, r])
        drawn = rng.choice(mates, min(per_query, len(mates)), replace=False)
        wanted = (targets or {}).get(r, set())
        if wanted:
            drawn = np.union1d(drawn, mates[np.isin(content[mates], list(wanted))])
        out.append(np.sort(drawn))
    return out


def training_data(ranker: Ranker, articles: Sequence[Article], links: np.ndarray,
                  rows: np.ndarray, cache: dict[int, Candidates] | None = None,
                  per_query: int | None = BATCH_NEGATIVES, seed: int = 0) -> TrainingSet:
    """The candidates of query ``rows`` with their features and labels under ``links``.

    A query's candidates are those the signals propose (what the ranker scores at
    serving time) and ``per_query`` batch-mates (:func:`batch_mates`, with the query's
    curated targets in its batch), so that the model learns to order a batch as well
    as the corpus. A candidate is positive when it is (a copy of) a target of one of
    ``links`` from the query. Pass ``links`` already restricted to the training rows.
    Features do not depend on links, so ``cache`` may hold them across folds (the
    candidate sets then hold the targets of the links first seen; labels always come
    from ``links``).
    """
    from recommender.ranking import Candidates

    content = content_groups(articles)
    targets: dict[int, set[int]] = {}
    for q, t in links.tolist():
        targets.setdefault(q, set()).add(int(content[t]))
    cache = {} if cache is None else cache
    todo = np.array([int(r) for r in rows if int(r) not in cache], dtype=np.int64)
    for start in range(0, len(todo), _BLOCK):
        block = todo[start : start + _BLOCK]
        proposed = ranker.features_for_rows(block)
        # per_query 0: only what the signals propose (how the logistic model is fitted)
        extra = (batch_mates(articles, block, per_query, seed, targets)
                 if per_query is None or per_query > 0 else [])
        keys = np.concatenate([np.full(len(e), i, np.int64) * ranker.n + e
                               for i, e in enumerate(extra)] + [np.zeros(0, np.int64)])
        keys = np.setdiff1d(keys, proposed.query * ranker.n + proposed.row)
        tops = {name: (ranker.lists[name].rows[block], ranker.lists[name].scores[block])
                for name in ranker.signals}
        mates = ranker.candidates(tops, None, block, pairs=keys)
        query = np.concatenate([proposed.query, mates.query])
        row = np.concatenate([proposed.row, mates.row])
        features = np.concatenate([proposed.features, mates.features])
        order = np.argsort(query, kind="stable")
        bounds = np.searchsorted(query[order], np.arange(len(block) + 1))
        for i, r in enumerate(block.tolist()):
            sel = order[bounds[i] : bounds[i + 1]]
            cache[r] = Candidates(np.zeros(len(sel), np.int64), row[sel], features[sel])
    xs, ys, qs, cs = [], [], [], []
    for r in np.asarray(rows, dtype=np.int64).tolist():
        c = cache[r]
        wanted = targets.get(r, set())
        xs.append(c.features)
        cs.append(c.row)
        qs.append(np.full(len(c.row), r, np.int64))
        ys.append(np.fromiter((int(content[x]) in wanted for x in c.row.tolist()), dtype=np.int8,
                              count=len(c.row)))
    if not xs:
        return TrainingSet(np.zeros((0, len(feature_names(ranker.signals))), np.float32),
                           np.zeros(0, np.int8), np.zeros(0, np.int64), np.zeros(0, np.int64))
    return TrainingSet(np.concatenate(xs), np.concatenate(ys), np.concatenate(qs),
                       np.concatenate(cs))


def fit_on_links(ranker: Ranker, articles: Sequence[Article], links: np.ndarray,
                 seed: int = 0, max_queries: int = MAX_TRAIN_QUERIES,
                 kind: str = "lambdarank") -> LearnedModel:
    """A re-ranker for ``ranker``'s signals, fitted on ``links`` (at most ``max_queries``
    of their sources, a seeded sample), with batch-mates among the negatives.

    LightGBM's LambdaRank by default: trees find what the logistic model cannot (on
    manpages-dev, a page that names the query *and* ranks high on the text signals)."""
    queries = np.unique(links[:, 0]) if len(links) else np.zeros(0, np.int64)
    if len(queries) > max_queries:
        queries = np.sort(np.random.default_rng(seed).choice(queries, max_queries,
                                                             replace=False))
    data = training_data(ranker, articles, links, queries, seed=seed)
    return fit_model(data.x, data.y, feature_names(ranker.signals), kind, seed,
                     note=f"fitted on {len(links)} curated links of {len(queries)} articles",
                     query=data.query)
