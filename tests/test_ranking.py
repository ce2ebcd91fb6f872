"""The ranking: fused and learned methods, the learned model's storage, and leakage-free fitting.

Fast: the demo corpus with the hashing encoder (no model download, no GPU).
"""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path

import numpy as np
import pytest

from recommender.config import BuildConfig, RankingConfig
from recommender.corpus import Corpus
from recommender.evaluation.product import ProductMethod, training_data
from recommender.evaluation.protocol import (
    build_protocol,
    link_pairs,
    publication_folds,
    run_method,
)
from recommender.learned import LearnedModel, feature_names, fit_model
from recommender.neighbours import compute_suggestions
from recommender.pipeline import Snapshot, build_index, load_index, save_index
from recommender.ranking import Ranker
from recommender.ranking_state import RankerChoice
from recommender.recommender import Recommender

LEARNED = BuildConfig(model="hashing", ranking=RankingConfig(model=None, depth=10, pool=5))
FUSED = BuildConfig(model="hashing", ranking=RankingConfig(method="fused", description=0))


def _fitted_model(ranker: Ranker, corpus: Corpus, kind: str) -> LearnedModel:
    links = link_pairs(corpus.articles)
    x, y = training_data(ranker, corpus.articles, links, np.unique(links[:, 0]))
    return fit_model(x, y, feature_names(ranker.signals), kind, seed=0, note="test")


@pytest.fixture(scope="module")
def learned_dir(demo_corpus: Corpus, tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("learned")
    build_index(demo_corpus, LEARNED, directory / "index", directory / "cache")
    return directory / "index"


def test_fused_scores_are_the_weighted_sum_and_exclude_self(demo_corpus: Corpus,
                                                              tmp_path: Path) -> None:
    index = build_index(demo_corpus, FUSED, None, tmp_path / "cache")
    ranker = index.ranker()
    rows = np.array([0, 5])
    scores = ranker.scores_for_rows(rows)
    v = index.index.vectors
    lex = index.ranking.matrices["lexical"]
    kw = index.ranking.matrices["keywords"]
    expected = v[rows] @ v.T + (lex[rows] @ lex.T).toarray() + (kw[rows] @ kw.T).toarray()
    finite = np.isfinite(scores)
    assert not finite[[0, 1], rows].any()
    np.testing.assert_allclose(scores[finite], expected[finite], rtol=1e-5, atol=1e-6)
    excluded = [i for i, a in enumerate(demo_corpus) if a.no_index]
    assert excluded and np.isneginf(scores[:, excluded]).all()


def test_learned_scores_only_candidates(demo_corpus: Corpus, learned_dir: Path) -> None:
    ranker = load_index(learned_dir).ranker()
    assert ranker.learned and ranker.signals == ["lexical", "description", "keywords", "dense"]
    scores = ranker.scores_for_rows(np.arange(len(demo_corpus)))
    finite = np.isfinite(scores)
    assert not finite[np.arange(len(demo_corpus)), np.arange(len(demo_corpus))].any()
    per_row = finite.sum(axis=1)
    # the union of four signals' 5 best, never more
    assert (per_row >= 5).all() and (per_row <= 4 * 5).all()
    rows, top = ranker.suggest_rows(np.arange(len(demo_corpus)), 8)
    best = np.argmax(np.where(finite, scores, -np.inf), axis=1)
    np.testing.assert_array_equal(rows[:, 0], best)
    np.testing.assert_allclose(top[:, 0], scores.max(axis=1), rtol=1e-6)


def test_features_are_named_and_finite(demo_corpus: Corpus, learned_dir: Path) -> None:
    ranker = load_index(learned_dir).ranker()
    cands = ranker.features_for_rows(np.array([0, 1, 2]))
    assert cands.features.shape[1] == len(feature_names(ranker.signals))
    assert np.isfinite(cands.features).all()
    assert set(cands.query.tolist()) == {0, 1, 2}
    assert not ((cands.query == 0) & (cands.row == 0)).any()


@pytest.mark.parametrize("kind", ["trees", "logistic"])
def test_learned_model_round_trips_through_json(demo_corpus: Corpus, learned_dir: Path,
                                                kind: str, tmp_path: Path) -> None:
    ranker = load_index(learned_dir).ranker()
    model = _fitted_model(ranker, demo_corpus, kind)
    model.save(tmp_path / "m.json")
    again = LearnedModel.load(tmp_path / "m.json")
    x = ranker.features_for_rows(np.arange(10)).features
    np.testing.assert_allclose(again.score(x), model.score(x), rtol=1e-9)
    assert again.note == "test" and again.features == feature_names(ranker.signals)


def test_exported_trees_match_sklearn() -> None:
    from sklearn.ensemble import HistGradientBoostingClassifier

    rng = np.random.default_rng(0)
    x = rng.normal(size=(2000, 4))
    y = ((x[:, 0] + x[:, 1] * x[:, 2]) > 0.3).astype(int)
    model = fit_model(x, y, ["a", "b", "c", "d"], "trees", seed=0)
    clf = HistGradientBoostingClassifier(max_iter=150, learning_rate=0.1, max_leaf_nodes=31,
                                         min_samples_leaf=40, random_state=0).fit(x, y)
    np.testing.assert_allclose(model.score(x), clf.decision_function(x), rtol=1e-6, atol=1e-8)


def test_index_saves_lists_and_model_and_answers(demo_corpus: Corpus, tmp_path: Path) -> None:
    index = build_index(demo_corpus, LEARNED, None, tmp_path / "cache")
    model = _fitted_model(index.ranker(), demo_corpus, "trees")
    ranker = index.ranker().with_model(model)
    state = dataclasses.replace(index.ranking, model=model, ranker=RankerChoice("learned", "t"),
                                suggestions=compute_suggestions(ranker))
    save_index(Snapshot(index.index, state), tmp_path / "index")
    loaded = load_index(tmp_path / "index")
    assert loaded.ranking.model is not None and loaded.ranking.model.kind == "trees"
    assert set(loaded.ranking.lists) == {"lexical", "description", "keywords", "dense"}
    np.testing.assert_allclose(loaded.ranker().scores_for_rows(np.array([3])),
                               ranker.scores_for_rows(np.array([3])))
    rec = Recommender(loaded)
    first = demo_corpus.articles[3]
    related = rec.related(first.url, k=5)
    assert len(related) == 5 and all(s.article.url != first.url for s in related)
    from_text = rec.related_to_text(first.title + "\n" + first.answer, k=5)
    assert len(from_text) == 5 and all(np.isfinite(s.score) for s in from_text)


def test_build_uses_the_named_model_file(demo_corpus: Corpus, tmp_path: Path) -> None:
    index = build_index(demo_corpus, LEARNED, None, tmp_path / "cache")
    model = _fitted_model(index.ranker(), demo_corpus, "logistic")
    model.save(tmp_path / "mine.json")
    config = LEARNED.model_copy(update={"ranking": LEARNED.ranking.model_copy(
        update={"model": str(tmp_path / "mine.json")})})
    built = build_index(demo_corpus, config, tmp_path / "index", tmp_path / "cache")
    assert built.ranking.model is not None and built.ranking.model.kind == "logistic"
    assert built.manifest["ranker"] == {
        "kind": "learned", "file": str(tmp_path / "mine.json"),
        "sha256": hashlib.sha256((tmp_path / "mine.json").read_bytes()).hexdigest()}
    assert (tmp_path / "index" / "ranking" / "ranker.json").exists()


def test_mismatched_model_is_refused(demo_corpus: Corpus, tmp_path: Path) -> None:
    index = build_index(demo_corpus, LEARNED, None, tmp_path / "cache")
    bad = LearnedModel(["x"], "logistic", {"mean": [0], "scale": [1], "coef": [1],
                                           "intercept": 0})
    with pytest.raises(ValueError, match="fitted on features"):
        index.ranker().with_model(bad)


class _Recording(ProductMethod):
    """Records, per fit, the training rows and links it was given."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fits: list[tuple[np.ndarray, np.ndarray]] = []
        inner = self.fit

        def fit(corpus: Corpus, train_rows: np.ndarray) -> None:
            inner(corpus, train_rows)
            self.fits.append((np.asarray(train_rows), self.last_training_links.copy()))

        self.fit = fit  # type: ignore[method-assign]


def test_learned_method_never_sees_a_test_articles_links(demo_corpus: Corpus,
                                                          tmp_path: Path) -> None:
    protocol = build_protocol(demo_corpus)
    method = _Recording(demo_corpus, LEARNED, "learned", tmp_path / "cache", model_kind="logistic")
    folds = publication_folds(demo_corpus, 3, 0, protocol.queries)
    run_method(protocol, method, 5, folds)
    assert len(method.fits) == len(np.unique(folds[protocol.queries]))
    for f, (train_rows, links) in zip(np.unique(folds[protocol.queries]), method.fits,
                                      strict=True):
        test_rows = np.flatnonzero(folds == f)
        assert not np.isin(train_rows, test_rows).any()
        assert len(links) and not np.isin(links, test_rows).any()  # neither end held out
        # every link among training rows is used; none touching the fold
        pairs = link_pairs(demo_corpus.articles)
        inside = np.isin(pairs, train_rows).all(axis=1)
        assert len(links) == inside.sum()


def test_product_method_without_model_ranks_by_summed_cosines(demo_corpus: Corpus,
                                                               tmp_path: Path) -> None:
    protocol = build_protocol(demo_corpus)
    method = ProductMethod(demo_corpus, LEARNED, "plain", tmp_path / "cache", refit=False)
    assert not callable(getattr(method, "fit", None))
    ranked = run_method(protocol, method, 5, None)
    assert all(len(r) == 5 for r in ranked)


def test_few_rows_and_text_score_every_article_candidates_first(demo_corpus: Corpus,
                                                                 learned_dir: Path) -> None:
    ranker = load_index(learned_dir).ranker()
    bulk = ranker.scores_for_rows(np.arange(8))[2]
    single = ranker.scores_for_rows(np.array([2]))[0]
    candidates = np.isfinite(bulk)
    np.testing.assert_allclose(single[candidates], bulk[candidates])
    others = ~candidates & np.isfinite(single)
    assert others.sum() == len(demo_corpus) - candidates.sum() - 1 - sum(
        a.no_index for a in demo_corpus)
    assert single[others].max() < single[candidates].min()
    article = demo_corpus.articles[2]
    text = ranker.scores_for_text(article.title + " " + article.answer,
                                  ranker.index.vectors[2])
    assert np.isfinite(text).sum() == len(demo_corpus) - sum(a.no_index for a in demo_corpus)
