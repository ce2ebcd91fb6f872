"""The within-a-field and draft protocols, and the free-text scorer they measure."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from recommender.config import BuildConfig
from recommender.errors import InvalidFilter
from recommender.evaluation import (
    LexicalFeatures,
    RandomMethod,
    TfidfMethod,
    build_protocol,
    evaluate,
    run_method,
)
from recommender.evaluation.draft import (
    DraftDenseMethod,
    DraftProductMethod,
    DraftTfidfMethod,
    own_rows,
    variant_fields,
)
from recommender.evaluation.product import ProductMethod
from recommender.evaluation.protocol import field_groups
from recommender.pipeline import load_index
from recommender.recommender import Recommender
from tests.conftest import DEMO, HASHING, ROOT, cli_env

PHOTOSYNTHESIS = {"what-is-the-calvin-cycle",
                  "how-does-photosynthesis-differ-from-cellular-respiration",
                  "what-happens-during-the-light-dependent-reactions-of-photosynthesis"}
PSYCH = "what-are-the-psychological-impacts-of-a-leukemia-diagnosis-on-patients-and-their-families"


def test_within_protocol_keeps_candidates_and_answers_in_the_batch(demo_corpus, hashing_index):
    protocol = build_protocol(demo_corpus, within="date")
    groups = field_groups(demo_corpus, "date")
    assert protocol.label == "within date" and len(protocol.queries)
    for q, answers in zip(protocol.queries.tolist(), protocol.relevant, strict=True):
        batch = {int(protocol.space.content[r]) for r in np.flatnonzero(groups == groups[q])}
        assert set(answers.tolist()) <= batch
    whole = build_protocol(demo_corpus)
    assert protocol.n_links < whole.n_links  # curated links across batches left out
    features = LexicalFeatures(demo_corpus)
    product = ProductMethod(demo_corpus, HASHING, snapshot=hashing_index)
    for method in (RandomMethod(len(demo_corpus)), TfidfMethod(features, demo_corpus), product):
        lists = run_method(protocol, method, 10, None if method is not product else
                           np.zeros(len(demo_corpus), np.int64) + (np.arange(61) % 2))
        for q, rows in zip(protocol.queries.tolist(), lists, strict=True):
            assert rows and all(groups[r] == groups[q] for r in rows)
            assert q not in rows


def test_within_product_ranks_as_related_same_does(demo_corpus, hashing_index):
    """The evaluation's within-batch product ranking is the library's ``same=date``."""
    protocol = build_protocol(demo_corpus, within="date")
    product = ProductMethod(demo_corpus, HASHING, snapshot=hashing_index, refit=False)
    lists = run_method(protocol, product, 5, None)
    rec = Recommender(hashing_index)
    from recommender.recommender import Filters

    for q, rows in list(zip(protocol.queries.tolist(), lists, strict=True))[:10]:
        found = rec.related(demo_corpus.articles[q].url, 5, Filters(same="date"))
        assert [demo_corpus.articles[r].url for r in rows] == [s.article.url for s in found]


def test_unknown_within_field_is_an_error(demo_corpus):
    with pytest.raises(InvalidFilter, match="sektion"):
        build_protocol(demo_corpus, within="sektion")


def test_draft_protocol_never_shows_the_article_and_hides_it_from_the_text(
        demo_corpus, hashing_index):
    protocol = build_protocol(demo_corpus, label="draft title")
    fields = variant_fields("title")
    assert variant_fields("title,answer") == ("title", "answer")
    features = LexicalFeatures(demo_corpus)
    methods = [DraftTfidfMethod(features, demo_corpus, fields),
               DraftDenseMethod(hashing_index.index.vectors, demo_corpus, fields, "hashing",
                                256),
               DraftProductMethod(demo_corpus, hashing_index, fields)]
    result = evaluate(protocol, methods, [5], features.tfidf, "tfidf", n_folds=3)
    space = protocol.space
    for r in result.methods:
        assert r.metrics["recall@5"] > 0
        for q, rows in zip(protocol.queries.tolist(), r.suggestions, strict=True):
            assert space.content[q] not in set(space.content[rows].tolist())
    # the posted title never reaches its own article, not even through features
    ranker = hashing_index.ranker()
    owners = own_rows(space)
    q = int(protocol.queries[0])
    hidden = owners[int(space.content[q])]
    text = demo_corpus.articles[q].title
    vector = ranker.index.vectors[q][None, :]
    cands, _ = ranker.text_candidates([text], vector, [hidden])
    assert not set(cands.row.tolist()) & set(hidden.tolist())
    assert np.isneginf(ranker.scores_for_texts([text], vector, [hidden])[0][hidden]).all()


def test_suggest_same_and_draft_write_their_lists(tmp_path):
    env = cli_env(tmp_path)
    cli = [sys.executable, "-m", "recommender.cli", "suggest", str(DEMO), "--all"]
    same = tmp_path / "same.jsonl"
    done = subprocess.run([*cli, "--method", "tfidf", "--same", "date", "--output", str(same)],
                          env=env, capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    corpus_dates = {}
    for line in same.read_text().splitlines():
        item = json.loads(line)
        corpus_dates[item["url"]] = item["suggestions"]
    assert len(corpus_dates) == 61
    draft = tmp_path / "draft.jsonl"
    done = subprocess.run([*cli, "--method", "tfidf", "--draft", "title", "--output",
                           str(draft)], env=env, capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    lines = [json.loads(x) for x in draft.read_text().splitlines()]
    assert all(x["url"] not in x["suggestions"] for x in lines)
    bad = subprocess.run([*cli, "--method", "tfidf", "--draft", "abstract", "--output",
                          str(draft)], env=env, capture_output=True, text=True, cwd=ROOT)
    assert bad.returncode == 2 and "unknown draft variant" in bad.stderr


def test_free_text_uses_its_own_scorer_not_the_article_ranker(hashing_index):
    ranker = hashing_index.ranker()
    assert ranker.text_model is not None
    assert ranker.text_model.params != ranker.model.params
    assert "draft queries" in ranker.text_model.note


@pytest.mark.slow
@pytest.mark.xfail(strict=True, reason=(
    "the shipped free-text scorer, fitted on quicktakes-dev draft queries, leans on the "
    "lexical signal (there it beats TF-IDF and dense alone); on these two demo questions "
    "the static encoder alone gets the on-topic article first, the fitted scorer does not "
    "(see README, Free text)"))
def test_demo_questions_find_the_obvious_article_first(real_index_dir):
    rec = Recommender(load_index(real_index_dir))
    plants = rec.related_to_text("How do plants store energy from sunlight?", k=3)
    assert plants[0].article.slug in PHOTOSYNTHESIS
    family = rec.related_to_text(
        "my grandmother was just diagnosed with leukemia, how will our family cope?", k=3)
    assert family[0].article.slug == PSYCH


@pytest.mark.slow
def test_demo_questions_stay_on_topic(real_index_dir):
    """What the fitted scorer does get right on the demo: the leukemia question's top
    three are leukemia articles, the psychological-impact one among them, and the plants
    question finds a photosynthesis article in its top five."""
    rec = Recommender(load_index(real_index_dir))
    family = rec.related_to_text(
        "my grandmother was just diagnosed with leukemia, how will our family cope?", k=3)
    assert all("leukemia" in s.article.slug for s in family)
    assert PSYCH in {s.article.slug for s in family}
    plants = rec.related_to_text("How do plants store energy from sunlight?", k=5)
    assert PHOTOSYNTHESIS & {s.article.slug for s in plants}
    assert BuildConfig().ranking.text_model == "text"
