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
    data = training_data(ranker, corpus.articles, links, np.unique(links[:, 0]))
    return fit_model(data.x, data.y, feature_names(ranker.signals), kind, seed=0, note="test",
                     query=data.query)


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


@pytest.mark.parametrize("kind", ["lambdarank", "logistic"])
def test_learned_model_round_trips_through_its_file(demo_corpus: Corpus, learned_dir: Path,
                                                   kind: str, tmp_path: Path) -> None:
    ranker = load_index(learned_dir).ranker()
    model = _fitted_model(ranker, demo_corpus, kind)
    assert model.kind == kind
    path = tmp_path / f"m{model.suffix}"
    model.save(path)
    again = LearnedModel.load(path)
    x = ranker.features_for_rows(np.arange(10)).features
    np.testing.assert_allclose(again.score(x), model.score(x), rtol=1e-9)
    assert again.features == feature_names(ranker.signals)
    if kind == "lambdarank":  # LightGBM's own model file, read by LightGBM itself
        import lightgbm

        booster = lightgbm.Booster(model_file=str(path))
        np.testing.assert_allclose(booster.predict(x, raw_score=True), model.score(x))
        assert path.read_text().startswith("tree\n")
    else:
        assert again.note == "test"


def test_lambdarank_learns_the_order_within_queries() -> None:
    """A pairwise ranker over queries as groups: the feature that orders each list wins,
    even where its level differs from query to query."""
    rng = np.random.default_rng(0)
    query = np.repeat(np.arange(200), 30)
    offset = rng.normal(size=200)[query] * 3  # per-query level: useless across queries
    x = np.column_stack([offset + rng.normal(size=len(query)), rng.normal(size=len(query))])
    within = x[:, 0] - offset
    y = np.zeros(len(query), np.int8)
    for q in range(200):
        rows = np.flatnonzero(query == q)
        y[rows[np.argsort(-within[rows])[:2]]] = 1
    model = fit_model(x, y, ["a", "b"], "lambdarank", seed=0, query=query)
    score = model.score(x)
    hits = [y[np.flatnonzero(query == q)][np.argmax(score[query == q])] for q in range(200)]
    assert np.mean(hits) > 0.9


def test_a_json_model_of_another_kind_is_refused(tmp_path: Path) -> None:
    (tmp_path / "m.json").write_text('{"kind": "trees", "features": ["a"], "params": {}}')
    with pytest.raises(ValueError, match="m.json.*unknown learned model kind 'trees'"):
        LearnedModel.load(tmp_path / "m.json")
    (tmp_path / "m.lgb.txt").write_text("tree\nversion=v4\n")
    with pytest.raises(ValueError, match="m.lgb.txt"):
        LearnedModel.load(tmp_path / "m.lgb.txt")


def test_training_candidates_include_batch_mates(demo_corpus: Corpus, learned_dir: Path) -> None:
    """Negatives come from the query's own publication batch too, never its own copies."""
    ranker = load_index(learned_dir).ranker()
    links = link_pairs(demo_corpus.articles)
    queries = np.unique(links[:, 0])[:5]
    plain = training_data(ranker, demo_corpus.articles, links, queries, per_query=0)
    mixed = training_data(ranker, demo_corpus.articles, links, queries, per_query=3)
    assert len(mixed.y) > len(plain.y)
    arts = demo_corpus.articles
    for q in queries.tolist():
        extra = set(mixed.row[mixed.query == q].tolist()) - set(
            plain.row[plain.query == q].tolist())
        assert all(arts[r].group == arts[q].group for r in extra)
        assert all(arts[r].content_key != arts[q].content_key for r in extra)
    assert (np.diff(mixed.query) != 0).sum() == len(queries) - 1  # contiguous per query
    whole = training_data(ranker, arts, links, queries, per_query=None)  # the default
    for q in queries.tolist():
        mates = {i for i, a in enumerate(arts) if a.group == arts[q].group
                 and a.content_key != arts[q].content_key and not a.no_index}
        assert mates <= set(whole.row[whole.query == q].tolist())


def test_index_saves_lists_and_model_and_answers(demo_corpus: Corpus, tmp_path: Path) -> None:
    index = build_index(demo_corpus, LEARNED, None, tmp_path / "cache")
    model = _fitted_model(index.ranker(), demo_corpus, "lambdarank")
    ranker = index.ranker().with_model(model)
    state = dataclasses.replace(index.ranking, model=model, ranker=RankerChoice("learned", "t"),
                                suggestions=compute_suggestions(ranker))
    save_index(Snapshot(index.index, state), tmp_path / "index")
    loaded = load_index(tmp_path / "index")
    assert loaded.ranking.model is not None and loaded.ranking.model.kind == "lambdarank"
    assert (tmp_path / "index" / "ranking" / "ranker.lgb.txt").exists()
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
