"""Suggestions: never self, a copy, a no_index article or two copies; filters; free text."""

from __future__ import annotations

import dataclasses

import pytest

from recommender.errors import ArticleNotFound, InvalidFilter
from recommender.pipeline import Snapshot, load_index
from recommender.ranking_state import Suggestions
from recommender.recommender import Filters, Recommender

LEUKEMIA = "what-are-the-latest-advancements-in-radiation-therapy-for-leukemia"
PSYCH = "what-are-the-psychological-impacts-of-a-leukemia-diagnosis-on-patients-and-their-families"


def _assert_rules_hold(rec: Recommender, k: int) -> None:
    for source in rec.articles:
        found = rec.related(source, k)
        keys = [s.article.content_key for s in found]
        assert source.content_key not in keys, source.url  # neither self nor a copy
        assert len(keys) == len(set(keys)), source.url  # never two copies of one article
        assert not any(s.article.no_index for s in found), source.url
        assert [s.score for s in found] == sorted((s.score for s in found), reverse=True)


def test_rules_hold_for_every_article_with_a_fake_encoder(hashing_index):
    _assert_rules_hold(Recommender(hashing_index), k=60)


@pytest.mark.slow
def test_rules_hold_for_every_article_with_the_real_model(real_index_dir):
    _assert_rules_hold(Recommender(load_index(real_index_dir)), k=10)


@pytest.mark.slow
def test_leukemia_article_suggests_the_psychological_impact_article(real_index_dir):
    rec = Recommender(load_index(real_index_dir))
    top3 = rec.related(LEUKEMIA, k=3)
    assert PSYCH in [s.article.slug for s in top3]
    assert [s.curated for s in top3 if s.article.slug == PSYCH] == [True]


@pytest.mark.slow
def test_free_text_finds_the_topic_with_the_real_model(real_index_dir):
    rec = Recommender(load_index(real_index_dir))
    found = rec.related_to_text("How do plants turn sunlight into sugar?", k=3)
    # the free-text scorer (models/ranker/text.json) is fitted on quicktakes-dev's draft
    # protocol, where it beats TF-IDF and dense alone; on this demo it puts a neighbouring
    # subject third (issue 11: the obvious articles first is not met yet)
    assert {s.article.subject for s in found[:2]} == {"Biology"}
    assert "What is the Calvin cycle?" in [s.article.title for s in found]
    assert not any(s.curated for s in found)


def test_subject_filters(hashing_index):
    rec = Recommender(hashing_index)
    only = rec.related(LEUKEMIA, 5, Filters(only_subjects=frozenset({"psychology"})))
    assert only and {s.article.subject for s in only} == {"Psychology"}
    excluded = rec.related(LEUKEMIA, 20, Filters(exclude_subjects=frozenset({"Medicine"})))
    assert "Medicine" not in {s.article.subject for s in excluded}
    cross = rec.related(LEUKEMIA, 20, Filters(cross_subject_only=True))
    assert len(cross) == 20 and "Medicine" not in {s.article.subject for s in cross}


def test_excluded_urls_are_never_suggested(hashing_index):
    rec = Recommender(hashing_index)
    first = rec.related(LEUKEMIA, 3)
    again = rec.related(LEUKEMIA, 3, Filters(exclude_urls=frozenset({first[0].article.url})))
    assert first[0].article.url not in [s.article.url for s in again]
    assert [s.article.url for s in again][:2] == [s.article.url for s in first][1:]


def test_filters_reaching_past_precomputed_neighbours_still_fill_k(hashing_index):
    stored = hashing_index.ranking.suggestions
    narrow = Suggestions(stored.rows[:, :3].copy(), stored.scores[:, :3].copy())
    rec = Recommender(Snapshot(hashing_index.index,
                               dataclasses.replace(hashing_index.ranking, suggestions=narrow)))
    assert len(rec.related(LEUKEMIA, 10)) == 10


def test_unknown_subject_and_unknown_article_are_errors(hashing_index):
    rec = Recommender(hashing_index)
    with pytest.raises(InvalidFilter, match="unknown subject.*astrology"):
        rec.related(LEUKEMIA, 5, Filters(only_subjects=frozenset({"Astrology"})))
    with pytest.raises(ArticleNotFound):
        rec.related("no-such-article")


def test_copies_are_never_suggested_for_each_other(hashing_index):
    rec = Recommender(hashing_index)
    for url in ("/learn/psychology/questions/what-is-loss-aversion-in-behavioral-economics",
                "/learn/economics/questions/what-is-loss-aversion-in-behavioral-economics"):
        found = rec.related(url, 60)
        assert not any("loss-aversion" in s.article.url for s in found)


def test_free_text_never_returns_no_index_or_two_copies(hashing_index):
    rec = Recommender(hashing_index)
    found = rec.related_to_text("What is the grading rubric for the final project?", 60)
    keys = [s.article.content_key for s in found]
    assert len(keys) == len(set(keys)) and not any(s.article.no_index for s in found)
