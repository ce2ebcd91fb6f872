"""Embedding cache, index round-trip, atomic writes, refusing a mismatched or damaged index."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

import recommender.index as index_module
from recommender.config import BuildConfig, TextConfig
from recommender.corpus import load_corpus
from recommender.errors import IndexCorrupt, IndexMismatch, IndexNotFound, ModelNotAvailable
from recommender.pipeline import build_index, load_index, open_index, save_index
from recommender.recommender import Recommender

from .conftest import HASHING


def test_rebuild_embeds_only_new_or_changed_articles(demo_copy: Path, tmp_path: Path):
    cache, out = tmp_path / "cache", tmp_path / "index"
    first = build_index(load_corpus(demo_copy), HASHING, out, cache)
    assert first.manifest["counts"]["embedded"] == 58  # 61 files, 3 of them copies
    second = build_index(load_corpus(demo_copy), HASHING, out, cache)
    assert second.manifest["counts"]["embedded"] == 0
    assert second.manifest["counts"]["from_cache"] == 61
    path = demo_copy / "biology" / "what-is-the-calvin-cycle.md"
    path.write_text(path.read_text().replace("Calvin cycle", "Calvin-Benson cycle"))
    third = build_index(load_corpus(demo_copy), HASHING, out, cache)
    assert third.manifest["counts"]["embedded"] == 1


def test_cache_is_keyed_by_model_and_text_config(demo_copy: Path, tmp_path: Path):
    cache = tmp_path / "cache"
    build_index(load_corpus(demo_copy), HASHING, None, cache)
    fields = ("question",) if HASHING.text.fields != ("question",) else ("title", "answer")
    other = HASHING.model_copy(update={"text": TextConfig(fields=fields)})
    assert build_index(load_corpus(demo_copy), other, None, cache).manifest["counts"][
        "embedded"] == 58


def test_index_round_trip_gives_identical_answers(hashing_index, tmp_path: Path):
    save_index(hashing_index, tmp_path / "index")
    loaded = load_index(tmp_path / "index", expected=HASHING)
    assert loaded.articles == hashing_index.articles
    np.testing.assert_array_equal(loaded.index.vectors, hashing_index.index.vectors)
    np.testing.assert_array_equal(loaded.ranking.suggestions.rows,
                                  hashing_index.ranking.suggestions.rows)
    for name, lists in hashing_index.ranking.lists.items():
        np.testing.assert_array_equal(loaded.ranking.lists[name].rows, lists.rows)
    before, after = Recommender(hashing_index), Recommender(loaded)
    for ref in ("what-is-the-calvin-cycle", "how-does-gradient-descent-work"):
        assert [(s.article.url, round(s.score, 5)) for s in before.related(ref, 5)] == [
            (s.article.url, round(s.score, 5)) for s in after.related(ref, 5)]
    text = "How do plants use photosynthesis?"
    assert [(s.article.url, round(s.score, 5)) for s in before.related_to_text(text, 3)] == [
        (s.article.url, round(s.score, 5)) for s in after.related_to_text(text, 3)]


def test_manifest_records_how_the_index_was_made(hashing_index, tmp_path: Path):
    save_index(hashing_index, tmp_path / "index")
    manifest = json.loads((tmp_path / "index" / "manifest.json").read_text())
    assert manifest["model"] == "hashing" and manifest["dim"] == 512
    assert manifest["config"]["text"]["fields"] == list(HASHING.text.fields)
    assert len(manifest["corpus"]["fingerprint"]) == 32
    assert manifest["counts"] == {"articles": 61, "suggestable": 60, "no_index": 1,
                                  "embedded": manifest["counts"]["embedded"],
                                  "from_cache": manifest["counts"]["from_cache"]}
    assert manifest["built_at"] and manifest["build_seconds"] >= 0


def test_index_of_another_configuration_is_refused_saying_what_differs(hashing_index, tmp_path):
    save_index(hashing_index, tmp_path / "index")
    asked = BuildConfig().model
    with pytest.raises(IndexMismatch, match=f"model: index has 'hashing', asked for '{asked}'"):
        load_index(tmp_path / "index", expected=BuildConfig())
    other_text = HASHING.model_copy(update={"text": TextConfig(max_tokens=64)})
    built = HASHING.text.max_tokens
    with pytest.raises(IndexMismatch, match=f"text.max_tokens: index has {built}, asked for 64"):
        load_index(tmp_path / "index", expected=other_text)


def test_missing_index_is_reported(tmp_path: Path):
    with pytest.raises(IndexNotFound, match="no index at"):
        load_index(tmp_path / "nowhere")


def test_interrupted_save_keeps_the_previous_index(hashing_index, tmp_path: Path, monkeypatch):
    target = tmp_path / "index"
    save_index(hashing_index, target)
    before = (target / "manifest.json").read_bytes()

    def crash(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(index_module.np, "savez", crash)
    with pytest.raises(KeyboardInterrupt):
        save_index(hashing_index, target)
    assert (target / "manifest.json").read_bytes() == before
    assert load_index(target).manifest == json.loads(before)
    assert [p.name for p in tmp_path.iterdir()] == ["index"]  # no temporary left behind


def test_open_index_reuses_a_current_index_and_updates_a_stale_one(demo_copy, tmp_path):
    out = tmp_path / "index"
    assert open_index(demo_copy, HASHING, out).action == "built"
    again = open_index(demo_copy, HASHING, out)
    assert again.action == "current" and again.corpus.report.articles == 61
    other = open_index(demo_copy, HASHING.model_copy(update={"batch_size": 8}), out)
    assert other.action == "current"  # batch size is not part of an index's identity
    shutil.rmtree(demo_copy / "physics")
    opened = open_index(demo_copy, HASHING, out)
    assert opened.action == "updated" and opened.snapshot.manifest["last_change"]["deleted"] == 7
    assert len(opened.snapshot.articles) == len(opened.corpus) == 54
    assert len(load_index(out).articles) == 54
    assert open_index(demo_copy, HASHING, out, rebuild=True).action == "built"


def test_an_index_built_from_a_loaded_corpus_is_current_for_its_folder(demo_copy, tmp_path):
    """``build_index(load_corpus(...))`` records subjects as the files spell them, as a
    scan does: the demo spells one subject two ways, and that is no change to update."""
    out = tmp_path / "index"
    build_index(load_corpus(demo_copy), HASHING, out)
    built_at = load_index(out).manifest["built_at"]
    again = open_index(demo_copy, HASHING, out)
    assert again.action == "current"
    assert again.snapshot.manifest["built_at"] == built_at


def test_unknown_or_missing_model_says_how_to_get_it(demo_corpus, monkeypatch, tmp_path):
    with pytest.raises(ModelNotAvailable, match="unknown model 'nope'.*knows:"):
        build_index(demo_corpus, BuildConfig(model="nope"), None, tmp_path)
    monkeypatch.setenv("RECOMMENDER_MODELS_DIR", str(tmp_path / "models"))
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "registry.yaml").write_text(
        "local-onnx:\n  backend: onnx\n  source: onnx/missing\n  dim: 384\n"
        "  get: python -m benchmarks.build_models onnx\n")
    with pytest.raises(ModelNotAvailable, match="to get it: python -m benchmarks.build_models"):
        build_index(demo_corpus, BuildConfig(model="local-onnx"), None, tmp_path)


# -- a damaged index is never loaded (issue 14) ---------------------------------------------


@pytest.fixture
def saved(hashing_index, tmp_path: Path) -> Path:
    target = tmp_path / "index"
    save_index(hashing_index, target)
    return target


def _rewrite(path: Path, **arrays: np.ndarray) -> None:
    with np.load(path) as npz:
        data = {k: npz[k] for k in npz.files}
    data.update(arrays)
    np.savez(path, **data)


def test_neighbours_cut_to_one_row_is_refused_naming_the_file(saved: Path):
    path = saved / "ranking" / "neighbours.npz"
    with np.load(path) as npz:
        rows, scores = npz["rows"], npz["scores"]
    np.savez(path, rows=rows[:1], scores=scores[:1])
    with pytest.raises(IndexCorrupt, match=r"neighbours\.npz: rows has shape \(1, 100\), "
                                           r"expected 61x\?"):
        load_index(saved)


def test_truncated_or_unreadable_files_are_refused(saved: Path):
    path = saved / "ranking" / "neighbours.npz"
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(IndexCorrupt, match=r"neighbours\.npz: cannot be read"):
        load_index(saved)


@pytest.mark.parametrize(("file", "change", "problem"), [
    ("ranking/lists.npz", lambda a: {"dense.rows": a["dense.rows"] + 1000},
     "refers to rows outside"),
    ("ranking/lists.npz", lambda a: {"lexical.scores": np.full_like(a["lexical.scores"], np.nan)},
     "not finite"),
    ("ranking/lists.npz", lambda a: {"keywords.rows": a["keywords.rows"].astype(np.float32)},
     "expected a integer array"),
    ("ranking/neighbours.npz", lambda a: {"scores": np.full_like(a["scores"], np.nan)},
     "not finite"),
])
def test_ranking_arrays_are_checked_against_the_articles(saved: Path, file, change, problem):
    path = saved / file
    with np.load(path) as npz:
        arrays = {k: npz[k] for k in npz.files}
    _rewrite(path, **change(arrays))
    with pytest.raises(IndexCorrupt, match=problem) as error:
        load_index(saved)
    assert path.name in str(error.value)


def test_vectors_and_records_are_checked(saved: Path):
    vectors = np.load(saved / "vectors.npy")
    np.save(saved / "vectors.npy", vectors[:-1])
    with pytest.raises(IndexCorrupt, match=r"vectors\.npy: vectors has shape \(60, 512\)"):
        load_index(saved)
    vectors[3, 2] = np.inf
    np.save(saved / "vectors.npy", vectors)
    with pytest.raises(IndexCorrupt, match="not finite"):
        load_index(saved)
    np.save(saved / "vectors.npy", np.nan_to_num(vectors, posinf=0.0))
    lines = (saved / "articles.jsonl").read_text().splitlines()
    (saved / "articles.jsonl").write_text("\n".join(lines[:-1]) + "\n{not json\n")
    with pytest.raises(IndexCorrupt, match=r"articles\.jsonl:61: not a JSON record"):
        load_index(saved)


def test_sparse_matrix_of_the_wrong_size_is_refused(saved: Path):
    import scipy.sparse as sp

    path = saved / "ranking" / "keywords" / "matrix.npz"
    sp.save_npz(path, sp.load_npz(path)[:5])
    with pytest.raises(IndexCorrupt, match=r"matrix\.npz: matrix has shape \(5, "):
        load_index(saved)


def test_a_file_name_that_is_not_utf8_is_reported_and_the_index_saves(demo_copy: Path,
                                                                       tmp_path: Path):
    """Such a name cannot be a url, a JSON path or a YAML link: it is reported, not read,
    and the rest of the folder is indexed (the save used to crash on it)."""
    source = demo_copy / "biology" / "why-are-plants-green.md"
    odd = os.fsencode(demo_copy / "biology") + b"/caf\xe9-plants.md"
    with open(odd, "wb") as f:  # the same article under a Latin-1 name, with its own url
        f.write(source.read_bytes().replace(b"why-are-plants-green", b"cafe-plants"))
    os.unlink(source)
    built = open_index(demo_copy, HASHING, tmp_path / "index")
    loaded = load_index(tmp_path / "index")
    assert [e.reason for e in built.corpus.report.errors] == [
        "file name is not valid UTF-8: not read"]
    assert built.snapshot.articles == loaded.articles
    assert not any(a.url.endswith("cafe-plants") for a in loaded.articles)
    assert open_index(demo_copy, HASHING, tmp_path / "index").action == "current"
