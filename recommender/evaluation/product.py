"""The product's own ranking under the evaluation protocol.

:class:`ProductMethod` ranks with :class:`~recommender.ranking.Ranker` over the
ranking state the pipeline builds for a :class:`~recommender.config.BuildConfig`
(:func:`recommender.pipeline.build_snapshot`, the code ``recommender build`` runs;
embeddings come from the shared cache), or over the snapshot of an index opened
with :func:`recommender.pipeline.open_index` (what ``recommender evaluate`` does for
the default product). With the learned ranking method it is a
:class:`~recommender.evaluation.protocol.FittedMethod`: the runner calls
:meth:`ProductMethod.fit` once per publication-batch fold, and the re-ranker is
refitted there on the links whose two ends are both in the training rows
(:func:`~recommender.evaluation.protocol.links_between`), so the shipped
parameters (fitted on the whole corpus) are never used to score the articles
they were fitted on.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from recommender.config import BuildConfig
from recommender.corpus import Corpus
from recommender.encoders import model_spec
from recommender.evaluation.methods import ExactScorer, _excluded, tie_breaker
from recommender.evaluation.protocol import links_between
from recommender.evaluation.tuned import FoldTuner, fold_tuner
from recommender.fitting import BATCH_NEGATIVES, training_data
from recommender.learned import LearnedModel, feature_names, fit_model
from recommender.pipeline import Snapshot, build_snapshot
from recommender.ranking import Candidates, Ranker

#: score of an article the re-ranker did not propose (below any model score, finite
#: so that ties among such articles are broken by the seeded random order)
_NOT_PROPOSED = -1e9


class ProductMethod(ExactScorer):
    """The product's ranking for a build configuration, scored exactly.

    ``refit`` (default: whenever the configuration's method is ``learned``)
    makes it a fitted method: the evaluation runner calls :meth:`fit` per fold.
    Training queries per fold are at most ``max_train_queries`` link-bearing
    training rows (a seeded sample), to bound the fitting time. ``reuse``: another
    product method over the same corpus whose fitted signals and neighbour lists
    are shared (dense lists too when the embedding configuration is the same).
    """

    def __init__(self, corpus: Corpus, config: BuildConfig, name: str = "product",
                 cache_dir: Path | None = None, seed: int = 0, refit: bool | None = None,
                 max_train_queries: int = 8000, model_kind: str | None = None,
                 reuse: ProductMethod | None = None, snapshot: Snapshot | None = None,
                 batch_negatives: int | None = BATCH_NEGATIVES):
        self.name, self.corpus, self.config, self.seed = name, corpus, config, seed
        #: a model tuned on curated links is tuned again per fold from its base (never used as
        #: shipped: it saw every article's links); the first snapshot has the base's vectors
        self.tuner: FoldTuner | None = None
        if model_spec(config.model).tuned_from is not None:
            self.tuner = fold_tuner(corpus, config)
            snapshot = build_snapshot(corpus, config, suggestions=False,
                                      vectors=self.tuner.untuned(),
                                      reuse=reuse.snapshot.ranking if reuse is not None else None)
        if snapshot is None:
            same_vectors = reuse is not None and (reuse.config.model, reuse.config.text) == (
                config.model, config.text)
            snapshot = build_snapshot(
                corpus, config, cache_dir, suggestions=False,
                reuse=reuse.snapshot.ranking if reuse is not None else None,
                reuse_dense=same_vectors)
        elif [a.url for a in snapshot.articles] != [a.url for a in corpus.articles]:
            raise ValueError("the snapshot's articles are not the corpus's, row for row")
        self.snapshot = snapshot
        self.ranker: Ranker = snapshot.ranker()
        n = len(corpus.articles)
        self.excluded = _excluded(corpus)
        self.tiebreak = tie_breaker(n, seed)
        learned = config.ranking.method == "learned"
        self.refit = learned if refit is None else (refit and learned)
        self.refit = self.refit or self.tuner is not None
        # refit the kind of model the index serves: the shipped one's, or the build's own fit
        served = snapshot.ranking.model
        self.model_kind = model_kind or (served.kind if served is not None else "lambdarank")
        self.max_train_queries = max_train_queries
        #: batch-mates per LambdaRank training query (:func:`~recommender.fitting.batch_mates`)
        self.batch_negatives = batch_negatives
        self._features: dict[int, Candidates] = {}
        #: the links the last fit used (tests check that no held-out article's are among them)
        self.last_training_links: np.ndarray = np.zeros((0, 2), np.int64)
        if self.refit:  # mark as fitted for the runner (a bound method named ``fit``)
            self.fit = self._fit  # type: ignore[method-assign]

    def _fit(self, corpus: Corpus, train_rows: np.ndarray) -> None:
        """Refit the re-ranker on the links between ``train_rows`` only; with a tuned model,
        rank with this fold's vectors.

        The re-ranker is fitted on the base model's features even then: fitted on the tuned
        table's, it learns to trust dense scores that are high *because* the table was
        tuned on those very training links, and leakage-free recall@5 fell to 0.107
        (0.117 for the tuned dense alone, 0.173 for the product over the base)."""
        base = self.snapshot.ranker()  # the base model's vectors; features never change
        model = (self._fitted_model(base, corpus, train_rows)
                 if self.config.ranking.method == "learned" else base.model)
        if self.tuner is None:
            self.ranker = base.with_model(model)
            return
        tuned = build_snapshot(corpus, self.config, suggestions=False,
                               vectors=self.tuner.vectors(train_rows),
                               reuse=self.snapshot.ranking)
        self.ranker = tuned.ranker().with_model(model)

    def _fitted_model(self, ranker: Ranker, corpus: Corpus,
                      train_rows: np.ndarray) -> LearnedModel:
        links = links_between(corpus, train_rows)
        self.last_training_links = links
        queries = np.unique(links[:, 0]) if len(links) else np.zeros(0, np.int64)
        if len(queries) > self.max_train_queries:
            rng = np.random.default_rng(self.seed)
            queries = np.sort(rng.choice(queries, self.max_train_queries, replace=False))
        # batch-mates among the negatives for the ranker that learns per query (LambdaRank);
        # the logistic model is refitted as it was fitted: on what the signals propose
        # (with batch-mates its leakage-free recall@5 fell from 0.173 to 0.128)
        data = training_data(ranker, corpus.articles, links, queries, self._features,
                             per_query=self.batch_negatives if self.model_kind == "lambdarank"
                             else 0, seed=self.seed)
        allowed = np.zeros(len(corpus.articles), dtype=bool)
        allowed[np.asarray(train_rows, dtype=np.int64)] = True
        data = data.where(allowed[data.row])
        return fit_model(data.x, data.y, feature_names(ranker.signals), self.model_kind,
                         self.seed, note=f"fold fit on {len(queries)} queries", query=data.query)

    def scores(self, block: np.ndarray) -> np.ndarray:
        if self.groups is not None:
            return self._scores_within(block, self.groups)
        scores = self.ranker.scores_for_rows(block)
        scores[np.isneginf(scores)] = _NOT_PROPOSED
        return scores

    def _scores_within(self, block: np.ndarray, groups: np.ndarray) -> np.ndarray:
        """Every article of each query's group scored, as ``related(..., same=FIELD)`` scores
        them (:meth:`~recommender.ranking.Ranker.scores_among`); others ``-inf``."""
        order = np.argsort(groups, kind="stable")
        bounds = np.searchsorted(groups[order], [groups[block], groups[block] + 1])
        among = [order[lo:hi] for lo, hi in zip(bounds[0], bounds[1], strict=True)]
        out = np.full((len(block), len(groups)), -np.inf)
        for i, (rows, values) in enumerate(zip(among, self.ranker.scores_among(block, among),
                                               strict=True)):
            out[i, rows] = values
        return out
