"""Embedding cache, index round-trip, atomic writes, and refusing a mismatched index."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

import recommender.index as index_module
from recommender.config import BuildConfig, TextConfig
from recommender.corpus import load_corpus
from recommender.errors import IndexMismatch, IndexNotFound, ModelNotAvailable
from recommender.index import build_index, load_index
from recommender.pipeline import index_is_current, open_index
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
    hashing_index.save(tmp_path / "index")
    loaded = load_index(tmp_path / "index", expected=HASHING)
    assert [a.url for a in loaded.articles] == [a.url for a in hashing_index.articles]
    np.testing.assert_array_equal(loaded.vectors, hashing_index.vectors)
    np.testing.assert_array_equal(loaded.neighbours, hashing_index.neighbours)
    before, after = Recommender(hashing_index), Recommender(loaded)
    for ref in ("what-is-the-calvin-cycle", "how-does-gradient-descent-work"):
        assert [(s.article.url, round(s.score, 5)) for s in before.related(ref, 5)] == [
            (s.article.url, round(s.score, 5)) for s in after.related(ref, 5)]
    text = "How do plants use photosynthesis?"
    assert [(s.article.url, round(s.score, 5)) for s in before.related_to_text(text, 3)] == [
        (s.article.url, round(s.score, 5)) for s in after.related_to_text(text, 3)]


def test_manifest_records_how_the_index_was_made(hashing_index, tmp_path: Path):
    hashing_index.save(tmp_path / "index")
    manifest = json.loads((tmp_path / "index" / "manifest.json").read_text())
    assert manifest["model"] == "hashing" and manifest["dim"] == 512
    assert manifest["config"]["text"]["fields"] == list(HASHING.text.fields)
    assert len(manifest["corpus"]["fingerprint"]) == 16
    assert manifest["counts"] == {"articles": 61, "suggestable": 60, "no_index": 1,
                                  "embedded": manifest["counts"]["embedded"],
                                  "from_cache": manifest["counts"]["from_cache"]}
    assert manifest["built_at"] and manifest["build_seconds"] >= 0


def test_index_of_another_configuration_is_refused_saying_what_differs(hashing_index, tmp_path):
    hashing_index.save(tmp_path / "index")
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
    hashing_index.save(target)
    before = (target / "manifest.json").read_bytes()

    def crash(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(index_module.np, "savez", crash)
    with pytest.raises(KeyboardInterrupt):
        hashing_index.save(target)
    assert (target / "manifest.json").read_bytes() == before
    assert load_index(target).manifest == json.loads(before)
    assert [p.name for p in tmp_path.iterdir()] == ["index"]  # no temporary left behind


def test_open_index_reuses_a_current_index_and_rebuilds_a_stale_one(demo_copy, tmp_path):
    out = tmp_path / "index"
    corpus, index = open_index(demo_copy, HASHING, out)
    assert index_is_current(out, corpus, HASHING)
    assert not index_is_current(out, corpus, BuildConfig())
    shutil.rmtree(demo_copy / "physics")
    corpus, index = open_index(demo_copy, HASHING, out)
    assert len(index.articles) == len(corpus) == 54


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
