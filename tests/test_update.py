"""Incremental updates: what changed is applied, nothing else is recomputed, and the result
is the index a rebuild would give (exactly, when the TF-IDF is refitted).

Fast: the demo corpus with the hashing encoder, edited on disk as an editor would.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import numpy as np
import pytest

from recommender.config import BuildConfig, RankingConfig, UpdateConfig, VectorConfig
from recommender.corpus import Corpus, load_corpus
from recommender.neighbours import compute_lists, compute_suggestions
from recommender.pipeline import Snapshot, corpus_fingerprint, load_index, open_index
from recommender.ranking import ROW_ARRAYS
from recommender.ranking_state import UNKNOWN, NeighbourLists
from recommender.recommender import Recommender
from recommender.vectors import recall_against_exact

#: depth 10 over 61 articles: lists are real top-k lists, so patching is exercised
SMALL = BuildConfig(model="hashing", ranking=RankingConfig(depth=10, pool=5),
                    update=UpdateConfig(refit_after=1.0))
CALVIN = "biology/what-is-the-calvin-cycle.md"
GREEN = "biology/why-are-plants-green.md"


def edit(root: Path, rel: str, old: str, new: str) -> None:
    path = root / rel
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new), encoding="utf-8")


def add_copy_of(root: Path, rel: str, slug: str, words: str) -> None:
    """A new article: an existing one under a new url and id, with some words of its own."""
    source = root / rel
    lines = source.read_text(encoding="utf-8").split("\n")
    for i, line in enumerate(lines):
        if line.startswith("id:"):
            lines[i] = f"id: {abs(hash(slug)) % 10**6 + 10**6}"
        elif line.startswith("url:"):
            lines[i] = line.rsplit("/", 1)[0] + "/" + slug
        elif line.startswith("answer: >-"):
            lines[i + 1] = f"    {words} " + lines[i + 1].lstrip()
    (source.parent / f"{slug}.md").write_text("\n".join(lines), encoding="utf-8")


def change_everything(root: Path) -> list[str]:
    """Edit one article, add two, delete two; returns the deleted urls."""
    edit(root, CALVIN, "Calvin cycle", "Calvin-Benson cycle of light-independent reactions")
    add_copy_of(root, GREEN, "why-do-leaves-change-colour", "Chlorophyll fades in autumn.")
    add_copy_of(root, "physics/how-does-quantum-entanglement-work.md",
                "what-is-quantum-teleportation",
                "Teleportation moves a quantum state using entanglement.")
    gone = []
    for rel in ("physics/what-is-wave-particle-duality.md",
                "medicine/how-is-acute-leukemia-diagnosed.md"):
        text = (root / rel).read_text(encoding="utf-8")
        gone.append(next(line.split(":", 1)[1].strip() for line in text.splitlines()
                         if line.startswith("url:")))
        (root / rel).unlink()
    return gone


def suggestions(snapshot: Snapshot, k: int = 10) -> dict[str, list[str]]:
    arts = snapshot.articles
    rows = snapshot.ranking.suggestions.rows
    return {a.url: [arts[r].url for r in rows[i, :k] if r >= 0] for i, a in enumerate(arts)}


def lists_by_url(snapshot: Snapshot) -> dict[str, dict[str, list]]:
    arts = snapshot.articles
    return {name: {a.url: ([arts[r].url if r >= 0 else None for r in lists.rows[i]],
                           lists.scores[i].tolist()) for i, a in enumerate(arts)}
            for name, lists in snapshot.ranking.lists.items()}


def test_update_equals_rebuild_when_idf_is_refitted(demo_copy: Path, tmp_path: Path):
    open_index(demo_copy, SMALL, tmp_path / "index")
    change_everything(demo_copy)
    updated = open_index(demo_copy, SMALL, tmp_path / "index", full=True)
    last = updated.snapshot.manifest["last_change"]
    assert updated.action == "updated" and last["refit"] and last["refit_reason"]
    assert (last["changed"], last["added"], last["deleted"]) == (1, 2, 2)
    assert last["embedded"] + last["from_cache"] == 3  # only the changed and added ones
    rebuilt = open_index(demo_copy, SMALL, None, rebuild=True).snapshot
    assert [a.url for a in updated.snapshot.articles] == [a.url for a in rebuilt.articles]
    np.testing.assert_array_equal(updated.snapshot.index.vectors, rebuilt.index.vectors)
    assert lists_by_url(updated.snapshot) == lists_by_url(rebuilt)
    np.testing.assert_array_equal(updated.snapshot.ranking.suggestions.rows,
                                  rebuilt.ranking.suggestions.rows)
    np.testing.assert_array_equal(updated.snapshot.ranking.suggestions.scores,
                                  rebuilt.ranking.suggestions.scores)
    assert load_index(tmp_path / "index").articles == rebuilt.articles


def test_frozen_update_patches_lists_exactly_and_embeds_only_what_changed(demo_copy: Path,
                                                                          tmp_path: Path):
    before = open_index(demo_copy, SMALL, tmp_path / "index").snapshot
    change_everything(demo_copy)
    updated = open_index(demo_copy, SMALL, tmp_path / "index")
    after = updated.snapshot
    last = after.manifest["last_change"]
    assert not last["refit"] and last["files_read"] == 3
    assert last["embedded"] + last["from_cache"] == 3  # the cache is shared by the tests
    # the vocabulary and IDF are frozen: unchanged articles keep their vectors exactly
    for name, signal in after.ranking.signals.items():
        frozen = before.ranking.signals[name].vectorizer
        assert signal.vectorizer.vocabulary_ == frozen.vocabulary_
        np.testing.assert_array_equal(signal.vectorizer.idf_, frozen.idf_)
        assert last["drift"]["idf"][name] > 0  # ...and the drift is measured
    old_row = {a.url: i for i, a in enumerate(before.articles)}
    for i, a in enumerate(after.articles):
        if a.url in old_row and "calvin" not in a.url:
            j = old_row[a.url]
            for name, m in after.ranking.matrices.items():
                assert (m[i] != before.ranking.matrices[name][j]).nnz == 0
    # every patched list is what a full computation over the same vectors gives
    bare = dataclasses.replace(after.ranking, lists={})
    ranker = Snapshot(after.index, bare).ranker()
    for name, lists in after.ranking.lists.items():
        full = compute_lists(ranker, name)
        np.testing.assert_array_equal(lists.rows, full.rows)
        np.testing.assert_array_equal(lists.scores, full.scores)
        assert_known_spares_exact(lists, full)
    assert sum(v["merged"] for v in last["lists"].values()) > 0  # some lists were merged
    assert after.manifest["corpus"]["fingerprint"] == corpus_fingerprint(  # kept up to date
        after.articles, after.index.sources)
    assert all(v["recomputed"] < len(after.articles) for v in last["lists"].values())
    # the suggestions recomputed are those an update can change; fresh rows among them
    recomputed = compute_suggestions(after.ranker())
    changed_rows = [i for i, a in enumerate(after.articles)
                    if "calvin" in a.url or a.url not in old_row]
    np.testing.assert_array_equal(after.ranking.suggestions.rows[changed_rows],
                                  recomputed.rows[changed_rows])


def assert_known_spares_exact(lists: NeighbourLists, full: NeighbourLists) -> None:
    """The spare entries an update still knows are those a full computation gives."""
    assert lists.spare_rows is not None and full.spare_rows is not None
    known = lists.spare_rows != UNKNOWN
    np.testing.assert_array_equal(lists.spare_rows[known], full.spare_rows[known])
    np.testing.assert_array_equal(lists.spare_scores[known], full.spare_scores[known])
    # unknown entries only ever follow the known ones
    assert not (np.diff(known.astype(np.int8), axis=1) > 0).any()


def test_deletions_move_spare_entries_up_instead_of_computing_lists_again(demo_copy: Path,
                                                                          tmp_path: Path):
    """A deleted article leaves every list it was in; the lists are not computed again
    (their spare entries fill the end), and they equal a full computation's."""
    open_index(demo_copy, SMALL, tmp_path / "index")
    for rel in ("physics/what-is-wave-particle-duality.md",
                "medicine/how-is-acute-leukemia-diagnosed.md"):
        (demo_copy / rel).unlink()
    after = open_index(demo_copy, SMALL, tmp_path / "index").snapshot
    last = after.manifest["last_change"]
    assert last["deleted"] == 2 and not last["refit"]
    assert all(v["recomputed"] == 0 for v in last["lists"].values()), last["lists"]
    ranker = Snapshot(after.index, dataclasses.replace(after.ranking, lists={})).ranker()
    for name, lists in after.ranking.lists.items():
        full = compute_lists(ranker, name)
        np.testing.assert_array_equal(lists.rows, full.rows)
        np.testing.assert_array_equal(lists.scores, full.scores)
        assert_known_spares_exact(lists, full)
    reloaded = load_index(tmp_path / "index")  # spare entries (unknown ones too) are saved
    for name, lists in after.ranking.lists.items():
        np.testing.assert_array_equal(reloaded.ranking.lists[name].spare_rows,
                                      lists.spare_rows)


OVERFITTING = "computer-science/what-is-overfitting-in-machine-learning.md"


def resolved(corpus: Corpus) -> tuple[list[tuple[str, tuple[str, ...]]], dict]:
    report = corpus.report.as_dict()
    return [(a.url, a.links) for a in corpus.articles], {
        k: report[k] for k in ("links", "dangling_links", "articles_with_links",
                               "articles_without_links")}


def test_an_update_resolves_links_as_a_full_load_does(demo_copy: Path):
    """The server's updates resolve again only the links a change can reach; what they
    give is what loading the whole folder gives: links, counts and dangling links."""
    opened = open_index(demo_copy, SMALL, None)
    target = demo_copy / OVERFITTING
    original = target.read_text(encoding="utf-8")
    steps = [
        lambda: target.unlink(),  # cited by another article: its link now dangles
        lambda: target.write_text(original, encoding="utf-8"),  # back: the link resolves
        lambda: edit(demo_copy, OVERFITTING, "id: 9020", "id: 9920"),  # cited by id too
        lambda: add_copy_of(demo_copy, GREEN, "why-do-leaves-change-colour", "Autumn."),
    ]
    leaves = demo_copy / "biology" / "why-do-leaves-change-colour.md"
    for n, step in enumerate(steps):
        step()
        opened = open_index(demo_copy, SMALL, None, previous=opened.snapshot,
                            only=[str(target), str(leaves)])
        assert opened.action == "updated", n
        assert resolved(opened.corpus) == resolved(load_corpus(demo_copy))
        opened.snapshot.ranker()  # computes the per-row arrays the next update carries over
        for name, of in ROW_ARRAYS.items():  # carried over from the previous snapshot's
            np.testing.assert_array_equal(opened.snapshot.index._derived[name],
                                          of(opened.snapshot.articles))


def test_deleted_articles_are_never_suggested(demo_copy: Path, tmp_path: Path):
    open_index(demo_copy, SMALL, tmp_path / "index")
    gone = change_everything(demo_copy)
    snapshot = open_index(demo_copy, SMALL, tmp_path / "index").snapshot
    assert not {a.url for a in snapshot.articles} & set(gone)
    for lists in snapshot.ranking.lists.values():  # no row number points past the end
        assert lists.rows.max() < len(snapshot.articles)
    rec = Recommender(snapshot)
    for article in rec.articles:
        found = {s.article.url for s in rec.related(article, 60)}
        assert not found & set(gone), article.url
    from_text = rec.related_to_text("wave particle duality leukemia", 60)
    assert not {s.article.url for s in from_text} & set(gone)


def test_an_unchanged_folder_is_current_and_a_touched_file_only_rereads(demo_copy: Path,
                                                                        tmp_path: Path):
    open_index(demo_copy, SMALL, tmp_path / "index")
    time.sleep(0.01)
    assert open_index(demo_copy, SMALL, tmp_path / "index").action == "current"
    path = demo_copy / GREEN
    path.write_bytes(path.read_bytes())  # same content, new mtime
    opened = open_index(demo_copy, SMALL, tmp_path / "index")
    last = opened.snapshot.manifest["last_change"]
    assert (last["changed"], last["added"], last["deleted"], last["embedded"]) == (0, 0, 0, 0)


def test_a_metadata_change_keeps_the_ranking(demo_copy: Path, tmp_path: Path):
    before = open_index(demo_copy, SMALL, tmp_path / "index").snapshot
    edit(demo_copy, GREEN, "date:", "date_note: moved\ndate:")  # not read by the ranking
    edit(demo_copy, CALVIN, "related_article1:", "related_article9:")  # a curated link's number
    after = open_index(demo_copy, SMALL, tmp_path / "index", previous=before).snapshot
    assert after.manifest["last_change"]["metadata_only"] >= 1
    assert after.ranking is before.ranking  # the server's snapshot: nothing recomputed
    calvin = next(a for a in after.articles if "calvin" in a.url)
    assert 9 in [c.n for c in calvin.curated] and 1 not in [c.n for c in calvin.curated]


def test_build_updates_an_index_of_the_same_configuration(demo_copy: Path, tmp_path: Path):
    """`recommender build` takes the update path by itself; another configuration rebuilds."""
    from .test_cli import run

    config = tmp_path / "small.yaml"
    config.write_text("model: hashing\nranking: {depth: 10, pool: 5}\n")
    args = ["build", str(demo_copy), "--config", str(config), "-q"]
    assert "built" in run(args, tmp_path).stdout
    edit(demo_copy, CALVIN, "Calvin cycle", "Calvin-Benson cycle")
    updated = run(args, tmp_path)
    assert updated.returncode == 0, updated.stderr
    assert "updated: 1 changed, 0 added, 0 deleted" in updated.stdout
    assert "embedded 1" in updated.stdout and "TF-IDF frozen" in updated.stdout
    full = run([*args, "--full"], tmp_path)
    assert "TF-IDF refitted (asked for (--full))" in full.stdout
    assert "is current" in run(args, tmp_path).stdout
    other = tmp_path / "other.yaml"
    other.write_text("model: hashing\nranking: {depth: 12, pool: 5}\n")
    rebuilt = run(["build", str(demo_copy), "--config", str(other), "-q"], tmp_path)
    assert "built (index at" in rebuilt.stdout and "ranking.depth" in rebuilt.stdout


@pytest.mark.parametrize("method", ["fused"])
def test_fused_suggestions_are_patched_too(demo_copy: Path, tmp_path: Path, method: str):
    config = SMALL.model_copy(update={"ranking": RankingConfig(method=method)})
    open_index(demo_copy, config, tmp_path / "index")
    change_everything(demo_copy)
    updated = open_index(demo_copy, config, tmp_path / "index").snapshot
    recomputed = compute_suggestions(updated.ranker())
    assert suggestions(updated) == {
        a.url: [updated.articles[r].url for r in recomputed.rows[i, :10] if r >= 0]
        for i, a in enumerate(updated.articles)}


def test_refit_comes_past_the_threshold(demo_copy: Path, tmp_path: Path):
    config = SMALL.model_copy(update={"update": UpdateConfig(refit_after=0.05)})
    open_index(demo_copy, config, tmp_path / "index")
    edit(demo_copy, GREEN, "chlorophyll", "chlorophyll pigment")
    first = open_index(demo_copy, config, tmp_path / "index").snapshot.manifest["last_change"]
    assert not first["refit"] and first["drift"]["changed_since_fit"] == 1
    change_everything(demo_copy)
    second = open_index(demo_copy, config, tmp_path / "index").snapshot.manifest
    assert second["last_change"]["refit"]
    assert "over 5% of 61" in second["last_change"]["refit_reason"]
    assert second["fit"]["changed"] == 0  # counting starts again after a refit


@pytest.mark.parametrize("kind", ["hnsw", "ivf"])
def test_approximate_vector_search_by_configuration(demo_copy: Path, tmp_path: Path, kind: str):
    config = SMALL.model_copy(update={"vectors": VectorConfig(index=kind)})
    built = open_index(demo_copy, config, tmp_path / "index").snapshot
    assert built.manifest["vectors"] == {"index": kind}
    assert (tmp_path / "index" / "vectors.faiss").exists()
    loaded = load_index(tmp_path / "index")
    assert loaded.index.search.index.ntotal == 61
    change_everything(demo_copy)
    updated = open_index(demo_copy, config, tmp_path / "index").snapshot
    assert updated.index.search.index.ntotal == len(updated.articles) == 61
    # on 61 articles the approximate search finds every neighbour: lists as exact ones
    exact = open_index(demo_copy, SMALL, None, rebuild=True).snapshot
    np.testing.assert_array_equal(
        updated.ranking.lists["dense"].scores,
        open_index(demo_copy, config, None, rebuild=True).snapshot.ranking.lists["dense"].scores)
    assert lists_by_url(exact)["dense"].keys() == lists_by_url(updated)["dense"].keys()
    assert recall_against_exact(updated.index.vectors, config.vectors, 10,
                                np.arange(61)) > 0.95
