"""``same=FIELD``: candidates restricted to the articles sharing a front-matter field's value.

The filter restricts the candidate set and never reorders it: within the set, the
order is the ranking's own. When the precomputed suggestions hold fewer than k
articles of the set, the set is scored directly, so k come back whenever k exist.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys

import numpy as np
import pytest

from recommender.errors import InvalidFilter
from recommender.pipeline import Snapshot
from recommender.ranking_state import Suggestions
from recommender.recommender import Filters, Recommender
from tests.conftest import ROOT, cli_env

CALVIN = "what-is-the-calvin-cycle"


def _narrow(snapshot: Snapshot, width: int) -> Recommender:
    """The recommender with only ``width`` precomputed suggestions per article."""
    stored = snapshot.ranking.suggestions
    narrow = Suggestions(stored.rows[:, :width].copy(), stored.scores[:, :width].copy())
    return Recommender(Snapshot(snapshot.index,
                                dataclasses.replace(snapshot.ranking, suggestions=narrow)))


def test_same_date_keeps_only_the_batch_and_fills_k(hashing_index):
    rec = Recommender(hashing_index)
    source = rec.get(CALVIN)
    batch = [a for a in rec.articles if a.fields["date"] == source.fields["date"]
             and a.content_key != source.content_key and not a.no_index]
    found = rec.related(source, 5, Filters(same="date"))
    assert len(found) == min(5, len(batch))
    assert {s.article.fields["date"] for s in found} == {source.fields["date"]}
    everyone = rec.related(source, len(batch), Filters(same="date"))
    assert {s.article.url for s in everyone} == {a.url for a in batch}


def test_the_order_within_the_set_is_the_ranking_s_own(hashing_index):
    rec = Recommender(hashing_index)
    source = rec.get(CALVIN)
    unfiltered = rec.related(source, 60)
    same_subject = [s.article.url for s in unfiltered
                    if s.article.fields["subject"] == source.fields["subject"]]
    found = rec.related(source, len(same_subject), Filters(same="subject"))
    assert [s.article.url for s in found] == same_subject


def test_scoring_the_set_directly_gives_the_precomputed_scores(hashing_index):
    """When the lists hold too few of the set, the fallback scores every article of it;
    the articles both rank get the same score (the features of a pair do not depend on
    who proposed it)."""
    full = Recommender(hashing_index)
    narrow = _narrow(hashing_index, 2)
    for slug in (CALVIN, "what-is-loss-aversion-in-behavioral-economics"):
        source = full.get(slug)
        wide = {s.article.url: s.score for s in full.related(source, 100)}
        direct = narrow.related(source, 8, Filters(same="date"))
        assert len(direct) == len(full.related(source, 8, Filters(same="date")))
        for s in direct:
            if s.article.url in wide:
                assert s.score == pytest.approx(wide[s.article.url], rel=1e-5, abs=1e-6)
        assert [s.score for s in direct] == sorted((s.score for s in direct), reverse=True)


def test_scores_among_matches_the_suggestions(hashing_index):
    ranker = hashing_index.ranker()
    rows = np.array([0, 7, 30])
    stored = hashing_index.ranking.suggestions
    among = [stored.rows[r][stored.rows[r] >= 0][:20] for r in rows]
    for r, cand, scores in zip(rows, among, ranker.scores_among(rows, among), strict=True):
        expected = stored.scores[r][: len(cand)]
        np.testing.assert_allclose(scores, expected, rtol=1e-5, atol=1e-6)


def test_unknown_field_missing_value_and_free_text_are_errors(hashing_index):
    rec = Recommender(hashing_index)
    with pytest.raises(InvalidFilter, match="unknown field 'sektion'.*date"):
        rec.related(CALVIN, 5, Filters(same="sektion"))
    with pytest.raises(InvalidFilter, match="no field 'no_index'"):
        rec.related(CALVIN, 5, Filters(same="no_index"))
    with pytest.raises(InvalidFilter, match="free text has none"):
        rec.related_to_text("photosynthesis", 5, Filters(same="date"))


def test_cli_related_same_and_its_exit_code(tmp_path):
    env = cli_env(tmp_path)
    cli = [sys.executable, "-m", "recommender.cli"]
    built = subprocess.run([*cli, "build", str(ROOT / "demo" / "content"), "--model",
                            "hashing", "-q"], env=env, capture_output=True, text=True, cwd=ROOT)
    assert built.returncode == 0, built.stderr
    done = subprocess.run([*cli, "related", CALVIN, "--same", "date", "--json", "--k", "3"],
                          env=env, capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert len(json.loads(done.stdout)) == 3
    bad = subprocess.run([*cli, "related", CALVIN, "--same", "nope"], env=env,
                         capture_output=True, text=True, cwd=ROOT)
    assert bad.returncode == 8
    assert "unknown field 'nope'" in bad.stderr
